//! "Required"'s date and grace period for new members, on every backend with a clock passed
//! in: each member's deadline before, at and after it; the reminders 7 days and 1 day before,
//! once each however many runs arrive at once; and the impact preview naming whom the date
//! limits.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::{
    audit::Source,
    authz::Authz,
    backup_codes,
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    members::reminders,
    org_policy::{
        self, CodesMode, OrgPolicy,
        grace::{self, Deadline},
    },
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};
use sea_orm::ConnectionTrait;

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0};

/// The day "Required" binds from in these tests: three days after t0 (27 November, noon), so
/// from 00:00 UTC on 30 November.
fn required_from() -> NaiveDate {
    (t0() + Duration::days(3)).date_naive()
}

fn from() -> DateTime<Utc> {
    grace::start_of(required_from())
}

/// An organization with members in each state the deadline tells apart: the owner and
/// `holder` hold codes, `due` has MFA and no codes, `no-mfa` has no MFA. Returns the owner,
/// `due`, `holder` and `no-mfa`.
async fn organization(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    key: &SecretKey,
) -> (Member, Member, Member, Member) {
    let db = &test_db.db;
    let codes = BackupCodeHasher::new(hasher.clone(), key);
    let authz = Authz::load(db).await.unwrap();
    let (owner, _) = owner_with_mfa(test_db, hasher, key).await;
    let org = owner.org_id;
    let due = member_with_mfa(test_db, hasher, key, org, "due@acme.test").await;
    let holder = member_with_mfa(test_db, hasher, key, org, "holder@acme.test").await;
    let no_mfa = add_member(test_db, hasher, org, "no-mfa@acme.test", Role::Member).await;
    let source = Source::default();
    for member in [&owner, &holder] {
        backup_codes::generate(
            &Command::new(db, &authz, member, &source, t0()),
            &codes,
            &OrgPolicy::default().code_policy(),
        )
        .await
        .unwrap();
    }
    (owner, due, holder, no_mfa)
}

/// Saves `policy` over the version in force.
async fn save(test_db: &TestDatabase, owner: &Member, policy: &OrgPolicy) {
    let db = &test_db.db;
    let authz = Authz::load(db).await.unwrap();
    let version = org_policy::current(db, owner.org_id).await.unwrap().version;
    let source = Source::default();
    org_policy::save(
        &Command::new(db, &authz, owner, &source, t0()),
        version,
        policy,
    )
    .await
    .unwrap();
}

fn required(grace_days: u16) -> OrgPolicy {
    OrgPolicy {
        codes: CodesMode::Required,
        required_from: Some(required_from()),
        grace_days,
        ..OrgPolicy::default()
    }
}

#[tokio::test]
async fn the_deadline_binds_only_members_who_do_not_comply_before_at_and_after_the_date() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let (owner, due, holder, no_mfa) = organization(&test_db, &hasher, &key).await;
        let authz = Authz::load(db).await.unwrap();
        let deadline_of = |member: &Member, now: DateTime<Utc>| {
            let (authz, member) = (authz.clone(), member.clone());
            async move {
                grace::member_deadline(db, &authz, &member, now)
                    .await
                    .unwrap()
            }
        };

        // Without a date, "Required" limits nobody.
        save(
            &test_db,
            &owner,
            &OrgPolicy {
                required_from: None,
                ..required(0)
            },
        )
        .await;
        assert_eq!(deadline_of(&due, from()).await, None, "{backend:?}");

        save(&test_db, &owner, &required(0)).await;
        let second = Duration::seconds(1);
        // (now, `due`'s deadline as it stands), written out.
        let cases = [
            (
                t0(),
                Deadline::Ahead {
                    at: from(),
                    days_left: 3,
                },
            ),
            (
                from() - second,
                Deadline::Ahead {
                    at: from(),
                    days_left: 1,
                },
            ),
            (from(), Deadline::Passed { at: from() }),
            (from() + Duration::days(9), Deadline::Passed { at: from() }),
        ];
        for (now, expected) in cases {
            assert_eq!(
                deadline_of(&due, now).await,
                Some(expected),
                "{backend:?} at {now}"
            );
            // Holding codes, or without MFA, nobody is bound.
            for member in [&owner, &holder, &no_mfa] {
                assert_eq!(
                    deadline_of(member, now).await,
                    None,
                    "{backend:?}: {} at {now}",
                    member.email
                );
            }
        }

        // A grace period longer than the time to the date: joining (t0) plus 5 days.
        save(&test_db, &owner, &required(5)).await;
        let later = t0() + Duration::days(5);
        assert_eq!(
            deadline_of(&due, from()).await,
            Some(Deadline::at(later, from())),
            "{backend:?}"
        );
        assert!(deadline_of(&due, later).await.unwrap().passed());

        // An exception that withholds codes takes the member out of "Required".
        let source = Source::default();
        org_policy::add_exception(
            &Command::new(db, &authz, &owner, &source, t0()),
            "due@acme.test",
            false,
            "no phone",
        )
        .await
        .unwrap();
        assert_eq!(deadline_of(&due, later).await, None, "{backend:?}");
    }
}

