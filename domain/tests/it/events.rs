//! The audit log's coverage, on every backend: each action that changes security state, or
//! tries to, leaves exactly one event with the right action, actor, target, outcome, source
//! and details, in the organization's chain, which still verifies at the end.

use chrono::{DateTime, Duration, Utc};
use domain::{
    accounts::{self, AccountError, NewMember},
    audit::{self, Outcome, Recorded, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry},
    command::Command,
    db::DatabaseConnection,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::{BackupCodeHasher, PlainCode},
    mfa,
    org_policy::{self, CodesMode, OrgPolicy, PolicyChangeError},
    recovery_codes::{self, RecoveryError, RecoveryState},
    secrets::{Password, SecretKey},
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{owner_with_mfa, t0};

/// Where every request of this test comes from.
fn source() -> Source {
    Source {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("events-test/1.0".into()),
        ..Source::default()
    }
}

/// The organization's log, read from where the test last looked.
struct Log<'a> {
    db: &'a DatabaseConnection,
    org_id: i32,
    seen: i64,
}

impl<'a> Log<'a> {
    async fn new(db: &'a DatabaseConnection, org_id: i32) -> Self {
        let seen = audit::latest(db, org_id, 1)
            .await
            .unwrap()
            .first()
            .map_or(0, |event| event.seq);
        Self { db, org_id, seen }
    }

    /// The events written since the last look, oldest first.
    async fn new_events(&mut self) -> Vec<Recorded> {
        let mut events: Vec<Recorded> = audit::latest(self.db, self.org_id, 50)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.seq > self.seen)
            .collect();
        events.reverse();
        if let Some(last) = events.last() {
            self.seen = last.seq;
        }
        events
    }

    /// The one event the last action wrote, checked against what it should say.
    async fn one(&mut self, expected: Expected<'_>) -> Recorded {
        let events = self.new_events().await;
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            events.len(),
            1,
            "{} should write exactly one event, wrote {actions:?}",
            expected.action
        );
        let event = events.into_iter().next().unwrap();
        expected.check(&event);
        event
    }
}

/// What an event must say.
struct Expected<'a> {
    action: &'a str,
    actor: Option<&'a Member>,
    target: Option<&'a Member>,
    outcome: Outcome,
}

impl Expected<'_> {
    fn check(&self, event: &Recorded) {
        let what = &self.action;
        assert_eq!(event.action, *what);
        assert_eq!(event.actor_id, self.actor.map(|m| m.id), "{what}: actor");
        assert_eq!(
            event.actor,
            self.actor.map(|m| m.email.clone()),
            "{what}: actor email"
        );
        assert_eq!(event.target_id, self.target.map(|m| m.id), "{what}: target");
        assert_eq!(event.outcome, self.outcome.as_str(), "{what}: outcome");
        if self.actor.is_some() {
            assert_eq!(event.source, source(), "{what}: source");
        }
        assert!(event.details.is_object(), "{what}: details");
    }
}

fn done<'a>(action: &'a str, actor: &'a Member, target: Option<&'a Member>) -> Expected<'a> {
    Expected {
        action,
        actor: Some(actor),
        target,
        outcome: Outcome::Success,
    }
}

fn denied<'a>(action: &'a str, actor: &'a Member, target: Option<&'a Member>) -> Expected<'a> {
    Expected {
        outcome: Outcome::Denied,
        ..done(action, actor, target)
    }
}

fn failed<'a>(action: &'a str, member: &'a Member) -> Expected<'a> {
    Expected {
        outcome: Outcome::Failure,
        ..done(action, member, Some(member))
    }
}

async fn add(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    authz: &Authz,
    by: &Member,
    email: &str,
    role: Role,
) -> Result<Member, AccountError> {
    accounts::create_member(
        &test_db.db,
        hasher,
        Some(&Command::new(&test_db.db, authz, by, &source(), t0())),
        by.org_id,
        NewMember {
            email,
            password: &Password::new("correct horse battery"),
            role,
        },
        t0(),
    )
    .await
}

async fn save(
    db: &DatabaseConnection,
    authz: &Authz,
    actor: &Member,
    policy: OrgPolicy,
) -> Result<(), PolicyChangeError> {
    let version = org_policy::current(db, actor.org_id).await.unwrap().version;
    org_policy::save(
        &Command::new(db, authz, actor, &source(), t0()),
        version,
        &policy,
    )
    .await?;
    Ok(())
}

