//! The members console on every backend: keyset pages and search, codes and compliance at a
//! glance, and revoking codes, resetting MFA and changing roles under the gate.

use domain::{
    accounts::{self, AccountError},
    audit::{self, Source},
    authz::Authz,
    backup_codes,
    command::Command,
    hashing::PasswordHasher,
    identity::Role,
    lookup_secret::BackupCodeHasher,
    members::{self, PAGE_SIZE},
    mfa,
    org_policy::{self, CodesMode, OrgPolicy},
    secrets::{Password, SecretKey},
    testing::{TestDatabase, migrated_databases},
};

use crate::fixtures::{add_member, owner_with_mfa, t0};

/// `count` members of `org_id` written straight into the table (hashing a password for
/// each would only slow the test down).
async fn bulk_members(test_db: &TestDatabase, org_id: i32, count: usize) {
    let values: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "({org_id}, 'user-{i:03}@acme.test', 'x', 'member', '2026-11-27T12:00:00+00:00', false)"
            )
        })
        .collect();
    test_db
        .execute(&format!(
            "INSERT INTO user_account (org_id, email, password_hash, role, created_at, mfa_setup_required) VALUES {}",
            values.join(", ")
        ))
        .await;
}

#[tokio::test]
async fn pages_follow_the_key_and_search_finds_by_email_within_the_organization() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        bulk_members(&test_db, owner.org_id, 120).await;
        let (_, stranger) = accounts::create_organization(
            db,
            &hasher,
            "Globex",
            "user-001@globex.test",
            &Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = members::page(db, &authz, &owner, members::Filter::default(), after, t0())
                .await
                .unwrap();
            assert!(page.rows.len() as u64 <= PAGE_SIZE);
            seen.extend(page.rows.iter().map(|r| r.member.id));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 121, "{:?}", test_db.backend);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));

        let found = members::page(
            db,
            &authz,
            &owner,
            members::Filter {
                search: " USER-07",
                ..Default::default()
            },
            None,
            t0(),
        )
        .await
        .unwrap();
        let emails: Vec<&str> = found.rows.iter().map(|r| r.member.email.as_str()).collect();
        assert_eq!(emails.len(), 10, "{emails:?}");
        assert!(
            emails
                .iter()
                .all(|e| e.starts_with("user-07") && e.ends_with("@acme.test"))
        );
        assert_eq!(found.next_after, None);

        // Another organization sees only its own.
        let theirs = members::page(
            db,
            &authz,
            &stranger,
            members::Filter {
                search: "user-",
                ..Default::default()
            },
            None,
            t0(),
        )
        .await
        .unwrap();
        assert_eq!(theirs.rows.len(), 1);
        assert!(matches!(
            members::page(db, &authz, &owner, members::Filter { search: &"x".repeat(300), ..Default::default() }, None, t0()).await,
            Err(AccountError::Invalid(e)) if e.field == "q"
        ));
    }
}

