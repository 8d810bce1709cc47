//! The admin pages at scale: one organization of 100,000 members and 1,000,000 audit
//! events, on SQLite and on PostgreSQL. Times what the server does for the first page of
//! members, the first page of the audit log (with the chain's word, as the page shows it),
//! the compliance summary (and its counts alone), the policy impact preview, and an export
//! of every event (events per second, and the growth
//! of the process's peak resident memory while it runs).
//!
//! The data is written with multi-row INSERTs, not through the domain one event at a time:
//! the audit events are chained here with the same canonical content as
//! `domain::audit::record`, and `domain::audit`'s own verification then walks the whole
//! chain, so a seeder that drifted from the real format would fail the run.
//!
//! Run with `cargo bench -p domain --bench admin_pages`. `LIFELINE_BENCH_MEMBERS` and
//! `LIFELINE_BENCH_EVENTS` change the scale; `LIFELINE_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) names the PostgreSQL server, on which a
//! database is created for the run and dropped after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::Write,
    time::{Duration, Instant},
};

use chrono::{SubsecRound, Utc};
use common::{human, mib, ms, percentile, publish, reset_peak_rss, status_kib, verdict};
use domain::{
    accounts,
    audit::{self, ChainMonitor, ChainReport, Filter},
    authz::Authz,
    hashing::PasswordHasher,
    identity::Member,
    members,
    secrets::Password,
    testing::TestDatabase,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value,
    sqlx::{Connection, PgConnection},
};

const ROUNDS: usize = 21;
const COMPLIANCE_ROUNDS: usize = 6;
const COMPLIANCE_BUDGET: Duration = Duration::from_secs(30);
const MEMBERS_TARGET_MS: f64 = 50.0;
const AUDIT_TARGET_MS: f64 = 50.0;
const COMPLIANCE_TARGET_MS: f64 = 100.0;
const IMPACT_TARGET_MS: f64 = 250.0;
/// The audit page's page size (app/src/api/audit.rs).
const AUDIT_PAGE: u64 = 50;

fn scale(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One multi-row INSERT of `rows` (each `width` values) into `table (columns)`.
async fn insert_rows(
    db: &impl ConnectionTrait,
    table: &str,
    columns: &str,
    width: usize,
    rows: Vec<Value>,
) {
    let backend = db.get_database_backend();
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    let mut n = 0;
    for row in 0..rows.len() / width {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push(',');
            }
            n += 1;
            match backend {
                DbBackend::Postgres => sql.push_str(&format!("${n}")),
                _ => sql.push('?'),
            }
        }
        sql.push(')');
    }
    db.execute(Statement::from_sql_and_values(backend, sql, rows))
        .await
        .unwrap();
}

fn member_email(id: i32) -> String {
    format!("member{id}@bench.test")
}

/// Adds members 2..=`count` to organization 1 (the owner is member 1); nine in ten with
/// MFA on, one in a hundred an admin. They share the owner's password hash.
async fn seed_members(db: &DatabaseConnection, count: usize, password_hash: &str) {
    let now = Utc::now().trunc_subsecs(6);
    let txn = db.begin().await.unwrap();
    let ids: Vec<i32> = (2..=count as i32).collect();
    for batch in ids.chunks(4000) {
        let mut values = Vec::with_capacity(batch.len() * 6);
        for &id in batch {
            values.push(Value::from(1i32));
            values.push(Value::from(member_email(id)));
            values.push(Value::from(password_hash.to_owned()));
            values.push(Value::from(if id % 100 == 0 { "admin" } else { "member" }));
            values.push(Value::from((id % 10 != 0).then_some(now)));
            values.push(Value::from(now));
        }
        insert_rows(
            &txn,
            "user_account",
            "org_id, email, password_hash, role, totp_enabled_at, created_at",
            6,
            values,
        )
        .await;
    }
    txn.commit().await.unwrap();
}

/// Codes in each seeded set.
const SEEDED_CODES: usize = 10;

