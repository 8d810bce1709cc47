//! Backup verification codes on every backend: generate, redeem once, regenerate, races,
//! the gate, bad input, and what the database holds.

use std::sync::Arc;

use chrono::Duration;
use domain::{
    audit::{self, Source},
    authz::{Authz, BASELINE_POLICY},
    backup_codes::{self, BackupCodeError, CodePolicy, FreshCodes},
    command::Command,
    db::Backend,
    hashing::PasswordHasher,
    identity::Member,
    lookup_secret::BackupCodeHasher,
    mfa,
    secrets::{Password, SecretKey},
    sign_in::SessionLimit,
    testing::{TestDatabase, migrated_databases},
};
use sea_orm::{ConnectionTrait, Statement};

use crate::fixtures::{owner_with_mfa, t0};

struct Fixture {
    hasher: PasswordHasher,
    codes: BackupCodeHasher,
    key: SecretKey,
    authz: Authz,
    source: Source,
}

async fn fixture() -> Fixture {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    Fixture {
        codes: BackupCodeHasher::new(hasher.clone(), &key),
        hasher,
        key,
        authz: Authz::baseline().await.unwrap(),
        source: Source {
            ip: Some("192.0.2.7".into()),
            user_agent: Some("test-agent".into()),
            ..Source::default()
        },
    }
}

impl Fixture {
    async fn member(&self, test_db: &TestDatabase) -> Member {
        owner_with_mfa(test_db, &self.hasher, &self.key).await.0
    }

    async fn generate(&self, test_db: &TestDatabase, member: &Member) -> FreshCodes {
        backup_codes::generate(
            &Command::new(&test_db.db, &self.authz, member, &self.source, t0()),
            &self.codes,
            &CodePolicy::default(),
        )
        .await
        .unwrap()
    }

    async fn redeem(
        &self,
        test_db: &TestDatabase,
        member: &Member,
        input: &str,
    ) -> Result<backup_codes::Redeemed, BackupCodeError> {
        backup_codes::redeem(
            &Command::new(
                &test_db.db,
                &self.authz,
                member,
                &self.source,
                t0() + Duration::minutes(5),
            ),
            &self.codes,
            // These tests fail on purpose many times over; the lockout has a test of its own.
            &CodePolicy {
                lockout_attempts: u8::MAX,
                ..CodePolicy::default()
            },
            &backup_codes::CodeEntry::any(input),
            None,
            &[],
        )
        .await
    }

    async fn status(&self, test_db: &TestDatabase, member: &Member) -> backup_codes::CodeStatus {
        backup_codes::status(
            &test_db.db,
            &self.authz,
            member,
            &CodePolicy::default(),
            t0(),
        )
        .await
        .unwrap()
        .expect("a set in force")
    }
}

/// The latest audit event's action and details.
async fn last_event(test_db: &TestDatabase, member: &Member) -> audit::Recorded {
    audit::latest(&test_db.db, member.org_id, 1)
        .await
        .unwrap()
        .pop()
        .expect("an audit event")
}

async fn event_count(test_db: &TestDatabase, member: &Member) -> usize {
    audit::latest(&test_db.db, member.org_id, 10_000)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_set_has_ten_distinct_grouped_codes_and_each_works_once() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        assert_eq!(fresh.codes.len(), 10);
        let grouped: Vec<String> = fresh.codes.iter().map(|c| c.grouped()).collect();
        for code in &grouped {
            assert!(
                code.len() == 14 && code.split(' ').all(|g| g.len() == 4),
                "{code}"
            );
        }
        let mut distinct = grouped.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        let event = last_event(&test_db, &member).await;
        assert_eq!(event.action, "backup_codes.generated");
        assert_eq!(event.details["codes"], 10);

        let status = f.status(&test_db, &member).await;
        assert_eq!((status.total, status.remaining), (10, 10));
        assert_eq!(status.generated_at, t0());
        assert_eq!(status.last_used_at, None);
        assert!(!status.low);

        // Code #3, typed with dashes.
        let redeemed = f
            .redeem(&test_db, &member, &grouped[2].replace(' ', "-"))
            .await
            .unwrap();
        assert_eq!((redeemed.slot, redeemed.remaining), (3, 9));
        let event = last_event(&test_db, &member).await;
        assert_eq!(
            (event.action.as_str(), event.outcome.as_str()),
            ("backup_code.redeemed", "success")
        );
        assert_eq!(event.details["slot"], 3);
        assert_eq!(event.source, f.source);
        assert_eq!(event.actor_id, Some(member.id));

        // Spent: refused the second time, and recorded as a used code.
        assert!(matches!(
            f.redeem(&test_db, &member, &grouped[2]).await,
            Err(BackupCodeError::Rejected)
        ));
        assert_eq!(
            last_event(&test_db, &member).await.details["reason"],
            "used"
        );

        let status = f.status(&test_db, &member).await;
        assert_eq!(status.remaining, 9, "{:?}", test_db.backend);
        assert_eq!(status.last_used_at, Some(t0() + Duration::minutes(5)));

        // The others still work.
        assert_eq!(
            f.redeem(&test_db, &member, &grouped[9]).await.unwrap().slot,
            10
        );
    }
}

