//! Security notifications on every backend: a sign-in with a code writes exactly one message
//! to the outbox, in the same transaction as its audit event, with the facts and no code; a
//! refusal writes none; and the delivery side claims, marks and retries rows.

use std::{sync::Arc, time::Duration as StdDuration};

use chrono::Duration;
use domain::{
    audit::Source,
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry, CodePolicy, FreshCodes},
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    notifications::{self, AfterFailure, RetryPolicy},
    org_policy::OrgPolicy,
    recovery_codes,
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0};

struct Fixture {
    hasher: PasswordHasher,
    codes: BackupCodeHasher,
    key: SecretKey,
    source: Source,
}

fn fixture() -> Fixture {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    Fixture {
        codes: BackupCodeHasher::new(hasher.clone(), &key),
        hasher,
        key,
        source: Source {
            ip: Some("198.51.100.23".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into()),
            ..Source::default()
        },
    }
}

/// An organization with its owner, an admin, and a member with MFA on.
struct Org {
    member: Member,
}

impl Fixture {
    async fn org(&self, test_db: &TestDatabase) -> Org {
        let (owner, _) = owner_with_mfa(test_db, &self.hasher, &self.key).await;
        add_member(
            test_db,
            &self.hasher,
            owner.org_id,
            "admin@acme.test",
            Role::Admin,
        )
        .await;
        let member = member_with_mfa(
            test_db,
            &self.hasher,
            &self.key,
            owner.org_id,
            "member@acme.test",
        )
        .await;
        Org { member }
    }

    async fn generate(&self, test_db: &TestDatabase, authz: &Authz, member: &Member) -> FreshCodes {
        backup_codes::generate(
            &Command::new(&test_db.db, authz, member, &self.source, t0()),
            &self.codes,
            &CodePolicy::default(),
        )
        .await
        .unwrap()
    }

    async fn redeem(
        &self,
        test_db: &TestDatabase,
        authz: &Authz,
        member: &Member,
        typed: &str,
    ) -> Result<backup_codes::Redeemed, BackupCodeError> {
        let cmd = Command::new(
            &test_db.db,
            authz,
            member,
            &self.source,
            t0() + Duration::minutes(5),
        );
        let issued = recovery_codes::sign_in::Issued {
            cmd: &cmd,
            hasher: &self.codes,
            also_record: Vec::new(),
        };
        backup_codes::redeem(
            &cmd,
            &self.codes,
            &CodePolicy {
                lockout_attempts: u8::MAX,
                ..CodePolicy::default()
            },
            &CodeEntry::any(typed),
            Some(&issued),
            &[],
        )
        .await
    }
}

/// A row of the outbox as the tests read it.
#[derive(Debug)]
struct Row {
    user_id: Option<i32>,
    kind: String,
    recipient: String,
    subject: String,
    text: String,
    html: String,
    key: String,
}