/// Gives every member with MFA on (nine in ten) a set in force of [`SEEDED_CODES`] codes,
/// made between 0 and 399 days ago (so a maximum age cuts some), with `id % 11` of its
/// codes spent (so some are low and a few used up), counted on the set as a redemption
/// counts them. Returns how many sets.
async fn seed_sets(db: &DatabaseConnection, members: usize) -> usize {
    let now = Utc::now().trunc_subsecs(6);
    let txn = db.begin().await.unwrap();
    let with_sets: Vec<i32> = (2..=members as i32).filter(|id| id % 10 != 0).collect();
    let params = domain::hashing::DigestParams::CURRENT.to_string();
    // The set of member `id` is set `n` (its place among them), so its codes can name it.
    for (batch_no, batch) in with_sets.chunks(4000).enumerate() {
        let mut sets = Vec::with_capacity(batch.len() * 8);
        let mut codes = Vec::with_capacity(batch.len() * SEEDED_CODES * 4);
        for (i, &id) in batch.iter().enumerate() {
            let set_id = (batch_no * 4000 + i + 1) as i32;
            sets.extend([
                Value::from(set_id),
                Value::from(id),
                Value::from(now - chrono::Duration::days(i64::from(id % 400))),
                Value::from(vec![0u8; 16]),
                Value::from(params.clone()),
                Value::from(SEEDED_CODES as i32),
                Value::from((id % 11).min(SEEDED_CODES as i32)),
                Value::from((id % 11 > 0).then_some(now)),
            ]);
            for slot in 1..=SEEDED_CODES as i32 {
                codes.extend([
                    Value::from(set_id),
                    Value::from(slot),
                    Value::from(vec![slot as u8; 32]),
                    Value::from((slot <= id % 11).then_some(now)),
                ]);
            }
        }
        insert_rows(
            &txn,
            "backup_code_set",
            "id, user_id, generated_at, salt, params, code_count, codes_used, last_used_at",
            8,
            sets,
        )
        .await;
        for chunk in codes.chunks(4 * 4000) {
            insert_rows(
                &txn,
                "backup_code",
                "set_id, slot, digest, used_at",
                4,
                chunk.to_vec(),
            )
            .await;
        }
    }
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(
            "SELECT setval(pg_get_serial_sequence('backup_code_set', 'id'), \
             (SELECT MAX(id) FROM backup_code_set))",
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    with_sets.len()
}

/// Appends events to organization 1's chain until it holds `total`, spread over the last
/// 60 days, then moves the chain head to the last one.
async fn seed_events(db: &DatabaseConnection, total: usize, members: usize) {
    let head = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT seq, hash FROM audit_chain_head WHERE org_id = 1",
        ))
        .await
        .unwrap()
        .unwrap();
    let first: i64 = head.try_get("", "seq").unwrap();
    let mut prev: String = head.try_get("", "hash").unwrap();
    // Keyed as `record` keys them: the test key that `domain::testing` installs.
    let chain_key = audit::keys::ChainKey::installed_current().unwrap();
    let version = chain_key.version();
    let span = chrono::Duration::days(60);
    let start = Utc::now() - span;
    let step_us = span.num_microseconds().unwrap() / total as i64;
    const KINDS: [(&str, &str, &str); 6] = [
        ("sign_in.succeeded", "success", r#"{"factor":"totp"}"#),
        (
            "backup_code.redeemed",
            "success",
            r#"{"slot":3,"remaining":7}"#,
        ),
        (
            "backup_code.refused",
            "failure",
            r#"{"reason":"wrong code"}"#,
        ),
        ("sign_in.failed", "failure", r#"{"step":"password"}"#),
        ("backup_codes.generated", "success", r#"{"codes":10}"#),
        ("policy.saved", "denied", r#"{"version":2}"#),
    ];
    let mut seq = first;
    let mut txn = db.begin().await.unwrap();
    while (seq as usize) < total {
        let mut values = Vec::with_capacity(2000 * 15);
        for _ in 0..2000 {
            if seq as usize >= total {
                break;
            }
            seq += 1;
            let at = (start + chrono::Duration::microseconds(step_us * seq)).trunc_subsecs(6);
            let who = 1 + (seq as i32 * 7) % members as i32;
            let email = member_email(who);
            let (action, outcome, details) = KINDS[seq as usize % KINDS.len()];
            let ip = format!("10.{}.{}.{}", seq % 7, seq % 251, seq % 13);
            let agent = "Mozilla/5.0 (X11; Linux x86_64) Bench/1.0";
            let hash = chain_key.mac(&domain::audit::chain::Link {
                org_id: 1,
                seq,
                at,
                actor_id: Some(who),
                actor: Some(&email),
                action,
                target_id: Some(who),
                target: Some(&email),
                outcome,
                source_ip: Some(&ip),
                user_agent: Some(agent),
                details,
                prev_hash: &prev,
            });
            values.extend([
                Value::from(1i32),
                Value::from(at),
                Value::from(who),
                Value::from(email.clone()),
                Value::from(action),
                Value::from(who),
                Value::from(email),
                Value::from(outcome),
                Value::from(ip),
                Value::from(agent),
                Value::from(details),
                Value::from(seq),
                Value::from(prev.clone()),
                Value::from(hash.clone()),
                Value::from(version),
            ]);
            prev = hash;
        }
        insert_rows(
            &txn,
            "audit_event",
            "org_id, at, actor_id, actor, action, target_id, target, outcome, source_ip, \
             user_agent, details, seq, prev_hash, hash, key_version",
            15,
            values,
        )
        .await;
        if seq % 100_000 == 0 {
            txn.commit().await.unwrap();
            txn = db.begin().await.unwrap();
        }
    }
    txn.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        match db.get_database_backend() {
            DbBackend::Postgres => {
                "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE org_id = 1"
            }
            _ => "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE org_id = 1",
        },
        [Value::from(seq), Value::from(prev)],
    ))
    .await
    .unwrap();
    // Written in bulk, not through `audit::record`: the chart's daily counts are counted
    // from them once, as a restore counts them.
    domain::audit::daily::recount(&txn, 1).await.unwrap();
    txn.commit().await.unwrap();
}

/// What one backend measured, as a row of the report.
struct Figures {
    backend: &'static str,
    seed_members: Duration,
    seed_events: Duration,
    chain_verify: Duration,
    chain_events: i64,
    members_page: Vec<Duration>,
    audit_page: Vec<Duration>,
    /// One read of an account by primary key through the same pool, timed in every round
    /// next to the pages: the yardstick of this backend on this machine at that moment.
    yardstick: Vec<Duration>,
    compliance: Vec<Duration>,
    compliance_members: usize,
    /// The counts alone ([`members::standing_counts`]), timed in the same rounds; the rest of
    /// the summary is the 30-day chart.
    counts: Vec<Duration>,
    sets: usize,
    /// The policy impact preview of making codes "Required" with a 90-day maximum age.
    impact: Vec<Duration>,
    export_time: Duration,
    export_events: u64,
    export_bytes: u64,
    export_rss_before_kib: u64,
    export_peak_kib: u64,
    /// Resident memory every 100,000 events of the export.
    export_rss_kib: Vec<u64>,
    peak_reset: bool,
}

async fn measure(
    backend: &'static str,
    test_db: TestDatabase,
    members_n: usize,
    events_n: usize,
) -> Figures {
    let db = &test_db.db;
    let hasher = PasswordHasher::new(1).unwrap();
    let (_, owner) = accounts::create_organization(
        db,
        &hasher,
        "Bench",
        "owner@bench.test",
        &Password::new("correct horse battery"),
        Utc::now(),
    )
    .await
    .unwrap();
    let hash: String = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT password_hash FROM user_account WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "password_hash")
        .unwrap();
    eprintln!("{backend}: seeding {members_n} members and {events_n} events");
    let t = Instant::now();
    seed_members(db, members_n, &hash).await;
    let sets = seed_sets(db, members_n).await;
    let seed_members_time = t.elapsed();
    let t = Instant::now();
    seed_events(db, events_n, members_n).await;
    let seed_events_time = t.elapsed();
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.unwrap();
    } else {
        db.execute_unprepared("PRAGMA optimize").await.unwrap();
    }
    eprintln!("{backend}: seeded in {seed_members_time:?} + {seed_events_time:?}");

    let authz = Authz::load(db).await.unwrap();
    let owner: Member = accounts::member(db, owner.id).await.unwrap().unwrap();
    let monitor = ChainMonitor::default();

    // The audit page's first look at a chain this long starts its verification in the
    // background; the page reports "verifying" until it is done. Wait for the word.
    let t = Instant::now();
    let state = loop {
        match audit::chain_seen_by(db, &authz, &monitor, &owner, Utc::now())
            .await
            .unwrap()
        {
            ChainReport::Checked { state, .. } => break state,
            ChainReport::Verifying => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let chain_verify = t.elapsed();
    assert!(
        state.broken.is_none(),
        "{backend}: seeded chain breaks: {:?}",
        state.broken
    );
    assert_eq!(
        state.events as usize, events_n,
        "{backend}: events in the chain"
    );

    // First pages, interleaved so that a noisy moment slows both alike.
    let (mut members_page, mut audit_page, mut yardstick) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::hint::black_box(accounts::member(db, owner.id).await.unwrap());
        yardstick.push(t.elapsed());

        let t = Instant::now();
        let page = members::page(
            db,
            &authz,
            &owner,
            members::Filter::default(),
            None,
            Utc::now(),
        )
        .await
        .unwrap();
        members_page.push(t.elapsed());
        assert_eq!(page.rows.len() as u64, members::PAGE_SIZE);

        let t = Instant::now();
        let (events, _) =
            audit::page_seen_by(db, &authz, &owner, &Filter::default(), None, AUDIT_PAGE)
                .await
                .unwrap();
        let chain = audit::chain_seen_by(db, &authz, &monitor, &owner, Utc::now())
            .await
            .unwrap();
        audit_page.push(t.elapsed());
        assert_eq!(events.len() as u64, AUDIT_PAGE);
        assert!(matches!(chain, ChainReport::Checked { .. }));
    }

    let mut compliance = Vec::new();
    let mut compliance_members = 0;
    let (mut counts, mut impacts) = (Vec::new(), Vec::new());
    let stricter = domain::org_policy::OrgPolicy {
        codes: domain::org_policy::CodesMode::Required,
        max_set_age_days: 90,
        ..domain::org_policy::current(db, owner.org_id)
            .await
            .unwrap()
            .policy
    };
    let budget = Instant::now();
    for round in 0..COMPLIANCE_ROUNDS {
        // A slow report is measured fewer times, to keep the run bounded.
        if !compliance.is_empty() && budget.elapsed() > COMPLIANCE_BUDGET {
            break;
        }
        // Each round starts with another of the three, so that none is always measured on
        // the pages the one before it just read (the counts right after the summary) or
        // just pushed out of the cache (the summary right after the impact preview).
        for which in (0..3).map(|step| (round + step) % 3) {
            let t = Instant::now();
            match which {
                0 => {
                    let report = members::compliance(db, &authz, &owner, Utc::now())
                        .await
                        .unwrap();
                    compliance.push(t.elapsed());
                    compliance_members = usize::try_from(report.counts.members).unwrap();
                    // Counted in parts at this size: every member once.
                    assert_eq!(compliance_members, members_n, "{backend}: members counted");
                }
                1 => {
                    std::hint::black_box(
                        members::standing_counts(db, &authz, &owner, Utc::now())
                            .await
                            .unwrap(),
                    );
                    counts.push(t.elapsed());
                }
                _ => {
                    let impact =
                        domain::org_policy::impact(db, &authz, &owner, &stricter, Utc::now())
                            .await
                            .unwrap();
                    impacts.push(t.elapsed());
                    assert!(impact.effects.len() >= 2, "{impact:?}");
                }
            }
        }
    }

    // Export: every event through `for_each_event` into CSV (written to nowhere), with the
    // peak resident memory reset first so the peak after it belongs to the export.
    let peak_reset = reset_peak_rss();
    let rss_before = status_kib(None, "VmRSS").unwrap_or(0);
    let mut sink = std::io::sink();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut rss_samples = Vec::new();
    let t = Instant::now();
    audit::for_each_event(db, 1, None, |event| {
        let line = audit::csv_line(&event);
        count += 1;
        bytes += line.len() as u64 + 1;
        if count % 100_000 == 0 {
            rss_samples.push(status_kib(None, "VmRSS").unwrap_or(0));
        }
        writeln!(sink, "{line}")
    })
    .await
    .unwrap();
    let export_time = t.elapsed();
    let export_peak = status_kib(None, "VmHWM").unwrap_or(0);

    Figures {
        backend,
        seed_members: seed_members_time,
        seed_events: seed_events_time,
        chain_verify,
        chain_events: state.events,
        members_page,
        audit_page,
        yardstick,
        compliance,
        compliance_members,
        counts,
        sets,
        impact: impacts,
        export_time,
        export_events: count,
        export_bytes: bytes,
        export_rss_before_kib: rss_before,
        export_peak_kib: export_peak,
        export_rss_kib: rss_samples,
        peak_reset,
    }
}

