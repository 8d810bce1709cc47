//! Organizations, members and password sign-in, on every backend.

use chrono::{TimeZone, Utc};
use domain::{
    accounts::{self, AccountError, NewMember},
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::{Email, Role},
    secrets::Password,
    testing::migrated_databases,
};
use sea_orm::ConnectionTrait;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn password() -> Password {
    Password::new("correct horse battery")
}

#[tokio::test]
async fn a_new_organization_has_its_owner_who_signs_in_with_the_password() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (org, owner) = accounts::create_organization(
            db,
            &hasher,
            " Acme Corp. ",
            " Owner@Acme.Test ",
            &password(),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(org.slug, "acme-corp");
        assert_eq!(org.name, "Acme Corp.");
        assert_eq!(owner.email, "owner@acme.test");
        assert_eq!(owner.role, Role::Owner);
        assert!(!owner.mfa_enabled);

        let email = Email::parse("OWNER@acme.test").unwrap();
        let signed_in = domain::sign_in::password(
            db,
            &hasher,
            &email,
            &password(),
            &domain::audit::Source::default(),
            now(),
        )
        .await
        .unwrap()
        .map(domain::sign_in::PasswordStep::into_member);
        assert_eq!(
            signed_in.map(|m| m.id),
            Some(owner.id),
            "{:?}",
            test_db.backend
        );

        let wrong = domain::sign_in::password(
            db,
            &hasher,
            &email,
            &Password::new("wrong password"),
            &domain::audit::Source::default(),
            now(),
        )
        .await
        .unwrap()
        .map(domain::sign_in::PasswordStep::into_member);
        assert!(wrong.is_none());
        let unknown = Email::parse("nobody@acme.test").unwrap();
        assert!(
            domain::sign_in::password(
                db,
                &hasher,
                &unknown,
                &password(),
                &domain::audit::Source::default(),
                now()
            )
            .await
            .unwrap()
            .map(domain::sign_in::PasswordStep::into_member)
            .is_none()
        );
        assert_eq!(
            accounts::organization_by_slug(db, "ACME-corp")
                .await
                .unwrap(),
            org
        );
    }
}

