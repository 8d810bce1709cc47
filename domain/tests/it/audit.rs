//! The audit chain on every backend: an untouched chain verifies; altering, deleting,
//! swapping or cutting off any event is named, also when a forger without the key recomputes
//! the links; signed checkpoints show a cut or a rewrite the chain alone cannot; chains from
//! before the key are keyed unless already broken; exports read back as they were written.

use domain::{
    audit::{
        self, ChainBreak, ChainReport, Event, Outcome, PlainChain, Source,
        checkpoint::{self, CheckpointError, SignedCheckpoint},
    },
    command::Command,
    hashing::PasswordHasher,
    identity::Member,
    secrets::SecretKey,
    testing::{Forgery, TestDatabase, migrated_databases},
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

/// One tampering by someone who can write to the database but does not hold the key: the SQL
/// they run (given the organization and the ids of its events #1..#8), where they then
/// recompute the links from (plain SHA-256, the only ones they can), and the break that
/// `verify` names.
struct Tampering {
    what: &'static str,
    sql: fn(i32, &[i32]) -> Vec<String>,
    relink: Option<(i64, Forgery)>,
    named: fn(&[i32]) -> ChainBreak,
}

const TAMPERINGS: &[Tampering] = &[
    Tampering {
        what: "edit event #3 and re-link from it",
        sql: |_, ids| {
            vec![format!(
                "UPDATE audit_event SET outcome = 'failure' WHERE id = {}",
                ids[2]
            )]
        },
        relink: Some((3, Forgery::KeepKeyVersions)),
        named: |ids| ChainBreak::Altered { seq: 3, id: ids[2] },
    },
    Tampering {
        what: "delete event #3, renumber the rest and re-link",
        sql: |org, ids| {
            vec![
                format!("DELETE FROM audit_event WHERE id = {}", ids[2]),
                format!("UPDATE audit_event SET seq = -seq WHERE org_id = {org} AND seq > 3"),
                format!("UPDATE audit_event SET seq = -seq - 1 WHERE org_id = {org} AND seq < 0"),
            ]
        },
        relink: Some((3, Forgery::KeepKeyVersions)),
        named: |ids| ChainBreak::Altered { seq: 3, id: ids[3] },
    },
    Tampering {
        what: "truncate after event #5 and re-link the new last event",
        sql: |org, _| {
            vec![format!(
                "DELETE FROM audit_event WHERE org_id = {org} AND seq > 5"
            )]
        },
        relink: Some((5, Forgery::KeepKeyVersions)),
        named: |ids| ChainBreak::Altered { seq: 5, id: ids[4] },
    },
    Tampering {
        what: "truncate after event #5, leaving the head",
        sql: |org, _| {
            vec![format!(
                "DELETE FROM audit_event WHERE org_id = {org} AND seq > 5"
            )]
        },
        relink: None,
        named: |_| ChainBreak::Truncated {
            last_seq: 5,
            head_seq: 8,
        },
    },
    Tampering {
        what: "swap events #2 and #4 and re-link",
        sql: |_, ids| {
            vec![
                format!("UPDATE audit_event SET seq = -1 WHERE id = {}", ids[1]),
                format!("UPDATE audit_event SET seq = 2 WHERE id = {}", ids[3]),
                format!("UPDATE audit_event SET seq = 4 WHERE id = {}", ids[1]),
            ]
        },
        relink: Some((2, Forgery::KeepKeyVersions)),
        named: |ids| ChainBreak::Altered { seq: 2, id: ids[3] },
    },
    Tampering {
        what: "downgrade the whole chain to plain hashes",
        sql: |_, _| Vec::new(),
        relink: Some((1, Forgery::Downgrade)),
        named: |ids| ChainBreak::Unkeyed { seq: 1, id: ids[0] },
    },
    Tampering {
        what: "edit event #6 and downgrade it and the rest to plain hashes",
        sql: |_, ids| {
            vec![format!(
                "UPDATE audit_event SET details = '{{}}' WHERE id = {}",
                ids[5]
            )]
        },
        relink: Some((6, Forgery::Downgrade)),
        named: |ids| ChainBreak::Unkeyed { seq: 6, id: ids[5] },
    },
    Tampering {
        what: "name a key version the key does not hold",
        sql: |_, ids| {
            vec![format!(
                "UPDATE audit_event SET key_version = 99 WHERE id = {}",
                ids[3]
            )]
        },
        relink: None,
        named: |ids| ChainBreak::UnknownKey {
            seq: 4,
            id: ids[3],
            version: 99,
        },
    },
];

#[tokio::test]
async fn tampering_with_sql_and_recomputed_plain_links_is_named_under_the_key() {
    for tampering in TAMPERINGS {
        for test_db in migrated_databases().await {
            let owner = chain(&test_db, 6).await;
            let org = owner.org_id;
            let ids: Vec<i32> = events(&test_db, &owner)
                .await
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(ids.len(), 8);
            for sql in (tampering.sql)(org, &ids) {
                test_db.execute(&sql).await;
            }
            if let Some((from, forgery)) = tampering.relink {
                test_db.forge_plain_links(org, from, forgery).await;
            }
            let state = audit::verify(&test_db.db, org).await.unwrap();
            assert_eq!(
                state.broken,
                Some((tampering.named)(&ids)),
                "{}, {:?}",
                tampering.what,
                test_db.backend
            );
        }
    }
}

#[tokio::test]
async fn a_checkpoint_held_outside_shows_a_cut_even_with_the_head_moved_back() {
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = chain(&test_db, 6).await;
        let org = owner.org_id;
        let signed = checkpoint::sign(db, org, "acme", t0()).await.unwrap();
        assert_eq!((signed.seq, signed.org.as_str()), (8, "acme"));
        // What the auditor keeps: the JSON, read back.
        let held =
            SignedCheckpoint::parse(&serde_json::to_string_pretty(&signed).unwrap()).unwrap();
        assert_eq!(held, signed);
        append(&test_db, &owner, 6).await;
        let state = checkpoint::verify_against(db, org, &held).await.unwrap();
        assert_eq!((state.events, state.broken), (9, None));

        // Cut back to #5, the head moved to #5's own link: every link left is genuine.
        test_db
            .execute(&format!(
                "DELETE FROM audit_event WHERE org_id = {org} AND seq > 5"
            ))
            .await;
        test_db
            .execute(&format!(
                "UPDATE audit_chain_head SET seq = 5, hash = (SELECT hash FROM audit_event \
                 WHERE org_id = {org} AND seq = 5) WHERE org_id = {org}"
            ))
            .await;
        let cut = ChainBreak::Cut {
            checkpoint_seq: 8,
            last_seq: 5,
        };
        // The checkpoint stored in the database shows it, while it is there…
        assert_eq!(
            audit::verify(db, org).await.unwrap().broken,
            Some(cut.clone())
        );
        // …and once it is deleted too, the chain alone looks whole: only the held copy shows.
        test_db.execute("DELETE FROM audit_checkpoint").await;
        assert_eq!(audit::verify(db, org).await.unwrap().broken, None);
        let state = checkpoint::verify_against(db, org, &held).await.unwrap();
        assert_eq!(state.broken, Some(cut), "{:?}", test_db.backend);

        // Someone with the key re-appends events up to #8 and beyond: valid links, but event
        // #8 is not the one the checkpoint signed.
        for n in 0..4 {
            append(&test_db, &owner, 100 + n).await;
        }
        assert_eq!(audit::verify(db, org).await.unwrap().broken, None);
        let state = checkpoint::verify_against(db, org, &held).await.unwrap();
        assert_eq!(state.broken, Some(ChainBreak::Rewritten { seq: 8 }));
    }
}

