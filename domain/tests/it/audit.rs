//! The audit chain on every backend: an untouched chain verifies; altering, deleting,
//! swapping or cutting off any event is named; exports read back as they were written.

use domain::{
    audit::{self, ChainBreak, ChainReport, Event, Outcome, Source},
    command::Command,
    hashing::PasswordHasher,
    identity::Member,
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{owner_with_mfa, t0};

/// An owner and `count` events in their organization's chain (plus those set-up wrote).
async fn chain(test_db: &TestDatabase, count: usize) -> Member {
    let hasher = PasswordHasher::new(2).unwrap();
    let (owner, _) = owner_with_mfa(test_db, &hasher, &SecretKey::generate()).await;
    for i in 0..count {
        append(test_db, &owner, i).await;
    }
    owner
}

async fn events(test_db: &TestDatabase, owner: &Member) -> Vec<audit::Recorded> {
    let mut all = audit::latest(&test_db.db, owner.org_id, 10_000)
        .await
        .unwrap();
    all.reverse();
    all
}

#[tokio::test]
async fn an_untouched_chain_verifies_and_links_each_event_to_the_one_before() {
    for test_db in migrated_databases().await {
        let owner = chain(&test_db, 5).await;
        let all = events(&test_db, &owner).await;
        // The organization's creation and the owner turning MFA on come first.
        assert_eq!(all.len(), 7);
        assert_eq!(all[0].action, "organization.created");
        assert_eq!(all[0].prev_hash, audit::GENESIS);
        for pair in all.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        let state = audit::verify(&test_db.db, owner.org_id).await.unwrap();
        assert_eq!(
            (state.events, state.broken),
            (7, None),
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn altering_deleting_swapping_or_cutting_off_any_event_is_named() {
    for test_db in migrated_databases().await {
        let owner = chain(&test_db, 6).await;
        let all = events(&test_db, &owner).await;
        let org = owner.org_id;
        let ids: Vec<i32> = all.iter().map(|e| e.id).collect();
        let check = |expected: ChainBreak| {
            let db = &test_db.db;
            async move {
                let state = audit::verify(db, org).await.unwrap();
                assert_eq!(state.broken, Some(expected), "{:?}", test_db.backend);
            }
        };

        // Altered: one field of event #3.
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'failure' WHERE id = {}",
                ids[2]
            ))
            .await;
        check(ChainBreak::Altered { seq: 3, id: ids[2] }).await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'success' WHERE id = {}",
                ids[2]
            ))
            .await;
        assert_eq!(audit::verify(&test_db.db, org).await.unwrap().broken, None);

        // Swapped: events #2 and #4 trade places.
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = -1 WHERE id = {}",
                ids[1]
            ))
            .await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = 2 WHERE id = {}",
                ids[3]
            ))
            .await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = 4 WHERE id = {}",
                ids[1]
            ))
            .await;
        check(ChainBreak::Altered { seq: 2, id: ids[3] }).await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = -1 WHERE id = {}",
                ids[1]
            ))
            .await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = 4 WHERE id = {}",
                ids[3]
            ))
            .await;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET seq = 2 WHERE id = {}",
                ids[1]
            ))
            .await;
        assert_eq!(audit::verify(&test_db.db, org).await.unwrap().broken, None);

        // Cut off: the last two events.
        test_db
            .execute(&format!(
                "DELETE FROM audit_event WHERE id IN ({}, {})",
                ids[6], ids[7]
            ))
            .await;
        check(ChainBreak::Truncated {
            last_seq: 6,
            head_seq: 8,
        })
        .await;

        // Deleted: event #5.
        test_db
            .execute(&format!("DELETE FROM audit_event WHERE id = {}", ids[4]))
            .await;
        check(ChainBreak::Missing { seq: 5 }).await;
    }
}

