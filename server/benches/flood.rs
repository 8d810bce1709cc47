//! Flood resilience: the release `lifeline` binary under 200 concurrent wrong-password
//! sign-ins for 30 seconds, from loopback with the per-address throttle raised out of the
//! way. Measures page loads (`GET /sign-in`) during the flood next to the same measured
//! idle just before, and the server's peak resident memory, in five runs (a server process
//! each): issue 17 asks for the page-load target in every one of five. The attackers' script
//! runs below the server's CPU priority, as the server's own hashing threads do: their
//! traffic reaches the server as fast as it takes it, but the work of making it (here on
//! the server's two cores) is not the server's.
//!
//! Why wrong passwords: each one costs the server one argon2id verification (m=19 MiB, t=2,
//! p=1), as a wrong backup code does, and the password step verifies even on a locked
//! account (locks change the answer, not the work), so the flood stays expensive for its
//! whole length with no need to script around per-account lockouts. The flood still goes
//! through the email step each time (a new pending sign-in per attempt), as an attacker's
//! script would.
//!
//! Run with `cargo bench -p server --bench flood`; `make bench` runs it for BENCHMARKS.md.
//! `LIFELINE_BENCH_SERVER_ENV="NAME=value ..."` adds variables to the server's environment
//! for a diagnosis (e.g. `MALLOC_MMAP_THRESHOLD_=1048576`), and `LIFELINE_BENCH_BIN` runs
//! another build of the server (to measure the one before a change); the report names them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../domain/benches/common/mod.rs"]
mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use common::{mib, ms, percentile, publish, samples_cell, status_kib, verdict};
use domain::{
    accounts::{self, NewMember},
    hashing::PasswordHasher,
    identity::Role,
    secrets::{Password, SecretKey},
    testing::TestDatabase,
};
use reqwest::{Client, header};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// Runs, each on a fresh server process: the page-load target must hold in every one.
const RUNS: usize = 5;
const WORKERS: usize = 200;
const FLOOD: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(15);
const ACCOUNTS: usize = 20;
const PASSWORD: &str = "correct horse battery staple";
const P99_RATIO_TARGET: f64 = 2.0;
const PEAK_RSS_TARGET_MIB: f64 = 128.0;

fn session(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("lifeline_session="))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

/// Loads `/sign-in` one after another until `until`; the latencies of the loads.
async fn page_loads(client: &Client, url: &str, until: Instant) -> Vec<Duration> {
    let mut samples = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        let response = client.get(url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET /sign-in: {}",
            response.status()
        );
        response.bytes().await.unwrap();
        samples.push(t.elapsed());
        // A person's browser, not a second flood: loads 50 ms apart.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    samples
}

/// One attacker: email step, then a wrong password, again and again until `until`.
async fn attacker(
    client: Client,
    base: String,
    worker: usize,
    until: Instant,
    statuses: Arc<Mutex<BTreeMap<String, u64>>>,
) {
    let mut n = worker;
    while Instant::now() < until {
        n += WORKERS;
        let email = format!("member{}@bench.test", n % ACCOUNTS);
        let step1 = client
            .post(format!("{base}/api/sign_in/email"))
            .header(header::ACCEPT, "application/json")
            .form(&[("email", email.as_str())])
            .send()
            .await;
        let key = match step1 {
            Ok(response) => match session(&response) {
                Some(id) => id,
                None => {
                    *statuses
                        .lock()
                        .unwrap()
                        .entry(format!(
                            "email step {} (no session)",
                            response.status().as_u16()
                        ))
                        .or_default() += 1;
                    continue;
                }
            },
            Err(_) => {
                *statuses
                    .lock()
                    .unwrap()
                    .entry("email step: transport error".into())
                    .or_default() += 1;
                continue;
            }
        };
        let step2 = client
            .post(format!("{base}/api/sign_in/password"))
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, format!("lifeline_session={key}"))
            .form(&[("password", "wrong password, again")])
            .send()
            .await;
        let label = match step2 {
            Ok(response) => format!("password step {}", response.status().as_u16()),
            Err(_) => "password step: transport error".into(),
        };
        *statuses.lock().unwrap().entry(label).or_default() += 1;
    }
}

/// One run's figures: a fresh server process on the bench's database.
struct Run {
    idle: Vec<Duration>,
    flooded: Vec<Duration>,
    idle_peak_kib: u64,
    peak_kib: u64,
    flood_time: Duration,
    statuses: BTreeMap<String, u64>,
}

impl Run {
    fn p99_ratio(&self) -> f64 {
        ms(percentile(&self.flooded, 99.0)) / ms(percentile(&self.idle, 99.0))
    }

    /// Password steps answered with `status`: 401 (a wrong password, evaluated), 503 (turned
    /// away at once: the hasher's queue was full).
    fn answered(&self, status: u16) -> u64 {
        self.statuses
            .get(&format!("password step {status}"))
            .copied()
            .unwrap_or(0)
    }
}

