//! Admin-issued recovery codes on every backend: request, approval, reveal once, use once,
//! expiry, and who may do what.

use chrono::Duration;
use domain::{
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, BackupCodeError, CodeEntry},
    command::Command,
    hashing::PasswordHasher,
    identity::{Member, Role},
    lookup_secret::BackupCodeHasher,
    org_policy::{self, CodesMode, OrgPolicy},
    recovery_codes::{self, RecoveryError, RecoveryState},
    secrets::SecretKey,
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, owner_with_mfa, t0};

struct Org {
    owner: Member,
    admin: Member,
    other_admin: Member,
    member: Member,
}

async fn org(test_db: &TestDatabase, hasher: &PasswordHasher, key: &SecretKey) -> Org {
    let (owner, _) = owner_with_mfa(test_db, hasher, key).await;
    let add = |email, role| add_member(test_db, hasher, owner.org_id, email, role);
    let admin = add("admin@acme.test", Role::Admin).await;
    let other_admin = add("admin2@acme.test", Role::Admin).await;
    let member = add("member@acme.test", Role::Member).await;
    Org {
        owner,
        admin,
        other_admin,
        member,
    }
}

async fn redeem(
    test_db: &TestDatabase,
    authz: &Authz,
    codes: &BackupCodeHasher,
    member: &Member,
    code: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<backup_codes::Redeemed, BackupCodeError> {
    let source = Source::default();
    let cmd = Command::new(&test_db.db, authz, member, &source, at);
    let issued = recovery_codes::Issued {
        cmd: &cmd,
        hasher: codes,
        also_record: Vec::new(),
    };
    backup_codes::redeem(
        &cmd,
        codes,
        &OrgPolicy::default().code_policy(),
        &CodeEntry::any(code),
        Some(&issued),
        &[],
    )
    .await
}

#[tokio::test]
async fn an_issued_code_is_revealed_once_to_its_requester_and_works_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let request = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(request.state, RecoveryState::ReadyToReveal);
        assert_eq!(request.expires_at, t0() + Duration::hours(24));

        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.owner, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::NotRequester)
        ));
        let (revealed, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            request.id,
        )
        .await
        .unwrap();
        assert_eq!(revealed.state, RecoveryState::Revealed);
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::Closed)
        ));

        let used = redeem(&test_db, &authz, &codes, &org.member, &code.grouped(), t0())
            .await
            .unwrap();
        assert_eq!(used.slot, 0);
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.member, &code.grouped(), t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        // Nobody else can use it either.
        assert!(matches!(
            redeem(&test_db, &authz, &codes, &org.admin, &code.grouped(), t0()).await,
            Err(BackupCodeError::Rejected)
        ));
        let actions: Vec<String> = audit::latest(db, org.owner.org_id, 20)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .filter(|a| a.starts_with("recovery_code."))
            .collect();
        assert_eq!(
            actions,
            [
                "recovery_code.used",
                "recovery_code.revealed",
                "recovery_code.requested"
            ]
        );
        assert!(
            recovery_codes::open_requests(db, &authz, &org.admin, t0())
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn under_two_admin_approval_a_second_admin_must_approve_before_the_reveal() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        org_policy::save(
            &Command::new(db, &authz, &org.owner, &source, t0()),
            0,
            &OrgPolicy {
                recovery_code_approval: true,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        let request = recovery_codes::request(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            "member@acme.test",
        )
        .await
        .unwrap();
        assert_eq!(request.state, RecoveryState::AwaitingApproval);
        assert!(matches!(
            recovery_codes::reveal(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                &codes,
                request.id
            )
            .await,
            Err(RecoveryError::NotApproved)
        ));
        assert!(matches!(
            recovery_codes::approve(
                &Command::new(db, &authz, &org.admin, &source, t0()),
                request.id
            )
            .await,
            Err(RecoveryError::OwnRequest)
        ));
        // A member cannot approve; a second admin can.
        assert!(matches!(
            recovery_codes::approve(
                &Command::new(db, &authz, &org.member, &source, t0()),
                request.id
            )
            .await,
            Err(RecoveryError::NotAllowed)
        ));
        let approved = recovery_codes::approve(
            &Command::new(db, &authz, &org.other_admin, &source, t0()),
            request.id,
        )
        .await
        .unwrap();
        assert_eq!(approved.state, RecoveryState::ReadyToReveal);
        assert_eq!(approved.approved_by.as_deref(), Some("admin2@acme.test"));
        let (_, code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            request.id,
        )
        .await
        .unwrap();
        // Valid for 24 hours from the request.
        assert!(matches!(
            redeem(
                &test_db,
                &authz,
                &codes,
                &org.member,
                &code.grouped(),
                t0() + Duration::hours(25)
            )
            .await,
            Err(BackupCodeError::Rejected)
        ));
        redeem(
            &test_db,
            &authz,
            &codes,
            &org.member,
            &code.grouped(),
            t0() + Duration::hours(23),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn who_may_issue_for_whom_and_when_codes_are_not_allowed() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let org = org(&test_db, &hasher, &key).await;
        let request = |actor: &Member, email: &str| {
            let (authz, actor, email, source) =
                (&authz, actor.clone(), email.to_owned(), source.clone());
            async move {
                recovery_codes::request(&Command::new(db, authz, &actor, &source, t0()), &email)
                    .await
            }
        };
        // Only owners issue for admins and owners; members issue for nobody.
        assert!(matches!(
            request(&org.admin, "owner@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.member, "admin@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.admin, "admin@acme.test").await,
            Err(RecoveryError::NotAllowed)
        ));
        assert!(matches!(
            request(&org.owner, "owner@acme.test").await,
            Err(RecoveryError::ForYourself)
        ));
        assert!(matches!(
            request(&org.owner, "nobody@acme.test").await,
            Err(RecoveryError::UnknownMember)
        ));
        request(&org.owner, "admin@acme.test").await.unwrap();

        // A newer request ends the older one.
        let first = request(&org.admin, "member@acme.test").await.unwrap();
        let (_, old_code) = recovery_codes::reveal(
            &Command::new(db, &authz, &org.admin, &source, t0()),
            &codes,
            first.id,
        )
        .await
        .unwrap();
        request(&org.owner, "member@acme.test").await.unwrap();
        assert!(matches!(
            redeem(
                &test_db,
                &authz,
                &codes,
                &org.member,
                &old_code.grouped(),
                t0()
            )
            .await,
            Err(BackupCodeError::Rejected)
        ));

        // Not for a member whose codes the policy does not allow.
        org_policy::save(
            &Command::new(db, &authz, &org.owner, &source, t0()),
            0,
            &OrgPolicy {
                codes: CodesMode::NotAllowed,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            request(&org.owner, "member@acme.test").await,
            Err(RecoveryError::CodesNotAllowed)
        ));
    }
}
