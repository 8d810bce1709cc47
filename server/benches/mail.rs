//! Security mail (issue 14): how fast the release `lifeline` binary's outbox worker delivers
//! to a real SMTP server, and that a backup-code redemption takes no longer while it does.
//!
//! 1. Throughput: 10,000 messages written straight to the outbox of a fresh database
//!    ([`notifications::enqueue`]), then the binary started on it with `LIFELINE_SMTP_URL`
//!    pointing at `scripts/smtp-sink.py` (aiosmtpd, which keeps each message as a file).
//!    Timed from the moment the process is started (its worker begins before it listens)
//!    until every row is marked sent (or [`DELIVERY_LIMIT`], after which the rate is taken
//!    from what was sent by then); then the sink must hold exactly 10,000 messages with
//!    10,000 different `Message-ID`s: none lost, none sent twice. SQLite, and PostgreSQL when
//!    `LIFELINE_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//!    answers: a database is created for the run and dropped after it.
//! 2. Redemption: on the SQLite server, members with backup codes sign in over HTTP (email,
//!    password, backup code); only the backup-code step is timed. Interleaved rounds, each
//!    one redemption with the worker idle (nothing unsent, nothing claimed) and one with the
//!    worker busy on a backlog written just before (still unsent when the answer came; a
//!    sample where the backlog ran out first is dropped and the next backlog doubled). Each
//!    redemption writes its own notice too. Medians and the ratio busy / idle, in each of
//!    [`RUNS`] runs; the figure is the median of the runs' ratios.
//!
//! The sink runs under `nice -n 19`: it stands for a mail server on another host, and on
//! this machine's two cores it would otherwise take a core from the redemption being timed.
//!
//! Between samples the rest of a backlog is marked sent by the benchmark itself (it never
//! reaches the sink), so that an idle sample does not wait for a drain.
//!
//! Run with `cargo bench -p server --bench mail` (needs `scripts/ensure-tools.sh --test` for
//! the sink's aiosmtpd); `make bench` runs it for BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../domain/benches/common/mod.rs"]
mod common;
// The integration tests' one harness: the `lifeline` process, the sign-in steps, members with
// backup codes, and the SMTP sink. The benchmark uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::Utc;
use common::{human, ms, percentile, publish, samples_cell, verdict};
use domain::{
    accounts::{self, NewMember},
    authz::Authz,
    hashing::PasswordHasher,
    identity::Role,
    notifications::{self, Message, Notice, Rendered, render, rendering::readable_time},
    secrets::{Password, SecretKey},
    testing::{self, TestDatabase},
};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, Statement, TransactionTrait, Value,
    sqlx::{Connection, PgConnection},
};
use support::{
    PASSWORD,
    client::{SecondFactor, client, password_step, second_factor_step, succeeded},
    organizations::enrol_with_codes,
    process::Server,
    smtp::SmtpSink,
};

/// Messages delivered in the throughput run.
const MESSAGES: usize = 10_000;
/// Messages written per transaction when filling the outbox.
const WRITE_BATCH: usize = 500;
/// How long the throughput run may take before it is called short (and the rate is taken
/// from what was sent by then), so that `make bench` stays within minutes.
const DELIVERY_LIMIT: Duration = Duration::from_secs(100);
/// Rounds of one run of the redemption comparison: one idle and one busy redemption each.
const ROUNDS: usize = 20;
/// Runs of the redemption comparison, one after another on the same server: the figure is
/// the median of their ratios, since one run's ratio moves with whatever else the shared
/// machine does.
const RUNS: usize = 5;
/// Messages written before the first busy redemption; doubled when one runs out too soon.
const FIRST_BACKLOG: usize = 1_000;
/// Each member's set holds this many codes (the default policy).
const CODES_PER_MEMBER: usize = 10;
const RATIO_TARGET: f64 = 1.25;
/// How long one wait for the worker (to start, or to finish its batch) may take.
const WORKER_LIMIT: Duration = Duration::from_secs(30);
const OWNER: &str = "owner@bench.test";
/// Unsent security mail: what the worker's own index holds, so that the benchmark's polls
/// and its marking read that index rather than every message (here, with no webhooks and no
/// failures, it is every unsent row).
const UNSENT: &str = "sent_at IS NULL AND failed_at IS NULL AND webhook_id IS NULL";