/// The server measured: this build's `lifeline`, or the one `LIFELINE_BENCH_BIN` names, to
/// measure another build (the commit before a change, say) by the same method.
fn server_binary() -> std::ffi::OsString {
    std::env::var_os("LIFELINE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_lifeline").into())
}

/// Starts the release `lifeline` on `database_url`: the child process and its base URL.
async fn start_server(
    database_url: &str,
    key: &str,
    workdir: &std::path::Path,
    extra_env: &[(String, String)],
) -> (tokio::process::Child, u32, String) {
    let mut child = Command::new(server_binary())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("LIFELINE_SECRET_KEY", key)
        .env("LIFELINE_LISTEN_ADDR", "127.0.0.1:0")
        // The flood comes from one address, loopback, at a few accounts: the throttle would
        // otherwise turn it away before any argon2 runs.
        .env("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "1000000")
        .env(
            "LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE",
            "1000000",
        )
        .env("LIFELINE_SIGN_IN_STARTS_PER_MINUTE", "1000000")
        .env("LIFELINE_LOG", "warn")
        .envs(extra_env.iter().map(|(name, value)| (name, value)))
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start target/release/lifeline");
    let pid = child.id().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    // The server logs at warn: nothing says where it listens. Ask /proc for its socket.
    tokio::spawn(async move {
        let mut stderr = stderr;
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("lifeline: {line}");
        }
    });
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let base = listening_address(pid).await;
    eprintln!("lifeline (pid {pid}) listens on {base}");
    (child, pid, base)
}

/// One run: page loads idle, then the flood with page loads under it, on a server started
/// for this run (so that its peak memory is this run's).
///
/// The page loads run on a runtime of their own (`person`): a person's browser is not
/// queued behind the attackers' script, so their requests must not wait in the same
/// scheduler as the 200 attacker tasks of this process.
async fn one_run(
    person: &tokio::runtime::Runtime,
    attackers: &tokio::runtime::Runtime,
    database_url: &str,
    extra_env: &[(String, String)],
) -> Run {
    let workdir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().to_hex();
    let (mut child, pid, base) = start_server(database_url, &key, workdir.path(), extra_env).await;

    let page = format!("{base}/sign-in");
    let load = |until: Instant| {
        let page = page.clone();
        person.spawn(async move {
            let probe = Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            page_loads(&probe, &page, until).await
        })
    };
    // Warm up: the first loads open the pool and fill caches.
    load(Instant::now() + Duration::from_secs(2)).await.unwrap();
    let idle = load(Instant::now() + IDLE).await.unwrap();
    let idle_peak_kib = status_kib(Some(pid), "VmHWM").unwrap_or(0);

    let flooders = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(WORKERS)
        .build()
        .unwrap();
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let started = Instant::now();
    let until = started + FLOOD;
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            attackers.spawn(attacker(
                flooders.clone(),
                base.clone(),
                w,
                until,
                Arc::clone(&statuses),
            ))
        })
        .collect();
    // Let the flood build up before sampling pages under it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flooded = load(until).await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let flood_time = started.elapsed();
    let peak_kib = status_kib(Some(pid), "VmHWM").unwrap_or(0);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let statuses = statuses.lock().unwrap().clone();
    Run {
        idle,
        flooded,
        idle_peak_kib,
        peak_kib,
        flood_time,
        statuses,
    }
}