#[tokio::test]
async fn an_altered_foreign_or_other_organizations_checkpoint_is_refused() {
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = chain(&test_db, 1).await;
        let signed = checkpoint::sign(db, owner.org_id, "acme", t0())
            .await
            .unwrap();
        let mut moved = signed.clone();
        moved.seq -= 1;
        assert!(matches!(
            checkpoint::verify_against(db, owner.org_id, &moved).await,
            Err(CheckpointError::BadSignature)
        ));
        // A valid signature by another installation's key is not this one's word.
        assert!(matches!(
            signed.check(&SecretKey::generate()),
            Err(CheckpointError::NotThisKey(1))
        ));
        assert!(matches!(
            checkpoint::verify_against(db, owner.org_id + 1, &signed).await,
            Err(CheckpointError::OtherOrganization { .. })
        ));
        for text in ["{}", "not json", &signed_with_format(&signed, "other/v9")] {
            assert!(matches!(
                SignedCheckpoint::parse(text),
                Err(CheckpointError::Format(_))
            ));
        }
        // A broken chain is not signed.
        test_db
            .execute("UPDATE audit_event SET outcome = 'failure' WHERE seq = 2")
            .await;
        assert!(matches!(
            checkpoint::sign(db, owner.org_id, "acme", t0()).await,
            Err(CheckpointError::Broken(ChainBreak::Altered { seq: 2, .. }))
        ));
    }
}

fn signed_with_format(checkpoint: &SignedCheckpoint, format: &str) -> String {
    let mut other = checkpoint.clone();
    other.format = format.to_owned();
    serde_json::to_string(&other).unwrap()
}

