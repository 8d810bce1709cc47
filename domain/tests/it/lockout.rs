//! Per-account lockout of passwords, authenticator codes and backup codes on every backend:
//! counted in the database, the same answer while locked, locks that double when they
//! repeat, audited, and ended by an administrator.

use chrono::{DateTime, Duration, Utc};
use domain::{
    accounts::{self, AccountError},
    audit::{self, Source},
    authz::Authz,
    command::Command,
    db::DatabaseConnection,
    hashing::PasswordHasher,
    identity::{Email, Member, Role},
    lockout::{self, Factor},
    members,
    mfa::{self, MfaError},
    org_policy::OrgPolicy,
    secrets::{Password, SecretKey},
    testing::migrated_databases,
};

use crate::fixtures::{add_member, owner_with_mfa, t0};

const RIGHT: &str = "correct horse battery";

/// Signs in with a password and waits until a refusal, if any, is on the record (it is
/// written after the answer).
async fn password(
    db: &DatabaseConnection,
    hasher: &PasswordHasher,
    member: &Member,
    typed: &str,
    at: DateTime<Utc>,
) -> bool {
    let before = audit::latest(db, member.org_id, 1).await.unwrap()[0].seq;
    let signed_in = domain::sign_in::password(
        db,
        hasher,
        &Email::parse(&member.email).unwrap(),
        &Password::new(typed),
        &Source::default(),
        at,
    )
    .await
    .unwrap()
    .map(domain::sign_in::PasswordStep::into_member)
    .is_some();
    if !signed_in {
        for _ in 0..200 {
            let events = audit::latest(db, member.org_id, 3).await.unwrap();
            // The refusal, and the lock it may cause, are written in one transaction.
            if events
                .iter()
                .any(|e| e.seq > before && e.action == "sign_in.failed")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    signed_in
}

async fn latest_actions(db: &DatabaseConnection, org_id: i32, n: u64) -> Vec<String> {
    let mut events = audit::latest(db, org_id, n).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| e.action).collect()
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_with_the_same_answer_and_repeat_locks_double() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;

        for _ in 0..4 {
            assert!(!password(db, &hasher, &member, "wrong", t0()).await);
        }
        assert_eq!(
            lockout::locked_until(db, member.id, Factor::Password, t0())
                .await
                .unwrap(),
            None
        );
        assert!(!password(db, &hasher, &member, "wrong", t0()).await);
        let until = t0() + Duration::minutes(15);
        assert_eq!(
            lockout::locked_until(db, member.id, Factor::Password, t0())
                .await
                .unwrap(),
            Some(until)
        );
        let lock = audit::latest(db, owner.org_id, 1).await.unwrap().remove(0);
        assert_eq!(lock.action, "password.locked");
        assert_eq!(lock.details["lockouts_in_a_row"], 1);

        // Locked: the right password gets the wrong-password answer, on the record.
        assert!(!password(db, &hasher, &member, RIGHT, t0() + Duration::minutes(14)).await);
        let refusal = audit::latest(db, owner.org_id, 1).await.unwrap().remove(0);
        assert_eq!(refusal.action, "sign_in.failed");
        assert_eq!(refusal.details["reason"], "locked");
        // Confirming the password before a sensitive change is under the same lock.
        let confirmed = accounts::confirm_password(
            db,
            &hasher,
            &member,
            &Password::new(RIGHT),
            &Source::default(),
            t0() + Duration::minutes(14),
        )
        .await
        .unwrap();
        assert!(!confirmed);

        // The lock ends; five more wrong ones lock it again, for twice as long.
        let later = t0() + Duration::minutes(16);
        for _ in 0..5 {
            assert!(!password(db, &hasher, &member, "wrong", later).await);
        }
        assert_eq!(
            lockout::locked_until(db, member.id, Factor::Password, later)
                .await
                .unwrap(),
            Some(later + Duration::minutes(30))
        );
        // After it, a success starts the doubling over.
        let after = later + Duration::minutes(31);
        assert!(password(db, &hasher, &member, RIGHT, after).await);
        for _ in 0..5 {
            assert!(!password(db, &hasher, &member, "wrong", after).await);
        }
        assert_eq!(
            lockout::locked_until(db, member.id, Factor::Password, after)
                .await
                .unwrap(),
            Some(after + Duration::minutes(15))
        );
        // Another member of the organization is not touched.
        assert!(password(db, &hasher, &owner, RIGHT, after).await);
    }
}