#[tokio::main]
async fn main() {
    let database = TestDatabase::sqlite().await.migrated().await;
    let db = &database.db;
    let hasher = PasswordHasher::new(1).unwrap();
    let password = Password::new(PASSWORD);
    let now = Utc::now();
    let (org, _) =
        accounts::create_organization(db, &hasher, "Bench", "owner@bench.test", &password, now)
            .await
            .unwrap();
    for i in 0..ACCOUNTS {
        let email = format!("member{i}@bench.test");
        accounts::create_member(
            db,
            &hasher,
            None,
            org.id,
            NewMember {
                email: &email,
                password: &password,
                role: Role::Member,
            },
            now,
        )
        .await
        .unwrap();
    }

    let extra_env: Vec<(String, String)> = std::env::var("LIFELINE_BENCH_SERVER_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let person = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("person")
        .enable_all()
        .build()
        .unwrap();
    // The attackers' script runs below the priority of the server and of the person's
    // browser: on a real server it runs on the attackers' machines, not on its cores. Their
    // requests still arrive as fast as the server takes them (the report counts them).
    let attackers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("attackers")
        .on_thread_start(|| {
            domain::hashing::lower_this_threads_priority(ATTACKERS_NICENESS).unwrap();
        })
        .enable_all()
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for run in 1..=RUNS {
        eprintln!("flood run {run} of {RUNS}");
        runs.push(one_run(&person, &attackers, &database.url, &extra_env).await);
    }
    person.shutdown_background();
    attackers.shutdown_background();
    publish("4-flood", &report(&runs, &extra_env));
}

/// How much lower the attackers' script runs than the server and the person's browser: as
/// low as the server's own hashing threads (`domain::hashing::HASHING_NICENESS`), so that it
/// takes the cores the server leaves, as traffic from other machines would.
const ATTACKERS_NICENESS: i32 = 10;

/// Part 4 of BENCHMARKS.md: each run's page loads and memory, and the verdicts over all runs.
fn report(runs: &[Run], extra_env: &[(String, String)]) -> String {
    let mut out = String::new();
    out.push_str("## 4. Flood resilience\n\n");
    out.push_str(&format!(
        "`cargo bench -p server --bench flood`: the release `lifeline` binary on SQLite, \
         `LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE=1000000` and \
         `LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE=1000000` (the flood comes from \
         loopback, at a few accounts), `LIFELINE_LOG=warn`. {RUNS} runs, each on a server \
         process of its own: {WORKERS} concurrent attackers for {} s, each repeating the email \
         step and a wrong password on {ACCOUNTS} accounts (one argon2id verification per \
         attempt, also on a locked account). Page: `GET /sign-in` one at a time, 50 ms apart, \
         {} s idle just before the flood, then during it, sent from a runtime of its own (a \
         person's browser does not wait behind the attackers' tasks). The attackers' script \
         runs on a runtime of its own at nice {ATTACKERS_NICENESS}, as low as the server's \
         hashing threads: on a real server, the attackers' CPU is on their machines (earlier \
         rounds ran it at the server's priority, and its own work slowed the page loads).\n\n",
        FLOOD.as_secs(),
        IDLE.as_secs()
    ));
    if let Some(binary) = std::env::var_os("LIFELINE_BENCH_BIN") {
        out.push_str(&format!(
            "**Not this build's server:** `{}` (`LIFELINE_BENCH_BIN`).\n\n",
            binary.to_string_lossy()
        ));
    }
    if !extra_env.is_empty() {
        out.push_str(&format!(
            "**Not the server as shipped:** its environment also had {} (`LIFELINE_BENCH_SERVER_ENV`).\n\n",
            extra_env
                .iter()
                .map(|(name, value)| format!("`{name}={value}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str(
        "| run | idle loads, p50, p99 | under the flood: loads, p50, p99 | p99 ratio | wrong passwords evaluated (401), per second | turned away (503), per second | peak RSS idle → after the flood |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (n, run) in runs.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2}× | {:.0} | {:.0} | {:.1} → {:.1} MiB |\n",
            n + 1,
            samples_cell(&run.idle, 99.0),
            samples_cell(&run.flooded, 99.0),
            run.p99_ratio(),
            run.answered(401) as f64 / run.flood_time.as_secs_f64(),
            run.answered(503) as f64 / run.flood_time.as_secs_f64(),
            mib(run.idle_peak_kib),
            mib(run.peak_kib),
        ));
    }
    let mut ratios: Vec<f64> = runs.iter().map(Run::p99_ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let worst_ratio = ratios.last().copied().unwrap_or(f64::NAN);
    let median_ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
    let worst_peak = runs.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    let mut answers: BTreeMap<&str, u64> = BTreeMap::new();
    for (status, count) in runs.iter().flat_map(|r| r.statuses.iter()) {
        *answers.entry(status.as_str()).or_default() += count;
    }
    out.push_str(&format!(
        "\nThe p99 ratio over the runs: median {median_ratio:.2}×, from {:.2}× to \
         {worst_ratio:.2}×. Responses over all runs: {}.\n\n",
        ratios.first().copied().unwrap_or(f64::NAN),
        answers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "- Target page-load p99 under the flood ≤ 2× idle p99 in every one of {RUNS} runs \
         (worst run): {}\n",
        verdict(worst_ratio, P99_RATIO_TARGET, "×")
    ));
    out.push_str(&format!(
        "- Target server peak RSS ≤ 128 MiB (worst run): {}\n",
        verdict(mib(worst_peak), PEAK_RSS_TARGET_MIB, "MiB")
    ));
    out
}

/// `http://127.0.0.1:<port>` of the TCP socket process `pid` listens on, from /proc.
async fn listening_address(pid: u32) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(port) = listening_port(pid) {
            // Listening is not yet serving: wait for an answer.
            let base = format!("http://127.0.0.1:{port}");
            if reqwest::get(format!("{base}/sign-in")).await.is_ok() {
                return base;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lifeline did not listen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The port of a listening IPv4 socket owned by `pid`.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // state 0A: LISTEN
        if fields.get(3) != Some(&"0A")
            || !inodes.iter().any(|i| Some(&i.as_str()) == fields.get(9))
        {
            return None;
        }
        let port = fields.get(1)?.rsplit(':').next()?;
        u16::from_str_radix(port, 16).ok()
    })
}