async fn outbox(test_db: &TestDatabase) -> Vec<Row> {
    let backend = test_db.db.get_database_backend();
    test_db
        .db
        .query_all(Statement::from_string(
            backend,
            "SELECT user_id, kind, recipient, subject, body_text, body_html, idempotency_key \
             FROM notification_outbox ORDER BY id",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| Row {
            user_id: row.try_get("", "user_id").unwrap(),
            kind: row.try_get("", "kind").unwrap(),
            recipient: row.try_get("", "recipient").unwrap(),
            subject: row.try_get("", "subject").unwrap(),
            text: row.try_get("", "body_text").unwrap(),
            html: row.try_get("", "body_html").unwrap(),
            key: row.try_get("", "idempotency_key").unwrap(),
        })
        .collect()
}

fn has_code_like_run(text: &str) -> bool {
    let mut run = 0;
    text.chars().any(|c| {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        run >= 12
    })
}

/// No code of `fresh` appears in `text`, in any spelling.
fn holds_no_code(text: &str, fresh: &FreshCodes) -> bool {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    !has_code_like_run(text)
        && fresh.codes.iter().all(|code| {
            let grouped = code.grouped();
            let plain: String = grouped.chars().filter(char::is_ascii_digit).collect();
            !text.contains(&grouped) && !text.contains(&grouped.replace(' ', "-"))
                // Every four-digit group of the code, in order, is not what the digits spell.
                && !digits.contains(&plain)
        })
}

#[tokio::test]
async fn a_backup_code_sign_in_enqueues_one_message_to_the_member_with_the_facts() {
    let f = fixture();
    for test_db in migrated_databases().await {
        let authz = Authz::load(&test_db.db).await.unwrap();
        let org = f.org(&test_db).await;
        let fresh = f.generate(&test_db, &authz, &org.member).await;
        assert!(outbox(&test_db).await.is_empty());

        let redeemed = f
            .redeem(&test_db, &authz, &org.member, &fresh.codes[6].grouped())
            .await
            .unwrap();
        assert_eq!((redeemed.slot, redeemed.remaining), (7, 9));

        let rows = outbox(&test_db).await;
        assert_eq!(rows.len(), 1, "{:?}", test_db.backend);
        let row = &rows[0];
        assert_eq!(row.user_id, Some(org.member.id));
        assert_eq!(row.kind, "backup_code.redeemed");
        assert_eq!(row.recipient, "member@acme.test");
        assert_eq!(row.key.len(), 35);
        assert!(!has_code_like_run(&row.key));
        for body in [&row.text, &row.html] {
            assert!(body.contains("Backup code number 7"), "{body}");
            assert!(body.contains("9 unused backup codes"), "{body}");
            assert!(body.contains("198.51.100.23"), "{body}");
            assert!(body.contains("Firefox/133.0"), "{body}");
            // The time of the redemption, in UTC, in words.
            assert!(
                body.contains("Friday 27 November 2026, 12:05:00 UTC"),
                "{body}"
            );
            // Who to turn to: the owner and the admin, not the member.
            assert!(body.contains("owner@acme.test"), "{body}");
            assert!(body.contains("admin@acme.test"), "{body}");
            assert!(body.contains("contact an administrator"), "{body}");
        }
        for part in [&row.subject, &row.text, &row.html] {
            assert!(holds_no_code(part, &fresh), "{part}");
        }
    }
}

#[tokio::test]
async fn a_refused_redemption_enqueues_nothing() {
    let f = fixture();
    for test_db in migrated_databases().await {
        let authz = Authz::load(&test_db.db).await.unwrap();
        let org = f.org(&test_db).await;
        let fresh = f.generate(&test_db, &authz, &org.member).await;
        let code = fresh.codes[0].grouped();
        f.redeem(&test_db, &authz, &org.member, &code)
            .await
            .unwrap();
        let before = outbox(&test_db).await.len();

        // Used already, wrong, malformed: each refused, none told.
        for typed in [code.as_str(), "0000 0000 0000", "12"] {
            assert!(
                f.redeem(&test_db, &authz, &org.member, typed)
                    .await
                    .is_err()
            );
        }
        assert_eq!(
            outbox(&test_db).await.len(),
            before,
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn two_hundred_concurrent_redemptions_of_one_code_enqueue_one_message() {
    let f = Arc::new(fixture());
    for test_db in migrated_databases().await {
        let test_db = Arc::new(test_db);
        let authz = Arc::new(Authz::load(&test_db.db).await.unwrap());
        let org = f.org(&test_db).await;
        let code = f.generate(&test_db, &authz, &org.member).await.codes[2].grouped();

        let mut attempts = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (f, test_db, authz, member, code) = (
                Arc::clone(&f),
                Arc::clone(&test_db),
                Arc::clone(&authz),
                org.member.clone(),
                code.clone(),
            );
            attempts.spawn(async move { f.redeem(&test_db, &authz, &member, &code).await });
        }
        let mut successes = 0;
        while let Some(outcome) = attempts.join_next().await {
            match outcome.unwrap() {
                Ok(redeemed) => {
                    assert_eq!(redeemed.slot, 3);
                    successes += 1;
                }
                Err(BackupCodeError::Rejected) => {}
                Err(other) => panic!("{:?}: {other}", test_db.backend),
            }
        }
        assert_eq!(successes, 1, "{:?}", test_db.backend);
        let rows = outbox(&test_db).await;
        assert_eq!(rows.len(), 1, "{:?}", test_db.backend);
        assert!(rows[0].text.contains("Backup code number 3"));
    }
}

#[tokio::test]
async fn an_issued_code_sign_in_enqueues_one_message_saying_an_administrator_issued_it() {
    let f = fixture();
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &f.hasher, &f.key).await;
        let member = member_with_mfa(
            &test_db,
            &f.hasher,
            &f.key,
            owner.org_id,
            "member@acme.test",
        )
        .await;
        let request = recovery_codes::request(
            &Command::new(db, &authz, &owner, &source, t0()),
            "member@acme.test",
        )
        .await
        .unwrap();
        let (_, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &owner, &source, t0()),
            &f.codes,
            request.id,
        )
        .await
        .unwrap();
        let cmd = Command::new(db, &authz, &member, &f.source, t0() + Duration::minutes(1));
        let issued = recovery_codes::sign_in::Issued {
            cmd: &cmd,
            hasher: &f.codes,
            also_record: Vec::new(),
        };
        let used = backup_codes::redeem(
            &cmd,
            &f.codes,
            &OrgPolicy::default().code_policy(),
            &CodeEntry::any(&code.grouped()),
            Some(&issued),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(used.slot, 0);

        let rows = outbox(&test_db).await;
        assert_eq!(rows.len(), 1, "{:?}", test_db.backend);
        let row = &rows[0];
        assert_eq!(row.kind, "recovery_code.used");
        assert_eq!(row.recipient, "member@acme.test");
        assert!(row.subject.contains("administrator issued"));
        assert!(row.text.contains("198.51.100.23"));
        assert!(row.text.contains("no unused backup codes"));
        for part in [&row.subject, &row.text, &row.html] {
            assert!(!has_code_like_run(part), "{part}");
            assert!(!part.contains(&code.grouped()));
        }
    }
}

#[tokio::test]
async fn the_worker_side_claims_once_retries_with_backoff_and_gives_up_after_the_last() {
    let f = fixture();
    let retry = RetryPolicy {
        max_attempts: 3,
        first_delay: StdDuration::from_secs(10),
        max_delay: StdDuration::from_secs(3600),
    };
    let lease = StdDuration::from_secs(60);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = f.org(&test_db).await;
        let fresh = f.generate(&test_db, &authz, &org.member).await;
        f.redeem(&test_db, &authz, &org.member, &fresh.codes[0].grouped())
            .await
            .unwrap();
        let now = t0() + Duration::minutes(6);

        let claimed = notifications::claim_due(db, now, 10, lease).await.unwrap();
        assert_eq!(claimed.len(), 1);
        // Held: a second worker finds nothing until the claim runs out.
        assert!(
            notifications::claim_due(db, now, 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
        let later = now + Duration::seconds(61);
        let again = notifications::claim_due(db, later, 10, lease)
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "an expired claim is taken again");

        // First failure: due again after 10 s; second: after 20 s; third: failed.
        let after = notifications::mark_failed_attempt(db, &again[0], "refused", &retry, later)
            .await
            .unwrap();
        assert_eq!(after, AfterFailure::RetryAt(later + Duration::seconds(10)));
        assert!(
            notifications::claim_due(db, later + Duration::seconds(9), 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
        let t2 = later + Duration::seconds(10);
        let second = notifications::claim_due(db, t2, 10, lease).await.unwrap();
        assert_eq!(second[0].attempts, 1);
        let after = notifications::mark_failed_attempt(db, &second[0], "refused", &retry, t2)
            .await
            .unwrap();
        assert_eq!(after, AfterFailure::RetryAt(t2 + Duration::seconds(20)));
        let t3 = t2 + Duration::seconds(20);
        let third = notifications::claim_due(db, t3, 10, lease).await.unwrap();
        let after = notifications::mark_failed_attempt(db, &third[0], "refused", &retry, t3)
            .await
            .unwrap();
        assert_eq!(after, AfterFailure::GaveUp);
        assert!(
            notifications::claim_due(db, t3 + Duration::days(1), 10, lease)
                .await
                .unwrap()
                .is_empty(),
            "a failed message is not tried again"
        );
        let backend = db.get_database_backend();
        let row = db
            .query_one(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DatabaseBackend::Postgres => {
                        "SELECT attempts, last_error FROM notification_outbox WHERE id = $1"
                    }
                    _ => "SELECT attempts, last_error FROM notification_outbox WHERE id = ?",
                },
                [Value::from(third[0].id)],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i32>("", "attempts").unwrap(), 3);
        assert_eq!(
            row.try_get::<Option<String>>("", "last_error").unwrap(),
            Some("refused".to_owned())
        );

        // A sent message is never claimed again.
        f.redeem(&test_db, &authz, &org.member, &fresh.codes[1].grouped())
            .await
            .unwrap();
        let fresh_claim = notifications::claim_due(db, t3, 10, lease).await.unwrap();
        assert_eq!(fresh_claim.len(), 1);
        notifications::mark_sent(db, fresh_claim[0].id, t3)
            .await
            .unwrap();
        assert!(
            notifications::claim_due(db, t3 + Duration::days(1), 10, lease)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn workers_claiming_at_once_take_each_message_exactly_once() {
    let f = fixture();
    for test_db in migrated_databases().await {
        let test_db = Arc::new(test_db);
        let (owner, _) = owner_with_mfa(&test_db, &f.hasher, &f.key).await;
        for n in 0..60 {
            notifications::enqueue(
                &test_db.db,
                notifications::Message {
                    org_id: owner.org_id,
                    user_id: Some(owner.id),
                    kind: notifications::KIND_BACKUP_CODE_USED,
                    recipient: &owner.email,
                    rendered: notifications::Rendered {
                        subject: format!("message {n}"),
                        text: String::new(),
                        html: String::new(),
                    },
                },
                t0(),
            )
            .await
            .unwrap();
        }
        let now = t0() + Duration::minutes(1);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let test_db = Arc::clone(&test_db);
            workers.spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let batch =
                        notifications::claim_due(&test_db.db, now, 5, StdDuration::from_secs(60))
                            .await
                            .unwrap();
                    if batch.is_empty() {
                        return taken;
                    }
                    taken.extend(batch.into_iter().map(|pending| pending.id));
                }
            });
        }
        let mut taken = Vec::new();
        while let Some(ids) = workers.join_next().await {
            taken.extend(ids.unwrap());
        }
        taken.sort_unstable();
        let before = taken.len();
        taken.dedup();
        assert_eq!(
            before,
            taken.len(),
            "{:?}: a message claimed twice",
            test_db.backend
        );
        assert_eq!(taken.len(), 60, "{:?}", test_db.backend);
    }
}