#[tokio::test]
async fn wrong_authenticator_codes_lock_that_factor_and_an_admin_unlocks_everything() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, setup_key) = owner_with_mfa(&test_db, &hasher, &key).await;
        let admin = add_member(&test_db, &hasher, owner.org_id, "a@acme.test", Role::Admin).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        let limits = OrgPolicy::default().code_policy().limits();
        let source = Source::default();
        let at = t0() + Duration::minutes(5);
        let code_now = mfa::code_at(&setup_key, at).unwrap();
        let wrong = if code_now == "000000" {
            "111111"
        } else {
            "000000"
        };
        let try_code = |code: &str| {
            let (key, owner, code) = (key.clone(), owner.clone(), code.to_owned());
            let authz = &authz;
            async move {
                let source = Source::default();
                let cmd = Command::new(db, authz, &owner, &source, at);
                mfa::sign_in_with_code(&cmd, &key, &code, limits, &[]).await
            }
        };

        // A malformed code is no attempt.
        assert!(matches!(try_code("12ab").await, Err(MfaError::Invalid(_))));
        for _ in 0..5 {
            assert!(matches!(try_code(wrong).await, Err(MfaError::WrongCode)));
        }
        assert_eq!(
            latest_actions(db, owner.org_id, 2).await,
            ["sign_in.failed", "totp.locked"]
        );
        // Locked: the right code gets the wrong-code answer, and is not spent.
        assert!(matches!(
            try_code(&code_now).await,
            Err(MfaError::WrongCode)
        ));
        assert_eq!(
            audit::latest(db, owner.org_id, 1).await.unwrap()[0].details["reason"],
            "locked"
        );
        // The password is a factor of its own: not locked.
        assert_eq!(
            lockout::locked_until(db, owner.id, Factor::Password, at)
                .await
                .unwrap(),
            None
        );

        // A member may not unlock anyone; that is on the record too.
        let refused =
            members::unlock(&Command::new(db, &authz, &member, &source, at), owner.id).await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        assert_eq!(
            latest_actions(db, owner.org_id, 1).await,
            ["member.unlocked"]
        );
        assert_eq!(
            audit::latest(db, owner.org_id, 1).await.unwrap()[0].outcome,
            "denied"
        );
        // Nor may an admin unlock an owner; the owner's locks stay.
        assert!(
            members::unlock(&Command::new(db, &authz, &admin, &source, at), owner.id)
                .await
                .is_err()
        );
        assert!(
            lockout::locked_until(db, owner.id, Factor::Totp, at)
                .await
                .unwrap()
                .is_some()
        );

        // The member is locked out of passwords too; an owner unlocks the lot.
        for _ in 0..5 {
            assert!(!password(db, &hasher, &admin, "wrong", at).await);
        }
        let page = members::page(
            db,
            &authz,
            &owner,
            members::Filter {
                search: "a@acme.test",
                ..Default::default()
            },
            None,
            at,
        )
        .await
        .unwrap();
        assert_eq!(page.rows[0].locked.len(), 1, "the console shows the lock");
        members::unlock(&Command::new(db, &authz, &owner, &source, at), admin.id)
            .await
            .unwrap();
        let event = audit::latest(db, owner.org_id, 1).await.unwrap().remove(0);
        assert_eq!(event.action, "member.unlocked");
        assert_eq!(event.target_id, Some(admin.id));
        assert_eq!(event.details["factors"], serde_json::json!(["password"]));
        assert!(password(db, &hasher, &admin, RIGHT, at).await);
        let page = members::page(
            db,
            &authz,
            &owner,
            members::Filter {
                search: "a@acme.test",
                ..Default::default()
            },
            None,
            at,
        )
        .await
        .unwrap();
        assert!(page.rows[0].locked.is_empty());

        // Past the lock, the right code works and the count starts over.
        let later = at + Duration::minutes(16);
        let code_later = mfa::code_at(&setup_key, later).unwrap();
        let cmd = Command::new(db, &authz, &owner, &source, later);
        mfa::sign_in_with_code(&cmd, &key, &code_later, limits, &[])
            .await
            .unwrap();
        assert_eq!(audit::verify(db, owner.org_id).await.unwrap().broken, None);
    }
}

/// How many refusals of each reason the organization's log holds for `action`.
async fn refusals(db: &DatabaseConnection, org_id: i32, action: &str, reason: &str) -> usize {
    audit::latest(db, org_id, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action && e.details["reason"] == reason)
        .count()
}