#[tokio::test]
async fn the_console_shows_codes_and_compliance_and_admins_revoke_reset_and_change_roles() {
    let hasher = PasswordHasher::new(2).unwrap();
    let key = SecretKey::generate();
    let codes = BackupCodeHasher::new(hasher.clone(), &key);
    let source = Source::default();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (owner, _) = owner_with_mfa(&test_db, &hasher, &key).await;
        let admin = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "admin@acme.test",
            Role::Admin,
        )
        .await;
        let member = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "member@acme.test",
            Role::Member,
        )
        .await;
        backup_codes::generate(
            &Command::new(db, &authz, &owner, &source, t0()),
            &codes,
            &OrgPolicy::default().code_policy(),
        )
        .await
        .unwrap();
        // Under "Required": the owner (MFA and codes) complies; nobody else has MFA.
        org_policy::save(
            &Command::new(db, &authz, &owner, &source, t0()),
            0,
            &OrgPolicy {
                codes: CodesMode::Required,
                ..OrgPolicy::default()
            },
        )
        .await
        .unwrap();
        let page = members::page(db, &authz, &admin, members::Filter::default(), None, t0())
            .await
            .unwrap();
        let row = |email: &str| {
            page.rows
                .iter()
                .find(|r| r.member.email == email)
                .unwrap()
                .clone()
        };
        let owner_row = row("owner@acme.test");
        assert_eq!(owner_row.codes_remaining, Some(10));
        assert_eq!(owner_row.set_generated_at, Some(t0()));
        assert!(owner_row.compliant);
        // An admin manages members, not owners, and not themselves.
        assert!(!owner_row.manageable && !owner_row.removable);
        assert!(row("member@acme.test").manageable);
        assert!(!row("admin@acme.test").manageable);

        // Only owners act on owners; the owner's codes stay.
        assert!(matches!(
            members::revoke_codes(&Command::new(db, &authz, &admin, &source, t0()), owner.id).await,
            Err(AccountError::NotAllowed)
        ));
        let second_admin = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "admin2@acme.test",
            Role::Admin,
        )
        .await;
        members::revoke_codes(&Command::new(db, &authz, &owner, &source, t0()), owner.id)
            .await
            .expect_err("nobody acts on themselves here");
        members::revoke_codes(
            &Command::new(db, &authz, &second_admin, &source, t0()),
            member.id,
        )
        .await
        .unwrap();
        assert_eq!(
            audit::latest(db, owner.org_id, 1).await.unwrap()[0].action,
            "backup_codes.revoked"
        );

        // Resetting the owner's MFA (by another owner) ends their codes and asks for set-up.
        let co_owner = add_member(
            &test_db,
            &hasher,
            owner.org_id,
            "owner2@acme.test",
            Role::Owner,
        )
        .await;
        members::reset_mfa(
            &Command::new(db, &authz, &co_owner, &source, t0()),
            owner.id,
        )
        .await
        .unwrap();
        let reset = accounts::member(db, owner.id).await.unwrap().unwrap();
        assert!(!reset.mfa_enabled && reset.mfa_setup_required);
        let page = members::page(
            db,
            &authz,
            &co_owner,
            members::Filter {
                search: "owner@",
                ..Default::default()
            },
            None,
            t0(),
        )
        .await
        .unwrap();
        assert_eq!(page.rows[0].codes_remaining, None);
        let enrolment = mfa::begin_enrolment(db, &key, owner.id).await.unwrap();
        let code = mfa::code_at(&enrolment.setup_key, t0()).unwrap();
        mfa::confirm_enrolment(
            db,
            &key,
            owner.id,
            &code,
            &domain::audit::Source::default(),
            t0(),
        )
        .await
        .unwrap();
        assert!(
            !accounts::member(db, owner.id)
                .await
                .unwrap()
                .unwrap()
                .mfa_setup_required
        );

        // Roles: admins cannot make admins; owners can; another org's member is no member.
        assert!(matches!(
            members::change_role(
                &Command::new(db, &authz, &admin, &source, t0()),
                member.id,
                Role::Admin
            )
            .await,
            Err(AccountError::NotAllowed)
        ));
        let promoted = members::change_role(
            &Command::new(db, &authz, &owner, &source, t0()),
            member.id,
            Role::Admin,
        )
        .await
        .unwrap();
        assert_eq!(promoted.role, Role::Admin);
        let event = audit::latest(db, owner.org_id, 1).await.unwrap().remove(0);
        assert_eq!(event.details["before"], "member");
        assert_eq!(event.details["after"], "admin");
        let (_, stranger) = accounts::create_organization(
            db,
            &hasher,
            "Globex",
            "owner@globex.test",
            &Password::new("correct horse battery"),
            t0(),
        )
        .await
        .unwrap();
        assert!(matches!(
            members::reset_mfa(
                &Command::new(db, &authz, &stranger, &source, t0()),
                member.id
            )
            .await,
            Err(AccountError::UnknownMember)
        ));
    }
}

/// Two owners removing each other at once, or demoting each other: one owner remains, and
/// the last owner can be neither removed nor demoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organization_always_keeps_an_owner() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let authz = Authz::load(db).await.unwrap();
        let (first, _) = owner_with_mfa(&test_db, &hasher, &SecretKey::generate()).await;
        let org = first.org_id;
        let second = add_member(&test_db, &hasher, org, "second@acme.test", Role::Owner).await;
        let source = Source::default();

        // At once, each removes the other: exactly one succeeds.
        let (by_first, by_second) = (
            Command::new(db, &authz, &first, &source, t0()),
            Command::new(db, &authz, &second, &source, t0()),
        );
        let (a, b) = tokio::join!(
            accounts::remove_member(&by_first, second.id),
            accounts::remove_member(&by_second, first.id),
        );
        let outcomes = [a.is_ok(), b.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "{:?}",
            test_db.backend
        );
        let refused = if a.is_ok() { b } else { a };
        assert!(
            matches!(refused, Err(AccountError::LastOwner)),
            "{refused:?}"
        );
        let owners = accounts::list_members(db, org)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .collect::<Vec<_>>();
        assert_eq!(owners.len(), 1);
        let last = owners[0].clone();

        // Demoting the last owner is refused too, by another owner who is gone: re-add one.
        let third = add_member(&test_db, &hasher, org, "third@acme.test", Role::Owner).await;
        let (by_last, by_third) = (
            Command::new(db, &authz, &last, &source, t0()),
            Command::new(db, &authz, &third, &source, t0()),
        );
        let (a, b) = tokio::join!(
            members::change_role(&by_last, third.id, Role::Admin),
            members::change_role(&by_third, last.id, Role::Admin),
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{:?}",
            test_db.backend
        );
        let owners = accounts::list_members(db, org)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(owners, 1);
    }
}