#[tokio::test]
async fn exports_read_back_as_written_and_csv_escapes_what_it_must() {
    for test_db in migrated_databases().await {
        let owner = chain(&test_db, 3).await;
        let all = events(&test_db, &owner).await;

        let mut lines = Vec::new();
        audit::for_each_event(&test_db.db, owner.org_id, None, |event| {
            lines.push(serde_json::to_string(&event).unwrap());
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
        let parsed: Vec<audit::Recorded> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed, all, "{:?}", test_db.backend);

        // From a date on: the later events only.
        let mut later = 0;
        audit::for_each_event(
            &test_db.db,
            owner.org_id,
            Some(t0() + chrono::Duration::seconds(1)),
            |_| {
                later += 1;
                Ok::<_, std::convert::Infallible>(())
            },
        )
        .await
        .unwrap();
        assert_eq!(later, 2);

        let line = audit::csv_line(&all[all.len() - 1]);
        assert!(line.contains(",\"agent, with \"\"quotes\"\"\","), "{line}");
        assert!(line.contains("\\n"), "details stay one JSON text: {line}");
        assert_eq!(
            audit::CSV_HEADER.split(',').count(),
            11,
            "one column per field"
        );
    }
}

#[tokio::test]
async fn account_and_mfa_changes_and_failed_sign_ins_each_leave_one_event() {
    use domain::{
        accounts,
        identity::{Email, Role},
        mfa,
        secrets::Password,
    };
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let actions = || async {
            events(&test_db, &owner)
                .await
                .into_iter()
                .map(|e| (e.action, e.target))
                .collect::<Vec<_>>()
        };
        let owner_email = Some("owner@acme.test".to_owned());
        assert_eq!(
            actions().await,
            [
                ("organization.created".to_owned(), owner_email.clone()),
                ("mfa.enabled".to_owned(), owner_email.clone()),
            ]
        );

        let member = crate::fixtures::add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "m@acme.test",
            Role::Member,
        )
        .await;
        accounts::remove_member(
            &Command::new(
                db,
                &domain::authz::Authz::baseline().await.unwrap(),
                &owner,
                &Source::default(),
                t0(),
            ),
            member.id,
        )
        .await
        .unwrap();
        // A wrong password for a known account is recorded (after the answer); an unknown
        // email has no organization to record it in.
        let email = Email::parse("owner@acme.test").unwrap();
        assert!(
            domain::sign_in::password(
                db,
                &hasher,
                &email,
                &Password::new("wrong one"),
                &Source::default(),
                t0()
            )
            .await
            .unwrap()
            .map(domain::sign_in::PasswordStep::into_member)
            .is_none()
        );
        mfa::disable(
            db,
            &hasher,
            owner.id,
            &Password::new("correct horse battery"),
            &Source::default(),
            t0(),
        )
        .await
        .unwrap();
        let mut recorded = actions().await;
        for _ in 0..50 {
            if recorded.iter().any(|(a, _)| a == "sign_in.failed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            recorded = actions().await;
        }
        let names: Vec<&str> = recorded.iter().map(|(a, _)| a.as_str()).collect();
        for expected in [
            "member.added",
            "member.removed",
            "mfa.disabled",
            "sign_in.failed",
        ] {
            assert_eq!(
                names.iter().filter(|n| **n == expected).count(),
                1,
                "{expected} in {names:?}"
            );
        }
        let state = audit::verify(db, owner.org_id).await.unwrap();
        assert_eq!(state.broken, None);
        assert_eq!(state.events, 6);
    }
}