#[tokio::test]
async fn the_interval_signs_each_chain_whose_head_moved_and_never_a_broken_one() {
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let owner = chain(&test_db, 2).await;
        assert_eq!(checkpoint::sign_moved_chains(db, t0()).await.unwrap(), 1);
        assert_eq!(checkpoint::sign_moved_chains(db, t0()).await.unwrap(), 0);
        append(&test_db, &owner, 2).await;
        assert_eq!(checkpoint::sign_moved_chains(db, t0()).await.unwrap(), 1);
        // Appended after the last checkpoint and then altered: not signed.
        append(&test_db, &owner, 3).await;
        test_db
            .execute("UPDATE audit_event SET outcome = 'failure' WHERE seq = 6")
            .await;
        assert_eq!(checkpoint::sign_moved_chains(db, t0()).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn plain_chains_from_before_the_key_are_keyed_unless_already_broken() {
    use domain::{accounts, secrets::Password};

    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let acme = chain(&test_db, 3).await;
        let hasher = PasswordHasher::new(1).unwrap();
        let (_, globex) = accounts::create_organization(
            db,
            &hasher,
            "Globex",
            "owner@globex.test",
            &Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();
        append(&test_db, &globex, 0).await;
        append(&test_db, &globex, 1).await;
        // Both chains as a build before the key wrote them: plain links, no key versions.
        for org in [acme.org_id, globex.org_id] {
            test_db.forge_plain_links(org, 1, Forgery::Downgrade).await;
        }
        // Globex's was altered before the upgrade.
        let altered = events(&test_db, &globex).await[1].id;
        test_db
            .execute(&format!(
                "UPDATE audit_event SET outcome = 'denied' WHERE id = {altered}"
            ))
            .await;

        let outcomes = audit::upgrade_plain_chains(db).await.unwrap();
        let left = PlainChain::LeftBroken {
            org_id: globex.org_id,
            broken: ChainBreak::Altered {
                seq: 2,
                id: altered,
            },
        };
        assert_eq!(
            outcomes,
            [
                PlainChain::Keyed {
                    org_id: acme.org_id,
                    events: 5
                },
                left.clone()
            ]
        );
        assert_eq!(
            audit::verify(db, acme.org_id).await.unwrap(),
            audit::ChainState {
                events: 5,
                broken: None
            }
        );
        // The broken one is not laundered: verify still names its break.
        assert_eq!(
            audit::verify(db, globex.org_id).await.unwrap().broken,
            Some(ChainBreak::Altered {
                seq: 2,
                id: altered
            })
        );
        // Again at the next start: the keyed chain is left alone, the broken one reported.
        assert_eq!(audit::upgrade_plain_chains(db).await.unwrap(), [left]);
        append(&test_db, &acme, 9).await;
        assert_eq!(
            audit::verify(db, acme.org_id).await.unwrap().broken,
            None,
            "{:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn a_log_written_before_the_key_verifies_after_the_keying_migration() {
    use migrations::MigratorTrait;
    use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

    for test_db in domain::testing::fresh_databases().await {
        let db = &test_db.db;
        // The schema and the chain as the build before the key left them: plain links.
        migrations::Migrator::up(db, Some(14)).await.unwrap();
        let backend = db.get_database_backend();
        let mut prev = audit::GENESIS.to_owned();
        for seq in 1..=3_i64 {
            let at = t0() + chrono::Duration::seconds(seq);
            let details = format!("{{\"n\":{seq}}}");
            let hash = audit::chain::Link {
                org_id: 7,
                seq,
                at,
                actor_id: None,
                actor: None,
                action: "member.unlocked",
                target_id: None,
                target: Some("m@acme.test"),
                outcome: "success",
                source_ip: Some("192.0.2.1"),
                user_agent: None,
                details: &details,
                prev_hash: &prev,
            }
            .hash();
            let sql = match backend {
                DbBackend::Postgres => {
                    "INSERT INTO audit_event (org_id, at, actor_id, actor, action, target_id, \
                     target, outcome, source_ip, user_agent, details, seq, prev_hash, hash) \
                     VALUES (7, $1, NULL, NULL, 'member.unlocked', NULL, 'm@acme.test', \
                     'success', '192.0.2.1', NULL, $2, $3, $4, $5)"
                }
                _ => {
                    "INSERT INTO audit_event (org_id, at, actor_id, actor, action, target_id, \
                     target, outcome, source_ip, user_agent, details, seq, prev_hash, hash) \
                     VALUES (7, ?, NULL, NULL, 'member.unlocked', NULL, 'm@acme.test', \
                     'success', '192.0.2.1', NULL, ?, ?, ?, ?)"
                }
            };
            let values: Vec<Value> = vec![
                at.into(),
                details.clone().into(),
                seq.into(),
                prev.clone().into(),
                hash.clone().into(),
            ];
            db.execute(Statement::from_sql_and_values(backend, sql, values))
                .await
                .unwrap();
            prev = hash;
        }
        test_db
            .execute(&format!(
                "INSERT INTO audit_chain_head (org_id, seq, hash) VALUES (7, 3, '{prev}')"
            ))
            .await;

        assert!(audit::chains_await_keying(db).await.unwrap());
        domain::db::migrate(db).await.unwrap();
        assert!(!audit::chains_await_keying(db).await.unwrap());
        // Before the upgrade the plain links are not accepted…
        assert_eq!(
            audit::verify(db, 7).await.unwrap().broken,
            Some(ChainBreak::Unkeyed { seq: 1, id: 1 })
        );
        // …after it the history verifies under the key, unchanged in content.
        assert_eq!(
            audit::upgrade_plain_chains(db).await.unwrap(),
            [PlainChain::Keyed {
                org_id: 7,
                events: 3
            }]
        );
        assert_eq!(
            audit::verify(db, 7).await.unwrap(),
            audit::ChainState {
                events: 3,
                broken: None
            },
            "{:?}",
            test_db.backend
        );
        let kept = audit::latest(db, 7, 10).await.unwrap();
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].details, serde_json::json!({ "n": 3 }));
    }
}