#[tokio::test]
async fn email_addresses_are_unique_ignoring_case_and_spaces() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (org, _) = accounts::create_organization(
            db,
            &hasher,
            "Acme",
            "owner@acme.test",
            &password(),
            now(),
        )
        .await
        .unwrap();
        let duplicate = accounts::create_member(
            db,
            &hasher,
            None,
            org.id,
            NewMember {
                email: "  OWNER@ACME.TEST",
                password: &password(),
                role: Role::Member,
            },
            now(),
        )
        .await
        .unwrap_err();
        match duplicate {
            AccountError::Invalid(error) => {
                assert_eq!(error.field, "email", "{:?}", test_db.backend);
                assert!(error.message.contains("already exists"));
            }
            other => panic!("{other:?} on {:?}", test_db.backend),
        }
        // The same address in another organization is refused too.
        let other = accounts::create_organization(
            db,
            &hasher,
            "Other",
            "Owner@acme.test",
            &password(),
            now(),
        )
        .await;
        assert!(other.is_err());
        // And the failed organization was not left behind without its owner.
        assert!(accounts::organization_by_slug(db, "other").await.is_err());
        assert_eq!(accounts::list_members(db, org.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_a_field_message_and_nothing_is_written() {
    let hasher = PasswordHasher::new(2).unwrap();
    let long = "x".repeat(10 * 1024);
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        for (name, email, pass, field) in [
            ("", "owner@acme.test", "correct horse battery", "name"),
            ("!!!", "owner@acme.test", "correct horse battery", "name"),
            (
                long.as_str(),
                "owner@acme.test",
                "correct horse battery",
                "name",
            ),
            ("Acme", "", "correct horse battery", "email"),
            ("Acme", "not-an-email", "correct horse battery", "email"),
            ("Acme", "a@b", "correct horse battery", "email"),
            ("Acme", "a b@acme.test", "correct horse battery", "email"),
            ("Acme", long.as_str(), "correct horse battery", "email"),
            ("Acme", "owner@acme.test", "", "password"),
            ("Acme", "owner@acme.test", "short", "password"),
            ("Acme", "owner@acme.test", long.as_str(), "password"),
        ] {
            let error = accounts::create_organization(
                db,
                &hasher,
                name,
                email,
                &Password::new(pass),
                now(),
            )
            .await
            .unwrap_err();
            match error {
                AccountError::Invalid(error) => {
                    assert_eq!(error.field, field, "{name:?} {email:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(accounts::organization_count(db).await.unwrap(), 0);
        let users = db
            .query_one(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM user_account",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(users.try_get::<i64>("", "n").unwrap(), 0);
    }
}

#[tokio::test]
async fn only_owners_manage_admins_and_nobody_removes_themselves() {
    let hasher = PasswordHasher::new(2).unwrap();
    let authz = Authz::baseline().await.unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (org, owner) = accounts::create_organization(
            db,
            &hasher,
            "Acme",
            "owner@acme.test",
            &password(),
            now(),
        )
        .await
        .unwrap();
        let admin = accounts::create_member(
            db,
            &hasher,
            Some(&Command::new(
                db,
                &authz,
                &owner,
                &domain::audit::Source::default(),
                now(),
            )),
            org.id,
            NewMember {
                email: "admin@acme.test",
                password: &password(),
                role: Role::Admin,
            },
            now(),
        )
        .await
        .unwrap();
        let member = accounts::create_member(
            db,
            &hasher,
            Some(&Command::new(
                db,
                &authz,
                &admin,
                &domain::audit::Source::default(),
                now(),
            )),
            org.id,
            NewMember {
                email: "m@acme.test",
                password: &password(),
                role: Role::Member,
            },
            now(),
        )
        .await
        .unwrap();
        let refused = accounts::create_member(
            db,
            &hasher,
            Some(&Command::new(
                db,
                &authz,
                &admin,
                &domain::audit::Source::default(),
                now(),
            )),
            org.id,
            NewMember {
                email: "a2@acme.test",
                password: &password(),
                role: Role::Admin,
            },
            now(),
        )
        .await;
        assert!(matches!(refused, Err(AccountError::NotAllowed)));
        assert!(matches!(
            accounts::remove_member(
                &Command::new(db, &authz, &admin, &domain::audit::Source::default(), now()),
                owner.id,
            )
            .await,
            Err(AccountError::NotAllowed)
        ));
        assert!(matches!(
            accounts::remove_member(
                &Command::new(db, &authz, &owner, &domain::audit::Source::default(), now()),
                owner.id,
            )
            .await,
            Err(AccountError::NotAllowed)
        ));
        assert!(matches!(
            accounts::remove_member(
                &Command::new(
                    db,
                    &authz,
                    &member,
                    &domain::audit::Source::default(),
                    now()
                ),
                admin.id,
            )
            .await,
            Err(AccountError::NotAllowed)
        ));

        // Another organization's admin sees no such member.
        let (other_org, other_owner) =
            accounts::create_organization(db, &hasher, "Other", "o@other.test", &password(), now())
                .await
                .unwrap();
        assert!(matches!(
            accounts::remove_member(
                &Command::new(
                    db,
                    &authz,
                    &other_owner,
                    &domain::audit::Source::default(),
                    now()
                ),
                member.id,
            )
            .await,
            Err(AccountError::UnknownMember)
        ));
        assert!(matches!(
            accounts::create_member(
                db,
                &hasher,
                Some(&Command::new(
                    db,
                    &authz,
                    &other_owner,
                    &domain::audit::Source::default(),
                    now()
                )),
                org.id,
                NewMember {
                    email: "x@acme.test",
                    password: &password(),
                    role: Role::Member
                },
                now(),
            )
            .await,
            Err(AccountError::NotAllowed)
        ));
        assert_ne!(other_org.id, org.id);

        accounts::remove_member(
            &Command::new(db, &authz, &admin, &domain::audit::Source::default(), now()),
            member.id,
        )
        .await
        .unwrap();
        let left: Vec<_> = accounts::list_members(db, org.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.email)
            .collect();
        assert_eq!(
            left,
            ["owner@acme.test", "admin@acme.test"],
            "{:?}",
            test_db.backend
        );
    }
}
