//! Starting and stopping the real `lifeline` binary: a server that listens on a free port,
//! killed gently or hard, and a run of the binary to its exit.

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use domain::secrets::SecretKey;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long a server may take to start listening (migrations included).
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running `lifeline serve`, killed when dropped.
pub struct Server {
    pub base_url: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    workdir: tempfile::TempDir,
}

/// A `lifeline` command with a clean environment (only what the test sets) in a working
/// folder that holds nothing but the test key at the default key file (`data/secret.key`,
/// [`domain::testing::TEST_SECRET_KEY`], private as the binary requires), so that nothing
/// from the developer's shell changes the outcome, and every run links and verifies audit
/// chains with the key the tests' own database writes use. `LIFELINE_SECRET_KEY` or
/// `LIFELINE_SECRET_KEY_FILE` set by a test take its place.
pub fn lifeline(workdir: &Path) -> Command {
    write_test_key(workdir);
    let mut command = Command::new(env!("CARGO_BIN_EXE_lifeline"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LIFELINE_LISTEN_ADDR", "127.0.0.1:0")
        // Every test talks from 127.0.0.1, many to one account; the throttle has tests of
        // its own, which set these low.
        .env("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "100000")
        .env("LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "100000")
        .env("LIFELINE_SIGN_IN_STARTS_PER_MINUTE", "100000")
        // Bursts of hashing requests wait for the hasher as they used to; the bound on its
        // queue has tests of its own (`hasher_bound.rs`), which set it low.
        .env("LIFELINE_HASH_QUEUE", "100000")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Writes the test key to `workdir/data/secret.key` (folder 0700, file 0600), unless a key
/// file is there already.
pub fn write_test_key(workdir: &Path) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

    let data = workdir.join("data");
    if data.join("secret.key").exists() {
        return;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data)
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data.join("secret.key"))
        .unwrap();
    std::io::Write::write_all(
        &mut file,
        format!("{}\n", domain::testing::TEST_SECRET_KEY).as_bytes(),
    )
    .unwrap();
}

impl Server {
    /// Starts the server on `database_url` and waits until it listens.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(&[("DATABASE_URL", database_url)]).await
    }

    /// Starts the server on `database_url` with `key`, the key that sealed the database's TOTP
    /// secrets, and these further variables; waits until it listens.
    pub async fn start_with_key(
        database_url: &str,
        key: &SecretKey,
        extra: &[(&str, &str)],
    ) -> Self {
        let hex = key.to_hex();
        let mut vars = vec![
            ("DATABASE_URL", database_url),
            ("LIFELINE_SECRET_KEY", hex.as_str()),
        ];
        vars.extend_from_slice(extra);
        Self::start_with(&vars).await
    }

    /// Starts the server with these extra environment variables and waits until it listens.
    pub async fn start_with(vars: &[(&str, &str)]) -> Self {
        let workdir = tempfile::tempdir().unwrap();
        let mut command = lifeline(workdir.path());
        command.envs(vars.iter().copied());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the lifeline binary");

        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();

        let base_url = tokio::time::timeout(START_LIMIT, async {
            loop {
                tokio::select! {
                    line = stdout.next_line() => match line.unwrap() {
                        Some(line) => {
                            log.lock().unwrap().push(line.clone());
                            if let Some(url) = listening_url(&line) {
                                return url;
                            }
                        }
                        None => panic!("lifeline exited before listening: {:?}", log.lock().unwrap()),
                    },
                    Ok(Some(line)) = stderr.next_line() => log.lock().unwrap().push(line),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("lifeline did not listen within {START_LIMIT:?}"));

        // Keep draining both pipes so that the server never blocks on a full one.
        tokio::spawn(drain(stdout, Arc::clone(&log)));
        tokio::spawn(drain(stderr, Arc::clone(&log)));

        Self {
            base_url,
            child,
            log,
            workdir,
        }
    }

    /// The folder the server runs in (where the default `data/` goes).
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// The server's process id, for reading `/proc/<pid>` from outside.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server still running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Everything the server has written to stdout and stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the process to exit, returning whether it exited cleanly.
    pub async fn terminate(mut self) -> (bool, Vec<String>) {
        let pid = self.child.id().expect("server still running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("server exits after SIGTERM")
            .unwrap();
        // Give the drain tasks a moment to collect the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (exit.success(), self.log())
    }
}

impl Server {
    /// Kills the process with SIGKILL, as a crash or the out-of-memory killer would: no
    /// graceful shutdown, requests in flight cut off. Waits for it to exit; returns its log.
    pub async fn kill_hard(mut self) -> Vec<String> {
        // On Unix, tokio's start_kill sends SIGKILL.
        self.child.start_kill().expect("send SIGKILL to the server");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("server exits after SIGKILL")
            .unwrap();
        // Give the drain tasks a moment to collect the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.log()
    }
}

/// Appends every further line of one of the server's pipes to its log.
async fn drain<R: tokio::io::AsyncBufRead + Unpin>(
    mut lines: tokio::io::Lines<R>,
    log: Arc<Mutex<Vec<String>>>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line);
    }
}

/// The URL in the server's "listening on http://…" log line, if this is that line.
fn listening_url(line: &str) -> Option<String> {
    let start = line.find("listening on http://")? + "listening on ".len();
    let url = line[start..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()?;
    Some(url.to_owned())
}

/// Runs `lifeline` to completion with these variables, returning (success, stderr).
pub async fn run_to_exit(vars: &[(&str, &str)]) -> (bool, String) {
    let workdir = tempfile::tempdir().unwrap();
    let mut command = lifeline(workdir.path());
    command.envs(vars.iter().copied());
    let output = tokio::time::timeout(START_LIMIT, command.output())
        .await
        .expect("lifeline exits")
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
