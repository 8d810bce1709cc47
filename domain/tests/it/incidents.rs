//! "This wasn't me" on every backend: a valid link stops the member's backup codes and issued
//! code, ends their sessions, goes on the record once and alerts the administrators; the same
//! link sent 200 times at once is taken once; an expired, altered or orphaned link is refused
//! and writes nothing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::{
    accounts,
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry, FreshCodes},
    command::Command,
    db::DatabaseConnection,
    hashing::PasswordHasher,
    identity::{self, Member, Role},
    incidents::{self, ReportError},
    lookup_secret::{BackupCodeHasher, PlainCode},
    notifications::{LinkError, NotMe, not_me::VALID_FOR},
    org_policy::OrgPolicy,
    recovery_codes,
    secrets::SecretKey,
    testing::{self, TestDatabase, migrated_databases},
};
use sea_orm::{ConnectionTrait, Statement};

use crate::fixtures::{add_member, member_with_mfa, owner_with_mfa, t0};

/// `minutes` after [`t0`].
fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// An organization whose member holds a set of backup codes and a sign-in code the owner
/// issued, and the "This wasn't me" link of a notice sent to the member at [`at`]`(2)`.
struct Reporting {
    test_db: TestDatabase,
    authz: Authz,
    codes: BackupCodeHasher,
    owner: Member,
    member: Member,
    fresh: FreshCodes,
    issued: PlainCode,
    token: String,
}

impl Reporting {
    async fn new(test_db: TestDatabase) -> Self {
        let hasher = PasswordHasher::new(2).unwrap();
        let key = SecretKey::generate();
        let codes = BackupCodeHasher::new(hasher.clone(), &key);
        let authz = Authz::load(&test_db.db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "admin@acme.test",
            Role::Admin,
        )
        .await;
        let member =
            member_with_mfa(&test_db, &hasher, &key, owner.org_id, "member@acme.test").await;
        let source = Source::default();
        let fresh = backup_codes::generate(
            &Command::new(&test_db.db, &authz, &member, &source, at(1)),
            &codes,
            &OrgPolicy::default().code_policy(),
        )
        .await
        .unwrap();
        let by_owner = Command::new(&test_db.db, &authz, &owner, &source, at(1));
        let request = recovery_codes::request(&by_owner, &member.email, Default::default())
            .await
            .unwrap();
        let (_, issued) = recovery_codes::reveal(&by_owner, &codes, request.id)
            .await
            .unwrap();
        let token = NotMe::new(member.org_id, member.id, at(2)).token(&testing::secret_key());
        Self {
            test_db,
            authz,
            codes,
            owner,
            member,
            fresh,
            issued,
            token,
        }
    }

    fn db(&self) -> &DatabaseConnection {
        &self.test_db.db
    }

    /// Reports `token` at `now`, as the confirmation page does.
    async fn report(&self, token: &str, now: DateTime<Utc>) -> Result<Member, ReportError> {
        incidents::report(
            self.db(),
            &testing::secret_key(),
            token,
            &Source::default(),
            now,
        )
        .await
        .map(|reported| reported.member)
    }

    /// The member signs in with `code` where backup codes are typed.
    async fn sign_in_with(&self, code: &PlainCode) -> Result<(), BackupCodeError> {
        let source = Source::default();
        let cmd = Command::new(self.db(), &self.authz, &self.member, &source, at(4));
        let issued = recovery_codes::sign_in::Issued {
            cmd: &cmd,
            hasher: &self.codes,
            also_record: Vec::new(),
        };
        backup_codes::redeem(
            &cmd,
            &self.codes,
            &OrgPolicy::default().code_policy(),
            &CodeEntry::any(&code.grouped()),
            Some(&issued),
            &[],
        )
        .await
        .map(|_| ())
    }