/// What the worker did with one full outbox.
struct Throughput {
    backend: &'static str,
    /// From starting the process to the last row marked sent, and to its "listening" line.
    total: Duration,
    startup: Duration,
    /// Rows marked sent by the time it listened, and at the end.
    sent_at_listening: i64,
    sent: i64,
    /// Rows marked sent just before the sink was read (the worker goes on when the time ran
    /// out): each must be in the sink.
    sent_before_reading: i64,
    /// What the sink holds: messages, and different `Message-ID`s among them.
    files: usize,
    distinct_ids: usize,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.sent as f64 / self.total.as_secs_f64()
    }

    /// Every message sent is in the sink, and none is there twice (a message sent again
    /// carries the same `Message-ID`).
    fn none_lost_or_twice(&self) -> bool {
        self.files as i64 >= self.sent_before_reading && self.distinct_ids == self.files
    }

    fn all_exactly_once(&self) -> bool {
        self.sent == MESSAGES as i64 && self.files == MESSAGES && self.none_lost_or_twice()
    }
}

/// `sql` with `?` placeholders, numbered for PostgreSQL.
fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DatabaseBackend::Postgres => {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `SELECT COUNT(*) FROM notification_outbox WHERE <condition>`.
async fn outbox_count(db: &impl ConnectionTrait, condition: &str, values: Vec<Value>) -> i64 {
    let backend = db.get_database_backend();
    let sql =
        format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM notification_outbox WHERE {condition}");
    db.query_one(statement(backend, &sql, values))
        .await
        .unwrap()
        .expect("a count")
        .try_get("", "n")
        .unwrap()
}

/// A message as long as a real notice: the words of a redemption's.
fn notice(n: usize) -> Rendered {
    render(&Notice {
        subject: "A backup code was used to sign in to your account".into(),
        what: format!(
            "Backup code number {} of your set was used to sign in to your account.",
            n % CODES_PER_MEMBER + 1
        ),
        facts: vec![
            ("When", readable_time(Utc::now())),
            ("From", "127.0.0.1".into()),
            (
                "Browser",
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0".into(),
            ),
        ],
        status: Some("You have 9 unused backup codes.".into()),
        if_you: "If this was you, nothing more is needed. Each code works once.".into(),
        if_not_you: "Someone else holds one of your codes. Tell your administrators.".into(),
        contacts: vec![OWNER.into()],
        not_me: None,
    })
}

/// Writes `count` messages to the owner (member `owner_id` of `org_id`), due now.
async fn enqueue(database: &TestDatabase, org_id: i32, owner_id: i32, count: usize) {
    let mut written = 0;
    while written < count {
        let txn = database.db.begin().await.unwrap();
        for n in written..count.min(written + WRITE_BATCH) {
            notifications::enqueue(
                &txn,
                Message {
                    org_id,
                    user_id: Some(owner_id),
                    kind: "backup_code.redeemed",
                    recipient: OWNER,
                    rendered: notice(n),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        }
        txn.commit().await.unwrap();
        written = count.min(written + WRITE_BATCH);
    }
}

/// An organization with its owner; returns their ids.
async fn organization(database: &TestDatabase, hasher: &PasswordHasher) -> (i32, i32) {
    let (org, owner) = accounts::create_organization(
        &database.db,
        hasher,
        "Bench",
        OWNER,
        &Password::new(PASSWORD),
        Utc::now(),
    )
    .await
    .unwrap();
    (org.id, owner.id)
}

/// Fills the outbox of `database` with [`MESSAGES`] messages, starts the server on it with
/// `sink`, and waits until the worker has sent them all. Returns the server, still running.
async fn throughput(
    backend: &'static str,
    database: &TestDatabase,
    key: &SecretKey,
    sink: &SmtpSink,
    (org_id, owner_id): (i32, i32),
) -> (Server, Throughput) {
    enqueue(database, org_id, owner_id, MESSAGES).await;
    let db = &database.db;
    assert_eq!(outbox_count(db, UNSENT, vec![]).await, MESSAGES as i64);
    let smtp_url = sink.url();
    eprintln!("{backend}: {MESSAGES} messages in the outbox; starting lifeline");
    let started = Instant::now();
    let server = Server::start_with_key(
        &database.url,
        key,
        &[("LIFELINE_SMTP_URL", smtp_url.as_str())],
    )
    .await;
    let startup = started.elapsed();
    let sent_at_listening = outbox_count(db, "sent_at IS NOT NULL", vec![]).await;
    let total = loop {
        let unsent = outbox_count(db, UNSENT, vec![]).await;
        let elapsed = started.elapsed();
        if unsent == 0 || elapsed > DELIVERY_LIMIT {
            break elapsed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sent = outbox_count(db, "sent_at IS NOT NULL", vec![]).await;
    eprintln!("{backend}: {sent} sent in {total:.1?}");
    // Two more rounds of the worker: a message sent twice would show by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent_before_reading = outbox_count(db, "sent_at IS NOT NULL", vec![]).await;
    let messages = sink.messages();
    let distinct_ids: HashSet<String> = messages
        .iter()
        .filter_map(|message| {
            message
                .raw
                .lines()
                .find_map(|line| line.strip_prefix("Message-ID: "))
                .map(str::to_owned)
        })
        .collect();
    let figures = Throughput {
        backend,
        total,
        startup,
        sent_at_listening,
        sent,
        sent_before_reading,
        files: messages.len(),
        distinct_ids: distinct_ids.len(),
    };
    (server, figures)
}

/// The state of the worker a redemption is timed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worker {
    /// Nothing unsent, nothing claimed: it only looks, once a second.
    Idle,
    /// Sending a backlog, which is still unsent when the answer comes.
    Busy,
}

/// Marks everything unsent as sent (the benchmark's doing: it never reaches the sink), then
/// waits until the worker has finished the batch it holds.
async fn quiesce(db: &impl ConnectionTrait) {
    let backend = db.get_database_backend();
    db.execute(statement(
        backend,
        &format!("UPDATE notification_outbox SET sent_at = ? WHERE {UNSENT}"),
        vec![Utc::now().into()],
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + WORKER_LIMIT;
    while outbox_count(db, "sent_at IS NULL OR claimed_until IS NOT NULL", vec![]).await > 0 {
        assert!(Instant::now() < deadline, "the worker did not go idle");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The highest outbox id so far.
async fn last_id(db: &impl ConnectionTrait) -> i64 {
    let backend = db.get_database_backend();
    db.query_one(statement(
        backend,
        "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS n FROM notification_outbox",
        vec![],
    ))
    .await
    .unwrap()
    .expect("a row")
    .try_get("", "n")
    .unwrap()
}

/// Redemptions timed with the worker idle and busy.
struct Redemptions {
    idle: Vec<Duration>,
    busy: Vec<Duration>,
    /// Busy samples dropped because the backlog ran out before the answer.
    dropped: usize,
    /// The backlog written before each busy redemption, at the end.
    backlog: usize,
}

/// Members with backup codes in `org_id`: (email, codes).
async fn members_with_codes(
    database: &TestDatabase,
    hasher: &PasswordHasher,
    key: &SecretKey,
    org_id: i32,
    count: usize,
) -> Vec<(String, Vec<String>)> {
    let authz = Authz::load(&database.db).await.unwrap();
    let password = Password::new(PASSWORD);
    let mut members = Vec::new();
    for i in 0..count {
        let email = format!("member{i}@bench.test");
        let member = accounts::create_member(
            &database.db,
            hasher,
            None,
            org_id,
            NewMember {
                email: &email,
                password: &password,
                role: Role::Member,
            },
            Utc::now(),
        )
        .await
        .unwrap();
        let enrolled = enrol_with_codes(&database.db, &authz, key, member.id, Utc::now()).await;
        members.push((email, enrolled.codes));
    }
    members
}

/// Interleaved redemptions on `server`, each with a code of `members`.
async fn redemptions(
    database: &TestDatabase,
    server: &Server,
    (org_id, owner_id): (i32, i32),
    members: Vec<(String, Vec<String>)>,
    first_backlog: usize,
) -> Redemptions {
    let db = &database.db;
    let mut codes = members
        .into_iter()
        .flat_map(|(email, codes)| codes.into_iter().map(move |code| (email.clone(), code)));
    let http = client();
    let mut figures = Redemptions {
        idle: Vec::new(),
        busy: Vec::new(),
        dropped: 0,
        backlog: first_backlog,
    };
    for round in 0..ROUNDS {
        // Alternate which comes first, so that neither always follows the other.
        let order = if round % 2 == 0 {
            [Worker::Idle, Worker::Busy]
        } else {
            [Worker::Busy, Worker::Idle]
        };
        for worker in order {
            let Some((email, code)) = codes.next() else {
                eprintln!("out of codes after {round} rounds");
                return figures;
            };
            let before = last_id(db).await;
            if worker == Worker::Busy {
                // Written first, so that the worker is at it by the time the code is sent.
                quiesce(db).await;
                enqueue(database, org_id, owner_id, figures.backlog).await;
            }
            let pending = password_step(&http, server, &email, PASSWORD).await;
            match worker {
                Worker::Idle => quiesce(db).await,
                Worker::Busy => {
                    let deadline = Instant::now() + WORKER_LIMIT;
                    while outbox_count(db, "id > ? AND attempts > 0", vec![before.into()]).await
                        == 0
                    {
                        assert!(Instant::now() < deadline, "the worker did not start");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            let started = Instant::now();
            let response =
                second_factor_step(&http, server, &pending, SecondFactor::BackupCode(&code)).await;
            let status = response.status();
            response.bytes().await.unwrap();
            let took = started.elapsed();
            assert!(succeeded(status), "{email}: backup code step {status}");
            match worker {
                Worker::Idle => figures.idle.push(took),
                Worker::Busy => {
                    if outbox_count(db, "id > ? AND sent_at IS NULL", vec![before.into()]).await > 0
                    {
                        figures.busy.push(took);
                    } else {
                        figures.dropped += 1;
                        figures.backlog *= 2;
                    }
                }
            }
        }
    }
    quiesce(db).await;
    figures
}

/// The PostgreSQL server to measure on, if it answers; else why not.
async fn postgres() -> Result<String, String> {
    let url = std::env::var("LIFELINE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match PgConnection::connect(&url).await {
        Ok(connection) => {
            let _ = connection.close().await;
            Ok(url)
        }
        Err(error) => Err(format!("no server at `{url}` ({error})")),
    }
}

#[tokio::main]
async fn main() {
    let key = testing::secret_key();
    let hasher = PasswordHasher::new(2).unwrap();
    let members_per_run = (2 * ROUNDS).div_ceil(CODES_PER_MEMBER) + 1;
    let members_needed = members_per_run * RUNS;

    // SQLite: the members first (their set-up writes notices, which are not part of the
    // figures), then the outbox.
    let sqlite = TestDatabase::sqlite().await.migrated().await;
    let ids = organization(&sqlite, &hasher).await;
    eprintln!("SQLite: enrolling {members_needed} members with backup codes");
    let members = members_with_codes(&sqlite, &hasher, &key, ids.0, members_needed).await;
    sqlite.execute("DELETE FROM notification_outbox").await;
    let sink = SmtpSink::start_yielding().await;
    let (server, sqlite_throughput) = throughput("SQLite", &sqlite, &key, &sink, ids).await;
    let mut members = members;
    let mut redeemed: Vec<Redemptions> = Vec::new();
    for run in 1..=RUNS {
        eprintln!("SQLite: run {run} of {RUNS}: {ROUNDS} rounds of redemptions");
        let backlog = redeemed.last().map_or(FIRST_BACKLOG, |last| last.backlog);
        let these = members.drain(..members_per_run).collect();
        redeemed.push(redemptions(&sqlite, &server, ids, these, backlog).await);
    }
    server.terminate().await;
    drop(sink);

    let mut measured = vec![sqlite_throughput];
    let mut notes = Vec::new();
    match postgres().await {
        Ok(url) => {
            let pg = TestDatabase::postgres(&url).await.migrated().await;
            let ids = organization(&pg, &hasher).await;
            pg.execute("DELETE FROM notification_outbox").await;
            let sink = SmtpSink::start_yielding().await;
            let (server, figures) = throughput("PostgreSQL", &pg, &key, &sink, ids).await;
            server.terminate().await;
            measured.push(figures);
        }
        Err(why) => notes.push(format!("PostgreSQL was **not measured**: {why}.")),
    }

    publish("7-mail", &report(&measured, &notes, &redeemed));
}

fn report(measured: &[Throughput], notes: &[String], runs: &[Redemptions]) -> String {
    let mut out = String::new();
    out.push_str("## 7. Security mail: outbox throughput, and redemption with the worker busy\n\n");
    out.push_str(&format!(
        "`cargo bench -p server --bench mail`: the release `lifeline` binary, \
         `LIFELINE_SMTP_URL` pointing at `scripts/smtp-sink.py` (aiosmtpd on 127.0.0.1, one \
         file per message, fsynced) on the same machine at the lowest CPU priority (`nice -n \
         19`: it stands for a mail server on another host, so it runs on what the server \
         leaves idle); the server as shipped otherwise, \
         but for the sign-in throttles raised (every request comes from loopback). \
         Throughput: {MESSAGES} messages (as long as a real redemption notice) written to the \
         outbox of a fresh database, then the server started on it; timed from starting the \
         process (its worker begins before it listens) to the last row marked sent, or to \
         {} s, when the run is called short and the rate taken from what was sent by then. \
         After that the sink must hold exactly {MESSAGES} messages with {MESSAGES} different \
         `Message-ID`s (each message carries its row's idempotency key as its `Message-ID`, so \
         one sent twice shows).\n\n",
        DELIVERY_LIMIT.as_secs()
    ));
    out.push_str(
        "| database | messages sent | time | per second | per message | start-up (sent by then) \
         | in the sink (different Message-IDs) |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for t in measured {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} ms | {} ({}) | {} ({}) |\n",
            t.backend,
            t.sent,
            human(t.total),
            t.per_second(),
            1000.0 / t.per_second(),
            human(t.startup),
            t.sent_at_listening,
            t.files,
            t.distinct_ids
        ));
    }
    out.push('\n');
    for note in notes {
        out.push_str(&format!("{note}\n\n"));
    }

    out.push_str(&format!(
        "Redemption, on the SQLite server after its throughput run: members with backup codes \
         sign in over HTTP (email, password, backup code); only the backup-code step is timed \
         (one argon2id evaluation, the code spent, the sign-in and its notice written). {RUNS} \
         runs one after another, each of {ROUNDS} interleaved rounds with members of its own, \
         each round one redemption with the worker idle (nothing unsent, nothing claimed) and \
         one with it busy delivering a backlog written just before (the sample counts only if \
         some of it was still unsent when the answer came; a dropped sample doubles the next \
         backlog). The worker's own work (claiming, rendering, SMTP, marking sent) runs in the \
         server at normal priority and counts; the sink's does not. The figure is the median \
         of the runs' ratios.\n\n"
    ));
    out.push_str(
        "| run | worker idle: redemptions, median, p90 | worker busy: redemptions, median, p90 \
         | backlog (dropped) | ratio of medians |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut ratios = Vec::new();
    for (n, run) in runs.iter().enumerate() {
        if run.idle.is_empty() || run.busy.is_empty() {
            out.push_str(&format!("| {} | too few samples | | | |\n", n + 1));
            continue;
        }
        let ratio = ms(percentile(&run.busy, 50.0)) / ms(percentile(&run.idle, 50.0));
        ratios.push(ratio);
        out.push_str(&format!(
            "| {} | {} | {} | {} ({}) | {ratio:.2}× |\n",
            n + 1,
            samples_cell(&run.idle, 90.0),
            samples_cell(&run.busy, 90.0),
            run.backlog,
            run.dropped,
        ));
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied();
    if let (Some(median), Some(low), Some(high)) = (median, ratios.first(), ratios.last()) {
        out.push_str(&format!(
            "\nMedian of the {} ratios: **{median:.2}×** (from {low:.2}× to {high:.2}×).\n\n",
            ratios.len()
        ));
    }

    for t in measured {
        let once = if t.all_exactly_once() {
            format!(
                "**met** ({} in the sink, {} different Message-IDs)",
                t.files, t.distinct_ids
            )
        } else {
            format!(
                "**missed** ({} of {MESSAGES} sent in {}{}; {} in the sink, {} different \
                 Message-IDs: {})",
                t.sent,
                human(t.total),
                if t.sent < MESSAGES as i64 {
                    ", when the time ran out"
                } else {
                    ""
                },
                t.files,
                t.distinct_ids,
                if t.none_lost_or_twice() {
                    "none lost, none twice"
                } else {
                    "**some lost or sent twice**"
                }
            )
        };
        out.push_str(&format!(
            "- Outbox throughput on {}: {:.0} messages per second; all {MESSAGES} delivered, \
             each exactly once: {once}\n",
            t.backend,
            t.per_second(),
        ));
    }
    match median {
        Some(median) if ratios.len() == RUNS => out.push_str(&format!(
            "- Target redemption with the worker busy ≤ 1.25× idle (median of {RUNS} runs' \
             ratios of medians): {}\n",
            verdict(median, RATIO_TARGET, "×")
        )),
        _ => out.push_str(&format!(
            "- Target redemption with the worker busy ≤ 1.25× idle: **missed** (too few \
             samples: {} of {RUNS} runs measured)\n",
            ratios.len()
        )),
    }
    out
}
