//! What one backup-code redemption costs on the server, next to one bare argon2id password
//! verification at the same parameters, for sets of 5, 10 and 20 codes; and, for contrast,
//! the naive design that verifies a PHC hash per code (argon2 in a loop over the set).
//!
//! Run with `cargo bench -p domain --bench redemption`. The measurements are interleaved
//! (one of each per round) so that a noisy, shared machine slows all of them alike, and the
//! report gives medians and their ratios from this one run. `make bench` collects the table
//! (and the verdict against issue 8's target) into BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{
    accounts,
    audit::Source,
    authz::Authz,
    backup_codes::{self, CodePolicy},
    command::Command,
    hashing::PasswordHasher,
    lookup_secret::BackupCodeHasher,
    mfa,
    secrets::{Password, SecretKey},
    testing::TestDatabase,
};

const ROUNDS: usize = 15;

/// Issue 8's target: a redemption costs at most this many bare verifications, at any size.
const RATIO_TARGET: f64 = 1.15;
/// "Flat": the ratios of the three sizes lie within this much of each other.
const FLAT_SPREAD: f64 = 0.10;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

use common::ms;

#[tokio::main]
async fn main() {
    let test_db = TestDatabase::sqlite().await.migrated().await;
    let db = &test_db.db;
    // One permit: every argon2 evaluation runs alone, as on a server under no other load.
    let hasher = PasswordHasher::new(1).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let authz = Authz::baseline().await.unwrap();
    let source = Source::default();
    let password = Password::new("correct horse battery");
    let (_, owner) = accounts::create_organization(
        db,
        &hasher,
        "Bench",
        "bench@acme.test",
        &password,
        Utc::now(),
    )
    .await
    .unwrap();
    let enrolment = mfa::begin_enrolment(db, &key, owner.id).await.unwrap();
    let now = Utc::now();
    let first = mfa::code_at(&enrolment.setup_key, now).unwrap();
    mfa::confirm_enrolment(
        db,
        &key,
        owner.id,
        &first,
        &domain::audit::Source::default(),
        now,
    )
    .await
    .unwrap();
    let owner = accounts::member(db, owner.id).await.unwrap().unwrap();
    let phc = hasher.hash(&password).await.unwrap();

    let mut out = String::new();
    out.push_str("## 1. Backup-code redemption vs. one bare argon2id verification\n\n");
    out.push_str(&format!(
        "`cargo bench -p domain --bench redemption`. argon2id m=19456 KiB, t=2, p=1; SQLite; \
         median of {ROUNDS} interleaved rounds; {} cores.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    out.push_str(
        "| codes per set | bare argon2id verify | redeem, wrong code | ratio | redeem, right code | ratio | naive loop, wrong code | ratio |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    let mut ratios = Vec::new();

    for size in [5u8, 10, 20] {
        let policy = CodePolicy {
            codes_per_set: size,
            low_codes_threshold: 3,
            max_set_age_days: 0,
            ..CodePolicy::default()
        };
        let generate = || async {
            backup_codes::generate(
                &Command::new(db, &authz, &owner, &source, Utc::now()),
                &codes,
                &policy,
            )
            .await
            .unwrap()
            .codes
        };
        let mut unused = generate().await;
        // The naive design: one PHC string (own salt) per code, verified one after another.
        let mut naive = Vec::new();
        for code in &unused {
            naive.push(hasher.hash(&Password::new(code.grouped())).await.unwrap());
        }
        let (mut bare, mut wrong, mut right, mut looped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            assert!(hasher.matches(&password, Some(&phc)).await.unwrap());
            bare.push(started.elapsed());

            let started = Instant::now();
            let refused = backup_codes::redeem(
                &Command::new(db, &authz, &owner, &source, Utc::now()),
                &codes,
                &policy,
                &backup_codes::CodeEntry::any("0000 0000 0000"),
                None,
                &[],
            )
            .await;
            wrong.push(started.elapsed());
            assert!(refused.is_err());

            if unused.is_empty() {
                unused = generate().await;
            }
            let code = unused.pop().unwrap();
            let started = Instant::now();
            backup_codes::redeem(
                &Command::new(db, &authz, &owner, &source, Utc::now()),
                &codes,
                &policy,
                &backup_codes::CodeEntry::any(&code.grouped()),
                None,
                &[],
            )
            .await
            .unwrap();
            right.push(started.elapsed());

            let guess = Password::new("0000 0000 0000");
            let started = Instant::now();
            for stored in &naive {
                assert!(!hasher.matches(&guess, Some(stored)).await.unwrap());
            }
            looped.push(started.elapsed());
        }
        let base = median(bare);
        let (wrong, right, looped) = (median(wrong), median(right), median(looped));
        ratios.push(ms(wrong) / ms(base));
        ratios.push(ms(right) / ms(base));
        out.push_str(&format!(
            "| {size} | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms | {:.2} | {:.1} ms | {:.2} |\n",
            ms(base),
            ms(wrong),
            ms(wrong) / ms(base),
            ms(right),
            ms(right) / ms(base),
            ms(looped),
            ms(looped) / ms(base),
        ));
    }
    let worst = ratios.iter().copied().fold(f64::MIN, f64::max);
    let best = ratios.iter().copied().fold(f64::MAX, f64::min);
    out.push_str(&format!(
        "\n- Target redemption ≤ {RATIO_TARGET} × a bare verification (worst of wrong and right \
         codes, all sizes): {}\n",
        common::verdict(worst, RATIO_TARGET, "×")
    ));
    out.push_str(&format!(
        "- Target flat (all ratios within {FLAT_SPREAD} of each other): {} (spread {:.2}, \
         from {best:.2} to {worst:.2})\n",
        if worst - best <= FLAT_SPREAD {
            "**met**"
        } else {
            "**missed**"
        },
        worst - best,
    ));
    common::publish("1-redemption", &out);
}