    /// How many rows `table` holds.
    async fn count(&self, table: &str) -> i64 {
        self.db()
            .query_one(Statement::from_string(
                self.db().get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap()
    }

    /// What a report may write: reports, events, messages; and the member's session number.
    async fn written(&self) -> [i64; 4] {
        let epoch = identity::member(self.db(), self.member.id)
            .await
            .unwrap()
            .map_or(-1, |member| i64::from(member.session_epoch));
        [
            self.count("incident_report").await,
            self.count("audit_event").await,
            self.count("notification_outbox").await,
            epoch,
        ]
    }

    /// The actions of the organization's events at or after `from`, oldest first.
    async fn actions_since(&self, from: DateTime<Utc>) -> Vec<String> {
        let mut events = audit::latest(self.db(), self.owner.org_id, 1000)
            .await
            .unwrap();
        events.reverse();
        events
            .into_iter()
            .filter(|event| event.at >= from)
            .map(|event| event.action)
            .collect()
    }

    /// (kind, recipient, whether it is a member's notice, text) of each message written at
    /// `when`, oldest first.
    async fn messages_at(&self, when: DateTime<Utc>) -> Vec<(String, String, bool, String)> {
        let backend = self.db().get_database_backend();
        self.db()
            .query_all(Statement::from_string(
                backend,
                "SELECT kind, recipient, subject, body_text, created_at \
                 FROM notification_outbox ORDER BY id",
            ))
            .await
            .unwrap()
            .into_iter()
            .filter(|row| row.try_get::<DateTime<Utc>>("", "created_at").unwrap() == when)
            .map(|row| {
                (
                    row.try_get("", "kind").unwrap(),
                    row.try_get("", "recipient").unwrap(),
                    !row.try_get::<String>("", "subject")
                        .unwrap()
                        .starts_with("Alert: "),
                    row.try_get("", "body_text").unwrap(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_report_stops_the_codes_and_the_issued_code_ends_sessions_and_alerts_admins() {
    for test_db in migrated_databases().await {
        let backend = test_db.backend;
        let r = Reporting::new(test_db).await;
        let checked = incidents::check(r.db(), &testing::secret_key(), &r.token, at(3))
            .await
            .unwrap();
        assert_eq!(checked.member.id, r.member.id);
        // The notice was written at minute 2; its link works for 7 days from then.
        assert_eq!(checked.expires_at, at(2) + VALID_FOR, "{backend:?}");
        let epoch = r.member.session_epoch;

        let reported = incidents::report(
            r.db(),
            &testing::secret_key(),
            &r.token,
            &Source::default(),
            at(3),
        )
        .await
        .unwrap();
        assert_eq!(reported.member.id, r.member.id);
        assert!(reported.backup_codes_stopped, "{backend:?}");
        assert!(reported.issued_code_cancelled, "{backend:?}");

        // Neither a backup code nor the issued code signs in any more.
        for code in [&r.fresh.codes[0], &r.issued] {
            assert!(
                matches!(r.sign_in_with(code).await, Err(BackupCodeError::Rejected)),
                "{backend:?}"
            );
        }
        let member = identity::member(r.db(), r.member.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(member.session_epoch, epoch + 1, "{backend:?}");

        // The issued code's end and the report, once, on the record.
        let actions = r.actions_since(at(3)).await;
        assert_eq!(
            actions[..2],
            ["recovery_code.ended", "incident.reported"],
            "{backend:?}"
        );
        assert_eq!(
            actions
                .iter()
                .filter(|action| *action == "incident.reported")
                .count(),
            1
        );
        let event = audit::latest(r.db(), r.owner.org_id, 1000)
            .await
            .unwrap()
            .into_iter()
            .find(|event| event.action == "incident.reported")
            .unwrap();
        assert_eq!(event.target_id, Some(r.member.id));
        assert_eq!(event.details["backup_codes_stopped"], true);
        assert_eq!(event.details["issued_code_cancelled"], true);

        // The member is told once, without a second link (the issued code's end tells nobody
        // again); both administrators are alerted.
        let messages: Vec<(String, String, bool)> = r
            .messages_at(at(3))
            .await
            .into_iter()
            .map(|(kind, to, notice, text)| {
                assert!(!text.contains("/not-me"), "{backend:?}: {text}");
                (kind, to, notice)
            })
            .collect();
        let kind = "incident.reported".to_owned();
        assert_eq!(
            messages,
            [
                (kind.clone(), "member@acme.test".to_owned(), true),
                (kind.clone(), "owner@acme.test".to_owned(), false),
                (kind, "admin@acme.test".to_owned(), false),
            ],
            "{backend:?}"
        );

        // The link is used: checking or sending it again is refused, and writes nothing.
        let before = r.written().await;
        assert!(matches!(
            incidents::check(r.db(), &testing::secret_key(), &r.token, at(4)).await,
            Err(ReportError::AlreadyUsed)
        ));
        assert!(matches!(
            r.report(&r.token, at(4)).await,
            Err(ReportError::AlreadyUsed)
        ));
        assert_eq!(r.written().await, before, "{backend:?}");
    }
}

#[tokio::test]
async fn two_hundred_reports_of_one_link_at_once_take_one() {
    for test_db in migrated_databases().await {
        let backend = test_db.backend;
        let r = Arc::new(Reporting::new(test_db).await);
        let before = r.written().await;

        let mut reports = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let r = Arc::clone(&r);
            reports.spawn(async move { r.report(&r.token, at(3)).await });
        }
        let (mut taken, mut refused) = (0, 0);
        while let Some(outcome) = reports.join_next().await {
            match outcome.unwrap() {
                Ok(member) => {
                    assert_eq!(member.id, r.member.id);
                    taken += 1;
                }
                Err(ReportError::AlreadyUsed) => refused += 1,
                Err(other) => panic!("{backend:?}: {other}"),
            }
        }
        assert_eq!((taken, refused), (1, 199), "{backend:?}");

        let after = r.written().await;
        assert_eq!(after[0], before[0] + 1, "{backend:?}: one report");
        assert_eq!(after[3], before[3] + 1, "{backend:?}: sessions ended once");
        let actions = r.actions_since(at(3)).await;
        assert_eq!(
            actions
                .iter()
                .filter(|action| *action == "incident.reported")
                .count(),
            1,
            "{backend:?}: {actions:?}"
        );
        // One notice to the member and one alert to each administrator.
        let told = r
            .messages_at(at(3))
            .await
            .into_iter()
            .filter(|(kind, ..)| kind == "incident.reported")
            .count();
        assert_eq!(told, 3, "{backend:?}");
    }
}

#[tokio::test]
async fn an_expired_altered_or_orphaned_link_is_refused_and_writes_nothing() {
    for test_db in migrated_databases().await {
        let backend = test_db.backend;
        let r = Reporting::new(test_db).await;
        let key = testing::secret_key();
        let before = r.written().await;

        // Good until 7 days after its message, not at that moment.
        let expired = at(2) + VALID_FOR;
        assert!(matches!(
            incidents::check(r.db(), &key, &r.token, expired).await,
            Err(ReportError::Link(LinkError::Expired))
        ));
        assert!(matches!(
            r.report(&r.token, expired).await,
            Err(ReportError::Link(LinkError::Expired))
        ));
        assert_eq!(r.written().await, before, "{backend:?}: expired");

        // Another member's id in a token signed for this one; a cut signature; a token of
        // another server's key.
        let other_member = r.token.replacen(
            &format!("{}.{}.", r.member.org_id, r.member.id),
            &format!("{}.{}.", r.member.org_id, r.owner.id),
            1,
        );
        assert_ne!(other_member, r.token);
        let foreign = NotMe::new(r.member.org_id, r.member.id, at(2)).token(&SecretKey::generate());
        for tampered in [
            other_member,
            r.token[..r.token.len() - 2].to_owned(),
            foreign,
            "not a token".to_owned(),
        ] {
            assert!(
                matches!(
                    r.report(&tampered, at(3)).await,
                    Err(ReportError::Link(LinkError::Invalid))
                ),
                "{backend:?}: {tampered}"
            );
        }
        assert_eq!(r.written().await, before, "{backend:?}: tampered");

        // The member was removed after the notice: there is no account to protect.
        let source = Source::default();
        accounts::remove_member(
            &Command::new(r.db(), &r.authz, &r.owner, &source, at(3)),
            r.member.id,
        )
        .await
        .unwrap();
        // An account added after it never takes the removed one's id, so the link cannot
        // reach it (SQLite would reuse the highest id without AUTOINCREMENT).
        let hasher = PasswordHasher::new(1).unwrap();
        let newcomer = add_member(
            &r.test_db,
            &hasher,
            r.owner.org_id,
            "newcomer@acme.test",
            Role::Member,
        )
        .await;
        assert_ne!(newcomer.id, r.member.id, "{backend:?}");
        let before = r.written().await;
        assert!(matches!(
            incidents::check(r.db(), &key, &r.token, at(4)).await,
            Err(ReportError::NoAccount)
        ));
        assert!(matches!(
            r.report(&r.token, at(4)).await,
            Err(ReportError::NoAccount)
        ));
        assert_eq!(r.written().await, before, "{backend:?}: removed");
    }
}