#[tokio::test]
async fn regenerating_ends_every_code_of_the_old_set_at_once() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        let old = f.generate(&test_db, &member).await;
        let new = f.generate(&test_db, &member).await;
        assert_eq!(
            last_event(&test_db, &member).await.action,
            "backup_codes.replaced"
        );
        for code in &old.codes {
            assert!(
                matches!(
                    f.redeem(&test_db, &member, &code.grouped()).await,
                    Err(BackupCodeError::Rejected)
                ),
                "{:?}",
                test_db.backend
            );
        }
        assert_eq!(f.status(&test_db, &member).await.remaining, 10);
        f.redeem(&test_db, &member, &new.codes[0].grouped())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn two_hundred_concurrent_redemptions_of_one_code_succeed_exactly_once() {
    let f = Arc::new(fixture().await);
    for test_db in migrated_databases().await {
        let test_db = Arc::new(test_db);
        let member = f.member(&test_db).await;
        let code = f.generate(&test_db, &member).await.codes[4].grouped();
        let events_before = event_count(&test_db, &member).await;

        let mut attempts = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (f, test_db, member, code) = (
                Arc::clone(&f),
                Arc::clone(&test_db),
                member.clone(),
                code.clone(),
            );
            attempts.spawn(async move { f.redeem(&test_db, &member, &code).await });
        }
        let mut successes = 0;
        while let Some(outcome) = attempts.join_next().await {
            match outcome.unwrap() {
                Ok(redeemed) => {
                    assert_eq!(redeemed.slot, 5);
                    successes += 1;
                }
                Err(BackupCodeError::Rejected) => {}
                Err(other) => panic!("{:?}: {other}", test_db.backend),
            }
        }
        assert_eq!(successes, 1, "{:?}", test_db.backend);
        // The set counted the one code spent once (the remaining count is read from it).
        assert_eq!(f.status(&test_db, &member).await.remaining, 9);
        // Every attempt left exactly one event: one success, 199 refusals.
        let events = audit::latest(&test_db.db, member.org_id, 300)
            .await
            .unwrap();
        let new_events = &events[..events.len() - events_before];
        assert_eq!(new_events.len(), 200);
        assert_eq!(
            new_events
                .iter()
                .filter(|e| e.action == "backup_code.redeemed")
                .count(),
            1
        );
        // Two hundred appends at once left one unbroken chain.
        let chain = audit::verify(&test_db.db, member.org_id).await.unwrap();
        assert_eq!(chain.broken, None, "{:?}", test_db.backend);
    }
}

#[tokio::test]
async fn wrong_used_and_missing_codes_get_one_answer() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        // No set yet.
        let none = f.redeem(&test_db, &member, "1234 5678 9012").await;
        assert_eq!(
            last_event(&test_db, &member).await.details["reason"],
            "no_codes"
        );

        let fresh = f.generate(&test_db, &member).await;
        let unused: Vec<String> = fresh.codes.iter().map(|c| c.grouped()).collect();
        let wrong = (0..1_000_000_000_000u64)
            .step_by(7_919_999_999)
            .map(|n| format!("{n:012}"))
            .find(|candidate| !unused.contains(&candidate.clone()))
            .unwrap();
        let wrong = f.redeem(&test_db, &member, &wrong).await;
        assert_eq!(
            last_event(&test_db, &member).await.details["reason"],
            "wrong"
        );

        f.redeem(&test_db, &member, &unused[0]).await.unwrap();
        let used = f.redeem(&test_db, &member, &unused[0]).await;

        let messages: Vec<String> = [none, wrong, used]
            .into_iter()
            .map(|outcome| match outcome {
                Err(error @ BackupCodeError::Rejected) => error.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    }
}

