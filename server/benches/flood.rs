//! Flood resilience: the release `lifeline` binary under 200 concurrent wrong-password
//! sign-ins for 30 seconds, from loopback with the per-address throttle raised out of the
//! way. Measures page loads (`GET /sign-in`) during the flood next to the same measured
//! idle just before, and the server's peak resident memory.
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
//! for a diagnosis (e.g. `MALLOC_MMAP_THRESHOLD_=1048576`); the report names them.
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
use common::{human, mib, ms, percentile, publish, status_kib, verdict};
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
    let workdir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().to_hex();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifeline"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &database.url)
        .env("LIFELINE_SECRET_KEY", &key)
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
        .current_dir(workdir.path())
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

    let probe = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = format!("{base}/sign-in");
    // Warm up: the first loads open the pool and fill caches.
    page_loads(&probe, &page, Instant::now() + Duration::from_secs(2)).await;
    let idle = page_loads(&probe, &page, Instant::now() + IDLE).await;
    let idle_peak = status_kib(Some(pid), "VmHWM").unwrap_or(0);

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
            tokio::spawn(attacker(
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
    let flooded = page_loads(&probe, &page, until).await;
    for task in tasks {
        task.await.unwrap();
    }
    let flood_time = started.elapsed();
    let peak = status_kib(Some(pid), "VmHWM").unwrap_or(0);
    let _ = child.start_kill();
    let _ = child.wait().await;

    let statuses = statuses.lock().unwrap().clone();
    let attempts: u64 = statuses
        .iter()
        .filter(|(k, _)| k.starts_with("password step") && !k.contains("transport"))
        .map(|(_, v)| v)
        .sum();
    let (idle50, idle99) = (percentile(&idle, 50.0), percentile(&idle, 99.0));
    let (flood50, flood99) = (percentile(&flooded, 50.0), percentile(&flooded, 99.0));
    let ratio99 = ms(flood99) / ms(idle99);
    let mut out = String::new();
    out.push_str("## 4. Flood resilience\n\n");
    out.push_str(&format!(
        "`cargo bench -p server --bench flood`: the release `lifeline` binary on SQLite, \
         `LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE=1000000` and \
         `LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE=1000000` (the flood comes from \
         loopback, at a few accounts), \
         `LIFELINE_LOG=warn`. \
         {WORKERS} concurrent attackers for {} s, each repeating the email step and a wrong \
         password on {ACCOUNTS} accounts (one argon2id verification per attempt, also on a \
         locked account). Page: `GET /sign-in` one at a time, 50 ms apart, {} s idle \
         just before the flood, then during it.\n\n",
        FLOOD.as_secs(),
        IDLE.as_secs()
    ));
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
    out.push_str("| `GET /sign-in` | loads | p50 | p99 |\n| --- | --- | --- | --- |\n");
    out.push_str(&format!(
        "| idle | {} | {} | {} |\n",
        idle.len(),
        human(idle50),
        human(idle99)
    ));
    out.push_str(&format!(
        "| under the flood | {} | {} | {} |\n",
        flooded.len(),
        human(flood50),
        human(flood99)
    ));
    out.push_str(&format!(
        "| ratio | | {:.2}× | {:.2}× |\n\n",
        ms(flood50) / ms(idle50),
        ratio99
    ));
    out.push_str(&format!(
        "Wrong passwords answered: {attempts} in {:.1} s ({:.1} per second, the machine's \
         argon2id throughput under load). Responses: {}.\n\n",
        flood_time.as_secs_f64(),
        attempts as f64 / flood_time.as_secs_f64(),
        statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "Server peak resident memory (VmHWM): {:.1} MiB when idle, {:.1} MiB after the flood.\n\n",
        mib(idle_peak),
        mib(peak)
    ));
    out.push_str(&format!(
        "- Target page-load p99 under the flood ≤ 2× idle p99 (issue 17): {}\n",
        verdict(ratio99, P99_RATIO_TARGET, "×")
    ));
    out.push_str(&format!(
        "- Target server peak RSS ≤ 128 MiB (issue 17): {}\n",
        verdict(mib(peak), PEAK_RSS_TARGET_MIB, "MiB")
    ));
    publish("4-flood", &out);
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