async fn count(db: &DatabaseConnection, org_id: i32, action: &str) -> usize {
    audit::latest(db, org_id, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

/// 200 wrong passwords at once: exactly the organization's number are evaluated (recorded
/// as wrong), one lock is set, and the right password that comes after them is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_passwords_evaluates_exactly_the_allowed_number_and_locks_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        let email = Email::parse(&member.email).unwrap();
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let (db, hasher, email) = (db.clone(), hasher.clone(), email.clone());
            burst.spawn(async move {
                domain::sign_in::password(
                    &db,
                    &hasher,
                    &email,
                    &Password::new("wrong"),
                    &Source::default(),
                    t0(),
                )
                .await
                .unwrap()
                .is_none()
            });
        }
        while let Some(refused) = burst.join_next().await {
            assert!(refused.unwrap());
        }
        let backend = test_db.backend;
        let wrong = refusals(db, owner.org_id, "sign_in.failed", "wrong").await;
        let locked = refusals(db, owner.org_id, "sign_in.failed", "locked").await;
        assert_eq!((wrong, locked), (5, 195), "{backend:?}");
        assert_eq!(
            count(db, owner.org_id, "password.locked").await,
            1,
            "{backend:?}"
        );
        assert!(!password(db, &hasher, &member, RIGHT, t0()).await);
    }
}

/// A stranger's burst locks the untrusted sources; the member's browser, holding its device
/// cookie, keeps its own count and still signs in.
#[tokio::test]
async fn a_lock_set_by_a_stranger_does_not_stop_the_members_own_browser() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        for _ in 0..5 {
            assert!(!password(db, &hasher, &member, "wrong", t0()).await);
        }
        assert!(!password(db, &hasher, &member, RIGHT, t0()).await);
        let from_device = Source {
            device: Some(domain::device::Device::new(member.id)),
            ..Source::default()
        };
        let other_members_device = Source {
            device: Some(domain::device::Device::new(owner.id)),
            ..Source::default()
        };
        let (email, right) = (Email::parse(&member.email).unwrap(), Password::new(RIGHT));
        // A device cookie of another account is no help.
        let with_other =
            domain::sign_in::password(db, &hasher, &email, &right, &other_members_device, t0());
        assert!(with_other.await.unwrap().is_none());
        let with_own = domain::sign_in::password(db, &hasher, &email, &right, &from_device, t0());
        assert!(with_own.await.unwrap().is_some());
    }
}

/// Failures age: those older than the lock window are forgotten, so four typos last month
/// and one today do not lock.
#[tokio::test]
async fn failures_older_than_the_window_are_forgotten() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        for _ in 0..4 {
            assert!(!password(db, &hasher, &member, "wrong", t0()).await);
        }
        let next_month = t0() + Duration::days(30);
        assert!(!password(db, &hasher, &member, "wrong", next_month).await);
        assert!(password(db, &hasher, &member, RIGHT, next_month).await);
        assert_eq!(count(db, owner.org_id, "password.locked").await, 0);
    }
}

/// 200 operator unlocks of one member at once, while as many events of the organization are
/// written: every unlock goes through on its first try, and each is on the record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_unlocks_at_once_beside_other_writes_all_go_through() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let member = add_member(&test_db, &hasher, owner.org_id, "m@acme.test", Role::Member).await;
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..400 {
            let (db, owner, email) = (db.clone(), owner.clone(), member.email.clone());
            burst.spawn(async move {
                if i % 2 == 0 {
                    audit::record(
                        &db,
                        owner.org_id,
                        audit::Event {
                            action: audit::AuditAction::SignInFailed,
                            actor: Some(&owner),
                            target: Some(&owner),
                            outcome: audit::Outcome::Denied,
                            details: serde_json::json!({ "attempt": i }),
                        },
                        &Source::default(),
                        t0(),
                    )
                    .await
                    .map_err(|e| e.to_string())
                } else {
                    members::unlock_by_operator(&db, owner.org_id, &email, t0())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            });
        }
        while let Some(outcome) = burst.join_next().await {
            outcome
                .unwrap()
                .unwrap_or_else(|e| panic!("{:?}: {e}", test_db.backend));
        }
        assert_eq!(
            count(db, owner.org_id, "member.unlocked").await,
            200,
            "{:?}",
            test_db.backend
        );
    }
}