async fn redeem(
    db: &DatabaseConnection,
    authz: &Authz,
    codes: &BackupCodeHasher,
    member: &Member,
    typed: &str,
    at: DateTime<Utc>,
) -> Result<backup_codes::Redeemed, BackupCodeError> {
    let policy = org_policy::current(db, member.org_id)
        .await
        .unwrap()
        .policy
        .code_policy();
    let source = source();
    let cmd = Command::new(db, authz, member, &source, at);
    let issued = recovery_codes::sign_in::Issued {
        cmd: &cmd,
        hasher: codes,
        also_record: Vec::new(),
    };
    backup_codes::redeem(
        &cmd,
        codes,
        &policy,
        &CodeEntry::any(typed),
        Some(&issued),
        &[],
    )
    .await
}

async fn generate(
    db: &DatabaseConnection,
    authz: &Authz,
    codes: &BackupCodeHasher,
    member: &Member,
) -> Result<Vec<PlainCode>, BackupCodeError> {
    let policy = org_policy::current(db, member.org_id)
        .await
        .unwrap()
        .policy
        .code_policy();
    Ok(backup_codes::generate(
        &Command::new(db, authz, member, &source(), t0()),
        codes,
        &policy,
    )
    .await?
    .codes)
}

#[tokio::test]
async fn every_security_action_writes_exactly_one_event_with_the_right_fields() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();

        // A new organization's chain starts with its creation.
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let first = audit::latest(db, owner.org_id, 100).await.unwrap();
        let created = first.last().unwrap();
        assert_eq!(
            (created.seq, created.action.as_str()),
            (1, "organization.created")
        );
        assert_eq!(created.target_id, Some(owner.id));
        let mut log = Log::new(db, owner.org_id).await;

        // Members: added, refused, role changed, removed.
        let admin = add(
            &test_db,
            &hasher,
            &authz,
            &owner,
            "admin@acme.test",
            Role::Admin,
        )
        .await
        .unwrap();
        let event = log.one(done("member.added", &owner, Some(&admin))).await;
        assert_eq!(event.details["role"], "admin");
        let member = add(
            &test_db,
            &hasher,
            &authz,
            &owner,
            "member@acme.test",
            Role::Member,
        )
        .await
        .unwrap();
        log.one(done("member.added", &owner, Some(&member))).await;
        let refused = add(
            &test_db,
            &hasher,
            &authz,
            &member,
            "new@acme.test",
            Role::Member,
        )
        .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        let event = log.one(denied("member.added", &member, None)).await;
        assert_eq!(event.details["email"], "new@acme.test");
        assert_eq!(
            accounts::list_members(db, owner.org_id)
                .await
                .unwrap()
                .len(),
            3,
            "a refused addition adds nobody"
        );
        let temp = add(
            &test_db,
            &hasher,
            &authz,
            &owner,
            "temp@acme.test",
            Role::Member,
        )
        .await
        .unwrap();
        log.one(done("member.added", &owner, Some(&temp))).await;
        let source = source();
        let temp = domain::members::change_role(
            &Command::new(db, &authz, &owner, &source, t0()),
            temp.id,
            Role::Admin,
        )
        .await
        .unwrap();
        let event = log
            .one(done("member.role_changed", &owner, Some(&temp)))
            .await;
        assert_eq!(
            (&event.details["before"], &event.details["after"]),
            (&serde_json::json!("member"), &serde_json::json!("admin"))
        );
        let refused = domain::members::change_role(
            &Command::new(db, &authz, &admin, &source, t0()),
            temp.id,
            Role::Owner,
        )
        .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        log.one(denied("member.role_changed", &admin, Some(&temp)))
            .await;
        let refused =
            accounts::remove_member(&Command::new(db, &authz, &member, &source, t0()), admin.id)
                .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        log.one(denied("member.removed", &member, Some(&admin)))
            .await;
        accounts::remove_member(&Command::new(db, &authz, &owner, &source, t0()), temp.id)
            .await
            .unwrap();
        log.one(done("member.removed", &owner, Some(&temp))).await;

        // MFA on.
        let enrolment = mfa::begin_enrolment(db, &key, member.id).await.unwrap();
        let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
        mfa::confirm_enrolment(db, &key, member.id, &code, &source, t0())
            .await
            .unwrap();
        log.one(done("mfa.enabled", &member, Some(&member))).await;
        let member = accounts::member(db, member.id).await.unwrap().unwrap();

        // Codes: generated, replaced, redeemed, refused for each reason, locked.
        generate(db, &authz, &codes, &member).await.unwrap();
        let event = log
            .one(done("backup_codes.generated", &member, Some(&member)))
            .await;
        assert_eq!(event.details["codes"], 10);
        let set = generate(db, &authz, &codes, &member).await.unwrap();
        log.one(done("backup_codes.replaced", &member, Some(&member)))
            .await;
        let first_code = set[0].grouped();
        redeem(db, &authz, &codes, &member, &first_code, t0())
            .await
            .unwrap();
        let event = log
            .one(done("backup_code.redeemed", &member, Some(&member)))
            .await;
        assert_eq!(event.details["slot"], 1);
        let digits: String = first_code.chars().filter(char::is_ascii_digit).collect();
        assert!(!event.details.to_string().contains(&digits));
        for (typed, reason) in [
            (first_code.as_str(), "used"),
            ("abc", "malformed"),
            ("0000 0000 0001", "wrong"),
            ("0000 0000 0002", "wrong"),
            // "abc" can never be a code: recorded, but it counts towards no lock.
            ("0000 0000 0005", "wrong"),
        ] {
            assert!(
                redeem(db, &authz, &codes, &member, typed, t0())
                    .await
                    .is_err()
            );
            let event = log.one(failed("backup_code.refused", &member)).await;
            assert_eq!(event.details["reason"], reason);
        }
        // The fifth wrong code: its refusal, and the lock it causes.
        assert!(
            redeem(db, &authz, &codes, &member, "0000 0000 0003", t0())
                .await
                .is_err()
        );
        let events = log.new_events().await;
        assert_eq!(events.len(), 2, "a refusal and the lockout");
        failed("backup_code.refused", &member).check(&events[0]);
        failed("backup_code.locked", &member).check(&events[1]);
        assert_eq!(events[1].details["attempts"], 5);
        // Locked: even the right code is refused, and says why.
        assert!(
            redeem(db, &authz, &codes, &member, &set[1].grouped(), t0())
                .await
                .is_err()
        );
        let event = log.one(failed("backup_code.refused", &member)).await;
        assert_eq!(event.details["reason"], "locked");

        // Sign-in, succeeded and failed.
        let later = t0() + Duration::seconds(30);
        let code = mfa::code_at(&enrolment.setup_key, later).unwrap();
        domain::sign_in::authenticator_code(
            &Command::new(db, &authz, &member, &source, later),
            &key,
            &code,
        )
        .await
        .unwrap();
        let event = log
            .one(done("sign_in.succeeded", &member, Some(&member)))
            .await;
        assert_eq!(event.details["method"], "password+totp");
        let wrong = domain::sign_in::password(
            db,
            &hasher,
            &domain::identity::Email::parse("member@acme.test").unwrap(),
            &Password::new("not the password"),
            &source,
            t0(),
        )
        .await
        .unwrap()
        .map(domain::sign_in::PasswordStep::into_member);
        assert!(wrong.is_none());
        // Recorded after the answer: wait for it.
        let mut events = Vec::new();
        for _ in 0..100 {
            events = log.new_events().await;
            if !events.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(events.len(), 1);
        failed("sign_in.failed", &member).check(&events[0]);
        assert_eq!(events[0].details["method"], "password");

        // An administrator resets MFA, revokes codes; a member may do neither.
        let refused =
            domain::members::reset_mfa(&Command::new(db, &authz, &member, &source, t0()), admin.id)
                .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        log.one(denied("mfa.reset", &member, Some(&admin))).await;
        domain::members::reset_mfa(&Command::new(db, &authz, &admin, &source, t0()), member.id)
            .await
            .unwrap();
        log.one(done("mfa.reset", &admin, Some(&member))).await;
        let refused = domain::members::revoke_codes(
            &Command::new(db, &authz, &admin, &source, t0()),
            owner.id,
        )
        .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        log.one(denied("backup_codes.revoked", &admin, Some(&owner)))
            .await;
        generate(db, &authz, &codes, &owner).await.unwrap();
        log.one(done("backup_codes.generated", &owner, Some(&owner)))
            .await;
        let revoked = domain::members::revoke_codes(
            &Command::new(db, &authz, &owner, &source, t0()),
            admin.id,
        )
        .await
        .unwrap();
        let event = log
            .one(done("backup_codes.revoked", &owner, Some(&revoked)))
            .await;
        assert_eq!(event.details["had_codes"], false);

        // MFA off.
        mfa::disable(
            db,
            &hasher,
            owner.id,
            &Password::new("correct horse battery"),
            &source,
            t0(),
        )
        .await
        .unwrap();
        log.one(done("mfa.disabled", &owner, Some(&owner))).await;
        let enrolment = mfa::begin_enrolment(db, &key, owner.id).await.unwrap();
        let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
        mfa::confirm_enrolment(db, &key, owner.id, &code, &source, t0())
            .await
            .unwrap();
        log.one(done("mfa.enabled", &owner, Some(&owner))).await;

        // Policy: saved with its difference, refused, exceptions.
        let strict = OrgPolicy {
            lockout_attempts: 3,
            recovery_code_approval: true,
            ..OrgPolicy::default()
        };
        save(db, &authz, &owner, strict).await.unwrap();
        let event = log.one(done("policy.saved", &owner, None)).await;
        assert_eq!(
            event.details["changes"],
            serde_json::json!([
                {"field": "Lock after wrong codes", "before": "5", "after": "3"},
                {"field": "Two-admin approval for recovery codes", "before": "Off", "after": "On"},
            ]),
            "the difference from the version before"
        );
        let refused = save(db, &authz, &member, OrgPolicy::default()).await;
        assert!(matches!(refused, Err(PolicyChangeError::NotAllowed)));
        log.one(denied("policy.saved", &member, None)).await;
        let exception = org_policy::add_exception(
            &Command::new(db, &authz, &admin, &source, t0()),
            "member@acme.test",
            false,
            "shared device",
        )
        .await
        .unwrap();
        log.one(done("policy.exception_added", &admin, Some(&member)))
            .await;
        let refused = org_policy::remove_exception(
            &Command::new(db, &authz, &member, &source, t0()),
            exception.id,
        )
        .await;
        assert!(matches!(refused, Err(PolicyChangeError::NotAllowed)));
        log.one(denied("policy.exception_removed", &member, None))
            .await;
        org_policy::remove_exception(
            &Command::new(db, &authz, &admin, &source, t0()),
            exception.id,
        )
        .await
        .unwrap();
        log.one(done("policy.exception_removed", &admin, Some(&member)))
            .await;

        // Recovery codes: requested, refused, approved, revealed, used.
        let refused = recovery_codes::request(
            &Command::new(db, &authz, &member, &source, t0()),
            "admin@acme.test",
            Default::default(),
        )
        .await;
        assert!(matches!(refused, Err(RecoveryError::NotAllowed)));
        log.one(denied("recovery_code.requested", &member, Some(&admin)))
            .await;
        let member = accounts::member(db, member.id).await.unwrap().unwrap();
        let request = recovery_codes::request(
            &Command::new(db, &authz, &admin, &source, t0()),
            "member@acme.test",
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(request.state, RecoveryState::AwaitingApproval);
        log.one(done("recovery_code.requested", &admin, Some(&member)))
            .await;
        recovery_codes::approve(&Command::new(db, &authz, &owner, &source, t0()), request.id)
            .await
            .unwrap();
        log.one(done("recovery_code.approved", &owner, Some(&member)))
            .await;
        let (_, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &admin, &source, t0()),
            &codes,
            request.id,
        )
        .await
        .unwrap();
        log.one(done("recovery_code.revealed", &admin, Some(&member)))
            .await;
        // Past the member's code lockout.
        let later = t0() + Duration::hours(1);
        let redeemed = redeem(db, &authz, &codes, &member, &code.grouped(), later)
            .await
            .unwrap();
        assert_eq!(redeemed.slot, 0);
        log.one(done("recovery_code.used", &member, Some(&member)))
            .await;

        // Codes not allowed: generating and redeeming are refused by the gate, on record.
        let closed = OrgPolicy {
            codes: CodesMode::NotAllowed,
            ..strict
        };
        save(db, &authz, &owner, closed).await.unwrap();
        log.one(done("policy.saved", &owner, None)).await;
        let refused = generate(db, &authz, &codes, &owner).await;
        assert!(matches!(refused, Err(BackupCodeError::NotAllowed)));
        let event = log
            .one(denied(
                "backup_codes.generate_refused",
                &owner,
                Some(&owner),
            ))
            .await;
        assert_eq!(event.details["reason"], "not_allowed");
        let refused = redeem(db, &authz, &codes, &owner, "0000 0000 0004", t0()).await;
        assert!(matches!(refused, Err(BackupCodeError::NotAllowed)));
        let event = log
            .one(denied("backup_code.refused", &owner, Some(&owner)))
            .await;
        assert_eq!(event.details["reason"], "not_allowed");

        assert_eq!(
            audit::verify(db, owner.org_id).await.unwrap().broken,
            None,
            "the chain holds every event in order"
        );
    }
}