#[tokio::test]
async fn a_failed_transaction_leaves_neither_change_nor_event() {
    use domain::{
        accounts::{self, NewMember},
        identity::Role,
    };
    use sea_orm::TransactionTrait;

    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = chain(&test_db, 2).await;
        let before = events(&test_db, &owner).await;

        // An event written in a transaction that is then abandoned is gone with it, and the
        // chain's head did not move.
        let txn = db.begin().await.unwrap();
        audit::record(
            &txn,
            owner.org_id,
            Event {
                action: audit::AuditAction::MemberUnlocked,
                actor: Some(&owner),
                target: None,
                outcome: Outcome::Success,
                details: serde_json::json!({}),
            },
            &Source::default(),
            t0(),
        )
        .await
        .unwrap();
        txn.rollback().await.unwrap();

        // A change that fails (the email is taken) writes no event either.
        let hasher = PasswordHasher::new(1).unwrap();
        let taken = accounts::create_member(
            db,
            &hasher,
            None,
            owner.org_id,
            NewMember {
                email: "owner@acme.test",
                password: &domain::secrets::Password::new("correct horse battery"),
                role: Role::Member,
            },
            t0(),
        )
        .await;
        assert!(taken.is_err());

        assert_eq!(
            events(&test_db, &owner).await,
            before,
            "{:?}",
            test_db.backend
        );
        let state = audit::verify(db, owner.org_id).await.unwrap();
        assert_eq!((state.events, state.broken), (before.len() as i64, None));
        // The next event takes the next number.
        chain_one_more(&test_db, &owner).await;
        let after = events(&test_db, &owner).await;
        assert_eq!(after.last().unwrap().seq, before.last().unwrap().seq + 1);
        assert_eq!(audit::verify(db, owner.org_id).await.unwrap().broken, None);
    }
}

async fn chain_one_more(test_db: &TestDatabase, owner: &Member) {
    audit::record(
        &test_db.db,
        owner.org_id,
        Event {
            action: audit::AuditAction::MemberUnlocked,
            actor: Some(owner),
            target: None,
            outcome: Outcome::Success,
            details: serde_json::json!({}),
        },
        &Source::default(),
        t0(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_page_monitor_verifies_new_events_at_each_look_and_the_whole_chain_every_ten_minutes() {
    for test_db in migrated_databases().await {
        let owner = chain(&test_db, 4).await;
        let db = &test_db.db;
        let org = owner.org_id;
        let all = events(&test_db, &owner).await;
        let monitor = audit::ChainMonitor::default();
        let look = |at| monitor.report(db, org, at);
        let state_of = |report: ChainReport| match report {
            ChainReport::Checked { state, .. } => state,
            ChainReport::Verifying => panic!("a short chain is verified before the page shows"),
        };
        assert_eq!(state_of(look(t0()).await.unwrap()).events, 6);

        // New events are verified at the next look.
        append(&test_db, &owner, 4).await;
        assert_eq!(state_of(look(t0()).await.unwrap()).events, 7);

        // An edit to the last verified event is seen at the next look.
        let tip = audit::latest(db, org, 1).await.unwrap().remove(0);
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'failure' WHERE id = {}",
                tip.id
            ))
            .await;
        assert_eq!(
            state_of(look(t0()).await.unwrap()).broken,
            Some(ChainBreak::Altered {
                seq: tip.seq,
                id: tip.id
            })
        );

        // An edit deep in the chain is found by the whole check, within ten minutes.
        let monitor = audit::ChainMonitor::default();
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'success' WHERE id = {}",
                tip.id
            ))
            .await;
        assert_eq!(
            state_of(monitor.report(db, org, t0()).await.unwrap()).broken,
            None
        );
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'failure' WHERE id = {}",
                all[2].id
            ))
            .await;
        let later = t0() + chrono::Duration::minutes(11);
        let mut found = None;
        for _ in 0..100 {
            let state = state_of(monitor.report(db, org, later).await.unwrap());
            if state.broken.is_some() {
                found = state.broken;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            found,
            Some(ChainBreak::Altered {
                seq: 3,
                id: all[2].id
            }),
            "{:?}",
            test_db.backend
        );
    }
}

/// Appends the `n`-th test event to `owner`'s organization's chain.
async fn append(test_db: &TestDatabase, owner: &Member, n: usize) {
    audit::record(
        &test_db.db,
        owner.org_id,
        Event {
            action: audit::AuditAction::MemberUnlocked,
            actor: Some(owner),
            target: None,
            outcome: Outcome::Success,
            details: serde_json::json!({ "n": n, "note": "a, \"quoted\"\nline" }),
        },
        &Source {
            ip: Some("192.0.2.1".into()),
            user_agent: Some("agent, with \"quotes\"".into()),
            ..Source::default()
        },
        t0() + chrono::Duration::microseconds(n as i64 * 1_234_567),
    )
    .await
    .unwrap();
}
