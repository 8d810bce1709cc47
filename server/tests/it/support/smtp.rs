//! A real SMTP server for the mail tests: `scripts/smtp-sink.py` (aiosmtpd, installed by
//! `scripts/ensure-tools.sh --test` into `target/tools/smtp-venv`) as a child process that
//! keeps every message it accepts as a file, and can be taken down and brought back on the
//! same port. Also the reading of what arrived: quoted-printable undone, and the check that
//! no code-like run of digits is in it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long the sink may take to listen.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running (or stopped) SMTP sink; its process is killed when dropped.
pub struct SmtpSink {
    port: u16,
    folder: tempfile::TempDir,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Runs at the lowest CPU priority (see [`Self::start_yielding`]).
    yielding: bool,
}

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub envelope_from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub envelope_to: Vec<String>,
    /// The message as sent after `DATA`, headers and body, still encoded.
    pub raw: String,
}

impl ReceivedMail {
    /// The message with its quoted-printable encoding undone (see [`decoded`]).
    pub fn decoded(&self) -> String {
        decoded(&self.raw)
    }
}

/// The workspace root, where `scripts/` and `target/tools/` are.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}

impl SmtpSink {
    /// Starts a sink on a free port of 127.0.0.1 and waits until it listens.
    pub async fn start() -> Self {
        Self::start_at(false).await
    }

    /// Starts a sink like [`Self::start`], but at the lowest CPU priority (`nice -n 19`): it
    /// runs only when nothing else wants the CPU. For benchmarks, where the sink stands for
    /// a mail server on another machine and must not take the cores from the server being
    /// measured.
    #[allow(dead_code, reason = "for `benches/mail.rs`, which shares this harness")]
    pub async fn start_yielding() -> Self {
        Self::start_at(true).await
    }

    async fn start_at(yielding: bool) -> Self {
        let mut sink = Self {
            port: 0,
            folder: tempfile::tempdir().unwrap(),
            child: None,
            log: Arc::new(Mutex::new(Vec::new())),
            yielding,
        };
        sink.spawn().await;
        sink
    }

    /// `LIFELINE_SMTP_URL` for this sink, on its port while stopped too: plain SMTP, no STARTTLS, no credentials (lettre's
    /// `smtp://host:port` with no `tls` parameter).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Takes the sink down (SIGTERM, then waits for it to exit): connections to its port are
    /// refused until [`Self::restart`]. The messages it kept stay.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().expect("the sink is running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the sink exits after SIGTERM")
            .unwrap();
        assert!(exit.success(), "the SMTP sink: {exit}: {:?}", self.log());
    }

    /// Brings a stopped sink back on the same port and the same folder; waits until it
    /// listens.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the SMTP sink is running already");
        self.spawn().await;
    }

    /// The messages accepted so far, in the order they arrived.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.folder.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                // `.000001.eml.partial` is one being written.
                path.extension().is_some_and(|ext| ext == "eml")
                    && !path.file_name().unwrap().to_string_lossy().starts_with('.')
            })
            .collect();
        // The names are zero-padded counters.
        files.sort();
        files
            .iter()
            .map(|path| parse(&String::from_utf8_lossy(&std::fs::read(path).unwrap())))
            .collect()
    }

    /// Waits up to `timeout` for at least `n` messages, and returns all there are; panics
    /// if fewer arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} of {n} messages reached the SMTP sink within {timeout:?}: {messages:?}; \
                     its log: {:?}",
                    messages.len(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the sink has written to stdout and stderr.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Starts `smtp-sink.py` on `self.port` (0: a free one, then remembered) and waits for
    /// its "listening on" line.
    async fn spawn(&mut self) {
        let root = workspace_root();
        let python = root.join("target/tools/smtp-venv/bin/python");
        assert!(
            python.exists(),
            "the SMTP sink needs aiosmtpd in {}: run `scripts/ensure-tools.sh --test`",
            python.display()
        );
        let mut command = if self.yielding {
            let mut nice = Command::new("nice");
            nice.args(["-n", "19"]).arg(&python);
            nice
        } else {
            Command::new(&python)
        };
        let mut child = command
            .arg(root.join("scripts/smtp-sink.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--folder")
            .arg(self.folder.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(drain(stderr, Arc::clone(&self.log)));

        let log = Arc::clone(&self.log);
        let port = tokio::time::timeout(START_LIMIT, async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                if let Some(port) = line
                    .strip_prefix("listening on 127.0.0.1:")
                    .and_then(|port| port.trim().parse::<u16>().ok())
                {
                    return Some(port);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("the SMTP sink did not listen within {START_LIMIT:?}"));
        let Some(port) = port else {
            // Let the stderr drain catch the traceback before showing it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            panic!(
                "the SMTP sink exited before listening (port {}): {:?}",
                self.port,
                self.log()
            );
        };
        assert!(
            self.port == 0 || self.port == port,
            "the SMTP sink came back on port {port}, not {}",
            self.port
        );
        self.port = port;
        tokio::spawn(drain(stdout, Arc::clone(&self.log)));
        self.child = Some(child);
    }
}

/// Appends every further line of one of the sink's pipes to its log.
async fn drain<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: tokio::io::Lines<R>,
    log: Arc<Mutex<Vec<String>>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line);
    }
}

/// One of the sink's files: the `X-Envelope-From` and `X-Envelope-To` lines it put first,
/// then the message.
fn parse(file: &str) -> ReceivedMail {
    let (from_line, rest) = file.split_once("\r\n").expect("the envelope sender line");
    let (to_line, raw) = rest
        .split_once("\r\n")
        .expect("the envelope recipients line");
    let envelope_from = from_line
        .strip_prefix("X-Envelope-From: ")
        .expect("X-Envelope-From first")
        .to_owned();
    let envelope_to = to_line
        .strip_prefix("X-Envelope-To: ")
        .expect("X-Envelope-To second")
        .split(", ")
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect();
    ReceivedMail {
        envelope_from,
        envelope_to,
        raw: raw.to_owned(),
    }
}

/// The message with its quoted-printable soft line breaks and escapes undone.
pub fn decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'=' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `text` has twelve or more digits in a row, as a backup code would.
pub fn has_code_like_run(text: &str) -> bool {
    let mut run = 0;
    text.chars().any(|c| {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        run >= 12
    })
}