#[tokio::test]
async fn malformed_codes_are_refused_with_a_message_and_spend_nothing() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        let events_before = event_count(&test_db, &member).await;
        let long = "4".repeat(10 * 1024);
        let malformed = [
            "4821 0937 551a",
            "48210937551",
            "4821093755161",
            "٤٨٢١٠٩٣٧٥٥١٦",
            long.as_str(),
            "<b>1</b>",
            "'; DROP TABLE backup_code; --",
        ];
        for input in malformed {
            match f.redeem(&test_db, &member, input).await {
                Err(BackupCodeError::Invalid(error)) => {
                    assert_eq!(error.field, "code");
                    assert!(error.message.contains("12 digits"), "{}", error.message);
                }
                other => panic!("{input:?}: {other:?}"),
            }
            let event = last_event(&test_db, &member).await;
            assert_eq!(event.details["reason"], "malformed");
        }
        // Blank input asks for a code and is no attempt.
        assert!(matches!(
            f.redeem(&test_db, &member, "  ").await,
            Err(BackupCodeError::Invalid(_))
        ));
        assert_eq!(
            event_count(&test_db, &member).await,
            events_before + malformed.len()
        );
        assert_eq!(f.status(&test_db, &member).await.remaining, 10);
        f.redeem(&test_db, &member, &fresh.codes[0].grouped())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_status_warns_at_the_low_codes_threshold() {
    let f = fixture().await;
    let policy = CodePolicy {
        codes_per_set: 5,
        low_codes_threshold: 3,
        max_set_age_days: 0,
        ..CodePolicy::default()
    };
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        assert_eq!(
            backup_codes::status(&test_db.db, &f.authz, &member, &policy, t0())
                .await
                .unwrap(),
            None
        );
        let fresh = backup_codes::generate(
            &Command::new(&test_db.db, &f.authz, &member, &f.source, t0()),
            &f.codes,
            &policy,
        )
        .await
        .unwrap();
        assert_eq!(fresh.codes.len(), 5);
        for (used, code) in fresh.codes.iter().enumerate() {
            let status = backup_codes::status(&test_db.db, &f.authz, &member, &policy, t0())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(status.remaining as usize, 5 - used);
            assert_eq!(status.low, 5 - used <= 3, "{used} used");
            f.redeem(&test_db, &member, &code.grouped()).await.unwrap();
        }
        let status = backup_codes::status(&test_db.db, &f.authz, &member, &policy, t0())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status.remaining, status.low), (0, true));
    }
}

#[tokio::test]
async fn codes_need_mfa_and_end_when_mfa_is_turned_off() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let (_, member) = domain::accounts::create_organization(
            &test_db.db,
            &f.hasher,
            "No MFA",
            "plain@acme.test",
            &Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();
        assert!(matches!(
            backup_codes::generate(
                &Command::new(&test_db.db, &f.authz, &member, &f.source, t0()),
                &f.codes,
                &CodePolicy::default(),
            )
            .await,
            Err(BackupCodeError::MfaOff)
        ));

        let owner = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &owner).await;
        mfa::disable(
            &test_db.db,
            &f.hasher,
            owner.id,
            &Password::new("correct horse battery"),
            &domain::audit::Source::default(),
            t0(),
        )
        .await
        .unwrap();
        assert_eq!(
            backup_codes::status(&test_db.db, &f.authz, &owner, &CodePolicy::default(), t0())
                .await
                .unwrap(),
            None
        );
        assert!(matches!(
            f.redeem(&test_db, &owner, &fresh.codes[0].grouped()).await,
            Err(BackupCodeError::Rejected)
        ));
    }
}

