//! The authorization gate at scale: `domain::authz::Authz` loaded with the rules of 10,000
//! organizations (a third of them "Not allowed", every one with member exceptions and 20
//! groups of members, two of them with exceptions, one a help-desk member is scoped to),
//! the cost of one decision (p50/p99 over many), and how long a policy saved through one
//! gate takes to change the decisions of a second gate on the same database: another
//! server, run as a second process of this benchmark (so that it learns of the change as
//! another server would, not from this process having made it).
//!
//! Run with `cargo bench -p domain --bench gate`; `make bench` runs it for BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command as Process, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use common::{human, percentile, publish, us, verdict};
use domain::{
    accounts,
    audit::Source,
    authz::{Action, Authz},
    command::Command,
    db,
    hashing::PasswordHasher,
    identity::{Member, Role},
    org_policy::{self, CodesMode},
    secrets::Password,
    testing::TestDatabase,
};
use sea_orm::{ConnectionTrait, TransactionTrait};

/// Organizations with rules of their own (the real one, 1, included);
/// `LIFELINE_BENCH_ORGS` changes it.
fn orgs() -> i32 {
    std::env::var("LIFELINE_BENCH_ORGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
/// Decisions are sampled until this many, or until [`DECISION_BUDGET`] has passed.
const DECISIONS: usize = 20_000;
const DECISION_BUDGET: Duration = Duration::from_secs(20);
/// Distinct questions (and organizations) asked about, spread over all of them.
const QUESTIONS: i32 = 400;
/// Policy changes whose propagation to the second gate is timed.
const FLIPS: usize = 6;
/// Questions never asked before, about organizations whose enforcers are built.
const NEW_QUESTIONS: i32 = 2_000;
/// Set (to the database's URL) in the second process: the other server.
const FOLLOWER: &str = "LIFELINE_BENCH_GATE_FOLLOWER";
/// The member whose answer the propagation test flips (organization 1).
const FLIPPED_MEMBER: i32 = 42;
/// The targets of issue 8.
const DECISION_P99_TARGET_US: f64 = 50.0;
const PROPAGATION_TARGET_MS: f64 = 1000.0;

/// A member of another organization, as the gate sees them (the gate reads no accounts).
fn actor(id: i32, org_id: i32, role: Role) -> Member {
    Member {
        id,
        org_id,
        email: format!("m{id}@org{org_id}.test"),
        role,
        mfa_enabled: true,
        created_at: Utc::now(),
        mfa_setup_required: false,
        session_epoch: 0,
    }
}

/// The synthetic member `k` (0 or 1) of organization `org`, who holds an exception.
fn excepted_member(org: i32, k: i32) -> i32 {
    1_000_000 + org * 10 + k
}

/// Groups per organization, and members per group.
const GROUPS: i32 = 20;
const GROUP_MEMBERS: i32 = 3;

/// The group `g` (0 to [`GROUPS`]) of organization `org`.
fn group(org: i32, g: i32) -> i32 {
    org * GROUPS + g
}

/// The synthetic member `k` of group `g` of organization `org`.
fn grouped_member(org: i32, g: i32, k: i32) -> i32 {
    2_000_000 + (org * GROUPS + g) * GROUP_MEMBERS + k
}

/// The help-desk member of organization `org`, scoped to its group 0.
fn scoped_help_desk(org: i32) -> i32 {
    1_500_000 + org
}

/// `casbin_rule` rows as the policy and groups pages write them: "Not allowed" (deny for
/// every role) in every third organization, and two exceptions (one allow, one deny) in
/// each; [`GROUPS`] groups of [`GROUP_MEMBERS`] members each, group 0 with an "allowed"
/// exception, group 1 with a "not allowed" one, and a help-desk member scoped to group 0.
async fn seed_rules(db: &sea_orm::DatabaseConnection) -> usize {
    let mut rows = Vec::new();
    for org in 1..=orgs() {
        let domain = format!("org:{org}");
        for act in ["generate", "redeem"] {
            // Organization 1 is the real one whose policy the propagation test changes.
            if org != 1 && org % 3 == 0 {
                for role in ["owner", "admin", "member"] {
                    rows.push(format!(
                        "('p','{role}','{domain}','backup_codes','{act}','deny','')"
                    ));
                }
            }
            for (k, effect) in [(0, "allow"), (1, "deny")] {
                rows.push(format!(
                    "('p','member:{}','{domain}','backup_codes','{act}','{effect}','')",
                    excepted_member(org, k)
                ));
                rows.push(format!(
                    "('p','group:{}','{domain}','backup_codes','{act}','{effect}','')",
                    group(org, k)
                ));
            }
        }
        rows.push(format!(
            "('p','member:{}','{domain}','group:{}','assist','allow','')",
            scoped_help_desk(org),
            group(org, 0)
        ));
        for g in 0..GROUPS {
            for k in 0..GROUP_MEMBERS {
                rows.push(format!(
                    "('g','member:{}','group:{}','{domain}','','','')",
                    grouped_member(org, g, k),
                    group(org, g)
                ));
            }
        }
    }
    let txn = db.begin().await.unwrap();
    for batch in rows.chunks(1000) {
        txn.execute_unprepared(&format!(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES {}",
            batch.join(",")
        ))
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
    rows.len()
}

/// The other server: a gate on its own connection pool to the database at `url`, in this
/// second process. Answers `ask` with its decision about [`FLIPPED_MEMBER`] redeeming a
/// code, and `wait <answer>` with `changed` once its decision is no longer `<answer>`.
async fn follow(url: &str) {
    let db = db::connect(url).await.unwrap();
    let gate = Authz::load(&db).await.unwrap();
    let member = actor(FLIPPED_MEMBER, 1, Role::Member);
    let answer = || gate.allows(&member, 1, Action::RedeemBackupCode);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line == "ask" {
            writeln!(out, "{}", answer().await.unwrap()).unwrap();
        } else if let Some(before) = line.strip_prefix("wait ") {
            let before: bool = before.parse().unwrap();
            while answer().await.unwrap() == before {}
            writeln!(out, "changed").unwrap();
        }
        out.flush().unwrap();
    }
}

/// The second process, started on the database at `url`, and how to talk to it.
struct Follower {
    process: std::process::Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Follower {
    fn start(url: &str) -> Self {
        let mut process = Process::new(std::env::current_exe().unwrap())
            .env(FOLLOWER, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = process.stdin.take().unwrap();
        let output = BufReader::new(process.stdout.take().unwrap());
        Self {
            process,
            input,
            output,
        }
    }

    fn say(&mut self, line: &str) -> String {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    }

    fn send(&mut self, line: &str) {
        writeln!(self.input, "{line}").unwrap();
        self.input.flush().unwrap();
    }

    fn read(&mut self) -> String {
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::main]
async fn main() {
    if let Ok(url) = std::env::var(FOLLOWER) {
        follow(&url).await;
        return;
    }
    let test_db = TestDatabase::sqlite().await.migrated().await;
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
    assert_eq!(owner.org_id, 1);
    let rules = seed_rules(db).await;

    let started = Instant::now();
    let gate = Authz::load(db).await.unwrap();
    let load_time = started.elapsed();
    // The second instance: another process, with its own connection pool to the same file.
    let mut other = Follower::start(&test_db.url);

    // The questions: a member, an excepted member, an admin, an outsider, a member of a
    // group with an exception and a scoped help-desk member, of organizations spread over
    // all 10,000, about redeeming and generating codes, listing members, reading the audit
    // log and assisting a member.
    let orgs = orgs();
    let questions: Vec<(Member, i32, Action)> = (0..QUESTIONS)
        .map(|i| {
            let org = 1 + (i * 7919) % orgs;
            match i % 6 {
                0 => (
                    actor(i + 10, org, Role::Member),
                    org,
                    Action::RedeemBackupCode,
                ),
                1 => (
                    actor(excepted_member(org, i % 2), org, Role::Member),
                    org,
                    Action::GenerateBackupCodes,
                ),
                2 => (actor(i + 10, org, Role::Admin), org, Action::ListMembers),
                3 => (actor(i + 10, org + 1, Role::Owner), org, Action::ViewAudit),
                4 => (
                    actor(grouped_member(org, 1, i % GROUP_MEMBERS), org, Role::Member),
                    org,
                    Action::RedeemBackupCode,
                ),
                _ => (
                    actor(scoped_help_desk(org), org, Role::Helpdesk),
                    org,
                    Action::Assist(grouped_member(org, i % 2, 0)),
                ),
            }
        })
        .collect();
    // Sanity: the rules decide as seeded.
    assert!(
        !gate
            .allows(&actor(5, 3, Role::Member), 3, Action::RedeemBackupCode)
            .await
            .unwrap()
    );
    assert!(
        gate.allows(&actor(5, 4, Role::Member), 4, Action::RedeemBackupCode)
            .await
            .unwrap()
    );
    assert!(
        gate.allows(
            &actor(excepted_member(3, 0), 3, Role::Member),
            3,
            Action::RedeemBackupCode
        )
        .await
        .unwrap()
    );

    // A group's exception decides for its members; a scoped help desk reaches its group.
    let org = 4;
    for (k, allowed) in [(0, true), (1, false)] {
        let who = actor(grouped_member(org, k, 1), org, Role::Member);
        assert_eq!(
            gate.allows(&who, org, Action::RedeemBackupCode)
                .await
                .unwrap(),
            allowed
        );
    }
    let help_desk = actor(scoped_help_desk(org), org, Role::Helpdesk);
    for (g, reaches) in [(0, true), (5, false)] {
        let target = grouped_member(org, g, 2);
        assert_eq!(
            gate.allows(&help_desk, org, Action::Assist(target))
                .await
                .unwrap(),
            reaches
        );
    }

    // What a request pays: `allows` on the server's gate, which first checks the rules'
    // revision in the database; and the decision alone, on a `refreshed` gate (what a page
    // asking many questions pays per question after its one check).
    // Each question once first: an organization's first decision may build what the gate
    // keeps for it, and is timed apart from the steady state sampled after.
    let mut first = Vec::new();
    for (who, org, action) in &questions {
        let t = Instant::now();
        std::hint::black_box(gate.allows(who, *org, *action).await.unwrap());
        first.push(t.elapsed());
    }
    // Questions never asked before, about the same organizations (their enforcers built):
    // an admin assisting a member no one asked about, so that Casbin evaluates its matcher.
    let mut unasked = Vec::new();
    for i in 0..NEW_QUESTIONS {
        let (_, org, _) = &questions[usize::try_from(i % QUESTIONS).unwrap()];
        let admin = actor(i + 10, *org, Role::Admin);
        let t = Instant::now();
        std::hint::black_box(
            gate.allows(&admin, *org, Action::Assist(3_000_000 + i))
                .await
                .unwrap(),
        );
        unasked.push(t.elapsed());
    }
    let fixed = gate.refreshed().await.unwrap();
    let (mut full, mut alone) = (Vec::new(), Vec::new());
    let budget = Instant::now();
    for (i, (who, org, action)) in questions.iter().cycle().enumerate() {
        if i >= DECISIONS || (budget.elapsed() > DECISION_BUDGET && i >= 100) {
            break;
        }
        let t = Instant::now();
        std::hint::black_box(gate.allows(who, *org, *action).await.unwrap());
        full.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(fixed.allows(who, *org, *action).await.unwrap());
        alone.push(t.elapsed());
    }

    // Propagation: save the policy of organization 1 through `gate`, while `other` asks
    // until its answer changes. Alternates "Not allowed" and "Allowed".
    let mut flips = Vec::new();
    for _ in 0..FLIPS {
        let current = org_policy::current(db, 1).await.unwrap();
        let before: bool = other.say("ask").parse().unwrap();
        other.send(&format!("wait {before}"));
        let mut policy = current.policy;
        policy.codes = if before {
            CodesMode::NotAllowed
        } else {
            CodesMode::Allowed
        };
        let started = Instant::now();
        org_policy::save(
            &Command::new(db, &gate, &owner, &Source::default(), Utc::now()),
            current.version,
            &policy,
        )
        .await
        .unwrap();
        let saved = started.elapsed();
        assert_eq!(other.read(), "changed");
        flips.push((saved, started.elapsed()));
    }

    let p99_full = percentile(&full, 99.0);
    let worst_flip = flips.iter().map(|(_, seen)| *seen).max().unwrap();
    let median_flip = {
        let mut seen: Vec<Duration> = flips.iter().map(|(_, s)| *s).collect();
        seen.sort();
        seen[seen.len() / 2]
    };
    let mut out = String::new();
    out.push_str(&format!(
        "## 2. The gate at scale (Casbin, {orgs} organizations)\n\n"
    ));
    out.push_str(&format!(
        "`cargo bench -p domain --bench gate`. SQLite; {rules} organization rules in \
         `casbin_rule` ({orgs} organizations: every third \"Not allowed\", each with two \
         member exceptions and {GROUPS} groups of {GROUP_MEMBERS} members, two groups with \
         exceptions, one help-desk member scoped to a group) plus the committed baseline. \
         `Authz::load` took {}.\n\n",
        human(load_time)
    ));
    out.push_str("| one decision | samples | p50 | p99 | max |\n| --- | --- | --- | --- | --- |\n");
    for (name, samples) in [
        ("first decision about each organization asked about", &first),
        (
            "a question not asked before (Casbin evaluates it), enforcer built",
            &unasked,
        ),
        (
            "`Authz::allows` (the revision as trusted or read, then the decision)",
            &full,
        ),
        ("decision alone (`refreshed` gate)", &alone),
    ] {
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            samples.len(),
            human(percentile(samples, 50.0)),
            human(percentile(samples, 99.0)),
            human(percentile(samples, 100.0)),
        ));
    }
    out.push_str(&format!(
        "\n{QUESTIONS} questions about {QUESTIONS} organizations spread over all {orgs}, each \
         asked once first (the first row); then {NEW_QUESTIONS} questions no one asked before \
         about the same organizations (the second row: what a question costs before the gate \
         keeps its answer); then the first {QUESTIONS} sampled again, the two kinds of \
         decision interleaved (one of each per question): the gate reads the revision at most \
         every {} ms and keeps each organization's answers while its rules stand. Sampling \
         stops at {DECISIONS} decisions or after {} s.\n\n",
        domain::authz::revision::TRUSTED_FOR.as_millis(),
        DECISION_BUDGET.as_secs()
    ));
    out.push_str(&format!(
        "Policy change through one gate (`org_policy::save`) seen by a second gate in another \
         process, on its own connection pool to the same database, {FLIPS} changes: `save` \
         returned after \
         {} (median), the second gate's decision flipped after {} (median), {} (worst), \
         counted from the start of `save` (each, as save's time + the rest after it \
         returned: {}).\n\n",
        human({
            let mut s: Vec<Duration> = flips.iter().map(|(s, _)| *s).collect();
            s.sort();
            s[s.len() / 2]
        }),
        human(median_flip),
        human(worst_flip),
        flips
            .iter()
            .map(|(saved, seen)| format!("{} + {}", human(*saved), human(*seen - *saved)))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    out.push_str(&format!(
        "- Target one decision p99 ≤ 50 µs (`Authz::allows`): {}\n",
        verdict(us(p99_full), DECISION_P99_TARGET_US, "µs")
    ));
    out.push_str(&format!(
        "- Target one decision p99 ≤ 50 µs (decision alone): {}\n",
        verdict(us(percentile(&alone, 99.0)), DECISION_P99_TARGET_US, "µs")
    ));
    out.push_str(&format!(
        "- Target change visible to the second gate within 1 s (worst of {FLIPS}): {}\n",
        verdict(common::ms(worst_flip), PROPAGATION_TARGET_MS, "ms")
    ));
    publish("2-gate", &out);
}