#[tokio::test]
async fn each_reminder_goes_out_once_however_many_runs_arrive_at_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let (owner, due, _, _) = organization(&test_db, &hasher, &key).await;
        // Ten days after t0: the reminders are due from 7 days and 1 day before.
        let day = (t0() + Duration::days(10)).date_naive();
        save(
            &test_db,
            &owner,
            &OrgPolicy {
                required_from: Some(day),
                ..required(0)
            },
        )
        .await;
        let deadline = grace::start_of(day);
        let authz = Authz::load(db).await.unwrap();
        let reminders = || async {
            test_db
                .count(&format!(
                    "notification_outbox WHERE kind = '{}' AND user_id = {}",
                    reminders::REMINDER_KIND,
                    due.id
                ))
                .await
        };
        let everyone_reminded = || async {
            test_db
                .count(&format!(
                    "notification_outbox WHERE kind = '{}'",
                    reminders::REMINDER_KIND
                ))
                .await
        };
        let runs_at_once = |now: DateTime<Utc>| {
            let runs: Vec<_> = (0..200)
                .map(|_| {
                    let (db, authz) = (db.clone(), authz.clone());
                    tokio::spawn(async move { reminders::send_reminders(&db, &authz, now).await })
                })
                .collect();
            async move {
                let mut sent = 0;
                for run in runs {
                    sent += run.await.unwrap().unwrap();
                }
                sent
            }
        };

        // More than a week before: nothing.
        assert_eq!(runs_at_once(t0()).await, 0, "{backend:?}");
        // Within the week: the 7-day reminder, once.
        let week_before = deadline - Duration::days(7) + Duration::hours(1);
        assert_eq!(runs_at_once(week_before).await, 1, "{backend:?}");
        assert_eq!(reminders().await, 1, "{backend:?}");
        assert_eq!(
            runs_at_once(deadline - Duration::days(2)).await,
            0,
            "{backend:?}"
        );
        // Within the last day: the 1-day reminder, once.
        assert_eq!(
            runs_at_once(deadline - Duration::hours(12)).await,
            1,
            "{backend:?}"
        );
        assert_eq!(reminders().await, 2, "{backend:?}");
        // From the deadline on, the limit speaks for itself.
        assert_eq!(
            runs_at_once(deadline + Duration::hours(1)).await,
            0,
            "{backend:?}"
        );
        // Nobody who holds codes or has no MFA was reminded.
        assert_eq!(everyone_reminded().await, 2, "{backend:?}");
        let subject: String = test_db
            .db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT subject FROM notification_outbox WHERE user_id = {} ORDER BY id DESC",
                    due.id
                ),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "subject")
            .unwrap();
        assert_eq!(subject, "Generate your backup codes within a day");
    }
}

#[tokio::test]
async fn the_preview_names_whom_the_date_limits_at_once_or_on_the_date() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let backend = test_db.backend;
        let (owner, _, _, _) = organization(&test_db, &hasher, &key).await;
        let authz = Authz::load(db).await.unwrap();
        let preview = |policy: OrgPolicy| {
            let (authz, owner) = (authz.clone(), owner.clone());
            async move {
                org_policy::impact(db, &authz, &owner, &policy, t0())
                    .await
                    .unwrap()
            }
        };
        let named = |impact: &org_policy::Impact, words: &str| {
            impact
                .effects
                .iter()
                .position(|effect| effect.contains(words))
                .map(|at| impact.members[at].clone())
        };

        // A date ahead: `due` is named as limited on it.
        let ahead = preview(required(0)).await;
        assert_eq!(
            named(&ahead, "from Monday 30 November 2026, 00:00:00 UTC"),
            Some(vec!["due@acme.test".to_owned()]),
            "{backend:?}: {:?}",
            ahead.effects
        );
        // A grace period past the date: nobody is limited on the date itself.
        let later = preview(required(5)).await;
        assert_eq!(
            named(&later, "from Monday 30 November 2026"),
            Some(Vec::new()),
            "{backend:?}: {:?}",
            later.effects
        );
        // A date passed: limited from the moment of saving.
        let passed = preview(OrgPolicy {
            required_from: Some((t0() - Duration::days(1)).date_naive()),
            ..required(0)
        })
        .await;
        assert_eq!(
            named(&passed, "from the moment you save"),
            Some(vec!["due@acme.test".to_owned()]),
            "{backend:?}: {:?}",
            passed.effects
        );
    }
}