#[tokio::test]
async fn the_gate_refuses_generate_redeem_and_status_when_the_policy_says_no() {
    let f = fixture().await;
    // The baseline without any backup-code permission.
    let without_codes: String = BASELINE_POLICY
        .lines()
        .filter(|line| !line.contains("backup_codes"))
        .collect::<Vec<_>>()
        .join("\n");
    let closed = Authz::with_policy(&without_codes).await.unwrap();
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        let policy = CodePolicy::default();

        assert!(matches!(
            backup_codes::generate(
                &Command::new(&test_db.db, &closed, &member, &f.source, t0()),
                &f.codes,
                &policy,
            )
            .await,
            Err(BackupCodeError::NotAllowed)
        ));
        let event = last_event(&test_db, &member).await;
        assert_eq!(
            (event.action.as_str(), event.outcome.as_str()),
            ("backup_codes.generate_refused", "denied")
        );
        // An existing, unused code cannot be redeemed either.
        let code = fresh.codes[0].grouped();
        assert!(matches!(
            backup_codes::redeem(
                &Command::new(&test_db.db, &closed, &member, &f.source, t0()),
                &f.codes,
                &policy,
                &backup_codes::CodeEntry::any(&code),
                None,
                &[],
            )
            .await,
            Err(BackupCodeError::NotAllowed)
        ));
        assert_eq!(last_event(&test_db, &member).await.outcome, "denied");
        assert!(matches!(
            backup_codes::status(&test_db.db, &closed, &member, &policy, t0()).await,
            Err(BackupCodeError::NotAllowed)
        ));
        // Nothing was spent or replaced.
        assert_eq!(f.status(&test_db, &member).await.remaining, 10);
        f.redeem(&test_db, &member, &code).await.unwrap();
    }
}

#[tokio::test]
async fn the_database_holds_digests_and_never_a_plaintext_code() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        f.redeem(&test_db, &member, &fresh.codes[1].grouped())
            .await
            .unwrap();
        // Each code as digits and as grouped for reading.
        let codes: Vec<String> = fresh
            .codes
            .iter()
            .flat_map(|c| [c.grouped().replace(' ', ""), c.grouped()])
            .collect();

        let dump = match test_db.backend {
            Backend::Sqlite => {
                // The file itself, and its write-ahead log, byte for byte.
                let path = test_db.url.trim_start_matches("sqlite://").to_owned();
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Backend::Postgres => {
                let tables = test_db
                    .db
                    .query_all(Statement::from_string(
                        test_db.db.get_database_backend(),
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                    ))
                    .await
                    .unwrap();
                let mut dump = String::new();
                for table in tables {
                    let name: String = table.try_get("", "tablename").unwrap();
                    for row in test_db
                        .db
                        .query_all(Statement::from_string(
                            test_db.db.get_database_backend(),
                            format!("SELECT t::text AS row FROM \"{name}\" t"),
                        ))
                        .await
                        .unwrap()
                    {
                        dump.push_str(&row.try_get::<String>("", "row").unwrap());
                        dump.push('\n');
                    }
                }
                assert!(dump.contains("backup_code.redeemed"), "the dump reads rows");
                dump
            }
        };
        for code in &codes {
            assert!(!dump.contains(code.as_str()), "{:?}", test_db.backend);
        }
    }
}