#[tokio::main]
async fn main() {
    let members_n = scale("LIFELINE_BENCH_MEMBERS", 100_000);
    let events_n = scale("LIFELINE_BENCH_EVENTS", 1_000_000);
    let pg_url = std::env::var("LIFELINE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());

    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let sqlite = TestDatabase::sqlite().await.migrated().await;
    figures.push(measure("SQLite", sqlite, members_n, events_n).await);
    match PgConnection::connect(&pg_url).await {
        Ok(connection) => {
            let _ = connection.close().await;
            let pg = TestDatabase::postgres(&pg_url).await.migrated().await;
            figures.push(measure("PostgreSQL", pg, members_n, events_n).await);
        }
        Err(error) => notes.push(format!(
            "PostgreSQL was **not measured**: no server at `{pg_url}` ({error})."
        )),
    }

    let mut out = String::new();
    out.push_str("## 3. Admin pages at scale\n\n");
    out.push_str(&format!(
        "`cargo bench -p domain --bench admin_pages`. One organization of {members_n} members \
         (nine in ten with MFA on, each of those with a set of {SEEDED_CODES} codes made up to 399 days ago, some spent) and {events_n} audit events in one \
         valid hash chain, seeded with multi-row INSERTs. Server-side time of the domain call \
         each page makes; pages are the median and worst of {ROUNDS} interleaved rounds, the \
         compliance summary, its counts and the impact preview of up to {COMPLIANCE_ROUNDS} rounds, each round starting with another of the three (fewer when one takes long; the count is shown). The counts are one statement per core (at most {}), each over a range of the members' ids, run at once. The audit page's time includes the \
         chain's word (`chain_seen_by`, after the first full verification, timed apart). \
         Each page is also given as a multiple of one primary-key read of an account through \
         the same pool, timed in the same rounds (the yardstick a noisy machine slows alike).\n\n",
        members::COUNT_PARTS_MAX
    ));
    out.push_str(
        "| backend | seed members / events | one primary-key read (yardstick) | first page of members | first page of audit log | \
         compliance summary | of it, the counts | policy impact preview (Required, 90-day age) | full chain verification | export of every event | peak RSS growth during export |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for f in &figures {
        let growth = f.export_peak_kib.saturating_sub(f.export_rss_before_kib);
        let yard = ms(percentile(&f.yardstick, 50.0));
        let times = |samples: &[Duration]| ms(percentile(samples, 50.0)) / yard;
        let (rss_min, rss_max) = (
            f.export_rss_kib.iter().copied().min().unwrap_or(0),
            f.export_rss_kib.iter().copied().max().unwrap_or(0),
        );
        out.push_str(&format!(
            "| {} | {} / {} | {} | {} = {:.0}× (worst {}) | {} = {:.0}× (worst {}) | {} = {:.0}× (worst {}, {} runs, {} members) | {} | {} ({} sets) | {} ({} events, {:.0} events/s) | {} ({:.0} events/s, {:.0} MiB of CSV) | {:.1} MiB (RSS {:.1} → peak {:.1} MiB{}; RSS every 100,000 events between {:.1} and {:.1} MiB) |\n",
            f.backend,
            human(f.seed_members),
            human(f.seed_events),
            human(percentile(&f.yardstick, 50.0)),
            human(percentile(&f.members_page, 50.0)),
            times(&f.members_page),
            human(percentile(&f.members_page, 100.0)),
            human(percentile(&f.audit_page, 50.0)),
            times(&f.audit_page),
            human(percentile(&f.audit_page, 100.0)),
            human(percentile(&f.compliance, 50.0)),
            times(&f.compliance),
            human(percentile(&f.compliance, 100.0)),
            f.compliance.len(),
            f.compliance_members,
            human(percentile(&f.counts, 50.0)),
            human(percentile(&f.impact, 50.0)),
            f.sets,
            human(f.chain_verify),
            f.chain_events,
            f.chain_events as f64 / f.chain_verify.as_secs_f64(),
            human(f.export_time),
            f.export_events as f64 / f.export_time.as_secs_f64(),
            f.export_bytes as f64 / 1_048_576.0,
            mib(growth),
            mib(f.export_rss_before_kib),
            mib(f.export_peak_kib),
            if f.peak_reset { "" } else { "; peak could not be reset, so it may predate the export" },
            mib(rss_min),
            mib(rss_max),
        ));
    }
    out.push('\n');
    for f in &figures {
        out.push_str(&format!(
            "- {}: first page of members ≤ 50 ms (median): {}; first page of audit log ≤ 50 ms (median): {}; compliance summary ≤ 100 ms (median): {}; policy impact preview ≤ 250 ms (median): {}.\n",
            f.backend,
            verdict(ms(percentile(&f.members_page, 50.0)), MEMBERS_TARGET_MS, "ms"),
            verdict(ms(percentile(&f.audit_page, 50.0)), AUDIT_TARGET_MS, "ms"),
            verdict(ms(percentile(&f.compliance, 50.0)), COMPLIANCE_TARGET_MS, "ms"),
            verdict(ms(percentile(&f.impact, 50.0)), IMPACT_TARGET_MS, "ms"),
        ));
    }
    for note in notes {
        out.push_str(&format!("- {note}\n"));
    }
    publish("3-admin-pages", &out);
}
