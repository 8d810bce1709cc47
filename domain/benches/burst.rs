//! Guesses evaluated per lock window under a 200-way burst: 200 wrong passwords, 200 wrong
//! authenticator codes and 200 wrong backup codes sent at once at one account (each factor's
//! burst on its own), on SQLite and on PostgreSQL, counting the attempts the server actually
//! evaluated (recorded as wrong, not as locked). The target is exactly the organization's
//! number (5 by default), whatever the concurrency.
//!
//! Before attempts were reserved (commit 251e72a, as issue 18 reports it): all of them were
//! evaluated (40 of 40 wrong backup codes, 40 of 40 wrong passwords in its bursts of 40).
//!
//! Run with `cargo bench -p domain --bench burst`; `make bench` collects the table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Utc;
use domain::{
    accounts,
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, CodePolicy},
    command::Command,
    db::DatabaseConnection,
    hashing::PasswordHasher,
    identity::{Email, Member},
    lookup_secret::BackupCodeHasher,
    mfa,
    secrets::{Password, SecretKey},
    sign_in,
    testing::TestDatabase,
};

const BURST: usize = 200;
/// The default policy's attempts per window.
const ALLOWED: usize = 5;
const PASSWORD: &str = "correct horse battery";

struct Account {
    db: DatabaseConnection,
    authz: Authz,
    hasher: PasswordHasher,
    codes: BackupCodeHasher,
    key: SecretKey,
    member: Member,
}

async fn account(test_db: &TestDatabase) -> Account {
    let db = test_db.db.clone();
    // A queue as long as the burst: this measures the limit on guesses, not the bound on
    // waiting hashes (which would refuse most of a burst with "busy" before the limit did).
    let hasher = PasswordHasher::for_this_machine()
        .unwrap()
        .with_queue(BURST * 2);
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let authz = Authz::load(&db).await.unwrap();
    let now = Utc::now();
    let (_, member) = accounts::create_organization(
        &db,
        &hasher,
        "Bench",
        "bench@acme.test",
        &Password::new(PASSWORD),
        now,
    )
    .await
    .unwrap();
    let enrolment = mfa::begin_enrolment(&db, &key, member.id).await.unwrap();
    let code = mfa::code_at(&enrolment.setup_key, now).unwrap();
    mfa::confirm_enrolment(&db, &key, member.id, &code, &Source::default(), now)
        .await
        .unwrap();
    let member = accounts::member(&db, member.id).await.unwrap().unwrap();
    let source = Source::default();
    backup_codes::generate(
        &Command::new(&db, &authz, &member, &source, now),
        &codes,
        &CodePolicy::default(),
    )
    .await
    .unwrap();
    Account {
        db,
        authz,
        hasher,
        codes,
        key,
        member,
    }
}

/// Events of the organization that are `action` with reason `wrong` (and `method`, if given).
async fn evaluated(db: &DatabaseConnection, action: &str, method: Option<&str>) -> usize {
    audit::latest(db, 1, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action && e.details["reason"] == "wrong")
        .filter(|e| method.is_none_or(|m| e.details["method"] == m))
        .count()
}

/// One factor's burst: `BURST` wrong guesses at once; returns the evaluated count.
async fn burst(account: &std::sync::Arc<Account>, factor: &'static str) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let account = std::sync::Arc::clone(account);
        tasks.spawn(async move {
            let a = &*account;
            let source = Source::default();
            let cmd = Command::new(&a.db, &a.authz, &a.member, &source, Utc::now());
            match factor {
                "password" => {
                    let email = Email::parse(&a.member.email).unwrap();
                    let wrong = Password::new("not the password");
                    let step =
                        sign_in::password(&a.db, &a.hasher, &email, &wrong, &source, Utc::now());
                    assert!(step.await.unwrap().is_none());
                }
                "totp" => {
                    assert!(
                        sign_in::authenticator_code(&cmd, &a.key, "000000")
                            .await
                            .is_err()
                    );
                }
                _ => {
                    assert!(
                        sign_in::backup_code(&cmd, &a.codes, "0000 0000 0001")
                            .await
                            .is_err()
                    );
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let db = &account.db;
    match factor {
        "password" => evaluated(db, "sign_in.failed", Some("password")).await,
        "totp" => evaluated(db, "sign_in.failed", Some("totp")).await,
        _ => evaluated(db, "backup_code.refused", None).await,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let pg_url = std::env::var("LIFELINE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut rows = String::new();
    let mut all_exact = true;
    for backend in ["SQLite", "PostgreSQL"] {
        for factor in ["password", "totp", "backup_code"] {
            // A fresh database per burst: each factor's window starts empty.
            let test_db = if backend == "SQLite" {
                TestDatabase::sqlite().await.migrated().await
            } else {
                TestDatabase::postgres(&pg_url).await.migrated().await
            };
            let account = std::sync::Arc::new(account(&test_db).await);
            let count = burst(&account, factor).await;
            all_exact &= count == ALLOWED;
            rows.push_str(&format!(
                "| {backend} | {factor} | {BURST} | {count} | {ALLOWED} |\n"
            ));
        }
    }
    let verdict = if all_exact {
        format!("**met** (exactly {ALLOWED} evaluated in every burst)")
    } else {
        "**missed** (see the table)".to_owned()
    };
    common::publish(
        "6-burst",
        &format!(
            "## 6. Guesses evaluated per lock window under a {BURST}-way burst\n\n\
             Each burst: {BURST} wrong guesses at one account at once, through the domain's \
             sign-in steps, on a fresh database; \"evaluated\" counts the refusals recorded as \
             wrong (the rest were refused as locked before any work was spent on them).\n\n\
             | backend | factor | sent | evaluated | allowed |\n| --- | --- | --- | --- | --- |\n\
             {rows}\n\
             Before attempts were reserved (251e72a, issue 18): every guess of a burst was \
             evaluated (40 of 40).\n\n\
             - Target exactly {ALLOWED} per window: {verdict}\n"
        ),
    );
}