#[tokio::test]
async fn under_numbered_entry_only_the_slot_asked_for_counts() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let member = f.member(&test_db).await;
        let policy = CodePolicy::default();
        assert_eq!(
            backup_codes::slot_to_ask(db, &member, &policy, t0())
                .await
                .unwrap(),
            None
        );
        let fresh = f.generate(&test_db, &member).await;
        let slot = backup_codes::slot_to_ask(db, &member, &policy, t0())
            .await
            .unwrap()
            .unwrap();
        assert!((1..=10).contains(&slot));
        // Asking again (the password step re-run, the page reloaded) asks for the same code
        // until it is answered: the number is kept with the set.
        for _ in 0..10 {
            let again = backup_codes::slot_to_ask(db, &member, &policy, t0()).await;
            assert_eq!(again.unwrap(), Some(slot));
        }
        assert_eq!(
            backup_codes::asked_slot(db, member.id).await.unwrap(),
            Some(slot)
        );
        let index = |slot: u32| usize::try_from(slot - 1).unwrap();
        let other = if slot == 1 { 2 } else { 1 };
        let redeem = |typed: String| {
            let (f, member) = (&f, &member);
            async move {
                backup_codes::redeem(
                    &Command::new(db, &f.authz, member, &f.source, t0()),
                    &f.codes,
                    &CodePolicy::default(),
                    &backup_codes::CodeEntry {
                        typed: &typed,
                        slot: Some(slot),
                    },
                    None,
                    &[],
                )
                .await
            }
        };
        // Another slot's code, unused as it is, is refused and stays unused.
        assert!(matches!(
            redeem(fresh.codes[index(other)].grouped()).await,
            Err(BackupCodeError::Rejected)
        ));
        assert_eq!(
            last_event(&test_db, &member).await.details["reason"],
            "wrong_slot"
        );
        assert_eq!(
            redeem(fresh.codes[index(slot)].grouped())
                .await
                .unwrap()
                .slot,
            slot
        );
        // Answered: the next sign-in asks afresh.
        assert_eq!(backup_codes::asked_slot(db, member.id).await.unwrap(), None);
        // A spent slot is never asked for again.
        for _ in 0..30 {
            assert_ne!(
                backup_codes::slot_to_ask(db, &member, &policy, t0())
                    .await
                    .unwrap(),
                Some(slot)
            );
        }
        f.redeem(&test_db, &member, &fresh.codes[index(other)].grouped())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn wrong_codes_counted_on_the_account_lock_backup_code_sign_in_for_a_while() {
    let f = fixture().await;
    let policy = CodePolicy {
        lockout_attempts: 3,
        lockout_minutes: 15,
        ..CodePolicy::default()
    };
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        let redeem = |typed: String, at| {
            let (f, member) = (&f, &member);
            async move {
                backup_codes::redeem(
                    &Command::new(db, &f.authz, member, &f.source, at),
                    &f.codes,
                    &policy,
                    &backup_codes::CodeEntry::any(&typed),
                    None,
                    &[],
                )
                .await
            }
        };
        let wrong = "0000 0000 0000".to_owned();
        // Two wrong, then a right one: the count starts again.
        for _ in 0..2 {
            assert!(redeem(wrong.clone(), t0()).await.is_err());
        }
        redeem(fresh.codes[0].grouped(), t0()).await.unwrap();
        for _ in 0..3 {
            assert!(redeem(wrong.clone(), t0()).await.is_err());
        }
        let event = last_event(&test_db, &member).await;
        assert_eq!(event.action, "backup_code.locked");
        // Locked: even the right code gets the one answer, and is not spent.
        assert!(matches!(
            redeem(fresh.codes[1].grouped(), t0() + Duration::minutes(14)).await,
            Err(BackupCodeError::Rejected)
        ));
        assert_eq!(
            last_event(&test_db, &member).await.details["reason"],
            "locked"
        );
        assert_eq!(f.status(&test_db, &member).await.remaining, 9);
        // After the lockout, it works.
        redeem(fresh.codes[1].grouped(), t0() + Duration::minutes(16))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_sign_in_that_leaves_the_codes_low_owes_a_new_set_when_the_policy_says_so() {
    let f = fixture().await;
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let member = f.member(&test_db).await;
        let fresh = f.generate(&test_db, &member).await;
        let cmd = Command::new(db, &f.authz, &member, &f.source, t0());
        let sign_in = |index: usize| {
            let (cmd, f, code) = (&cmd, &f, fresh.codes[index].grouped());
            async move {
                domain::sign_in::backup_code(cmd, &f.codes, &code)
                    .await
                    .unwrap_or_else(|refused| panic!("{:?}", refused.error))
            }
        };
        // Off (the default): running low is only a warning, whatever is left.
        for index in 0..2 {
            assert_eq!(sign_in(index).await.limit, None);
        }
        let policy = domain::org_policy::OrgPolicy {
            low_codes_threshold: 6,
            replace_when_low: true,
            ..Default::default()
        };
        domain::org_policy::save(&cmd, 0, &policy).await.unwrap();
        // Seven left: above the threshold.
        assert_eq!(sign_in(2).await.limit, None);
        // Six left, then five: at it, and below it.
        for index in 3..5 {
            let signed_in = sign_in(index).await;
            assert_eq!(
                signed_in.redeemed.remaining,
                u32::try_from(9 - index).unwrap()
            );
            assert_eq!(signed_in.limit, Some(SessionLimit::NewSet));
        }
    }
}
