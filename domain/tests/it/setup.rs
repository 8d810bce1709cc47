//! The first run in the browser (`accounts::setup`): a one-time link that creates the first
//! organization and its owner, only while none exists, on every backend.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use domain::{
    accounts::{
        self, AccountError,
        setup::{self, FirstOrganization, SetupLink},
    },
    hashing::PasswordHasher,
    identity::Role,
    secrets::Password,
    testing::{TestDatabase, migrated_databases},
};

/// Requests that arrive at once in the concurrency tests.
const AT_ONCE: usize = 200;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
}

fn password() -> Password {
    Password::new("correct horse battery")
}

fn first<'a>(name: &'a str, email: &'a str, password: &'a Password) -> FirstOrganization<'a> {
    FirstOrganization {
        name,
        owner_email: email,
        password,
        confirm: password,
    }
}

/// (organizations, members, `organization.created` events) in the database.
async fn written(test_db: &TestDatabase) -> (i64, i64, i64) {
    (
        test_db.count("organization").await,
        test_db.count("user_account").await,
        test_db
            .count("audit_event WHERE action = 'organization.created'")
            .await,
    )
}

#[tokio::test]
async fn the_link_creates_the_first_organization_and_its_owner_once() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (link, token) = SetupLink::generate();
        assert_eq!(token.len(), 43, "32 random bytes in base64url");
        setup::check(db, &link, &token).await.unwrap();

        let pw = password();
        let (org, owner) = setup::set_up(
            db,
            &hasher,
            &link,
            &token,
            first(" Acme Corp. ", "Owner@Acme.Test", &pw),
            now(),
        )
        .await
        .unwrap();
        assert_eq!(
            (org.slug.as_str(), owner.email.as_str()),
            ("acme-corp", "owner@acme.test")
        );
        assert_eq!(owner.role, Role::Owner);
        assert!(!owner.mfa_enabled);
        assert_eq!(written(&test_db).await, (1, 1, 1), "{:?}", test_db.backend);

        // Used up, and the installation is set up: refused either way, nothing written.
        assert!(matches!(
            setup::check(db, &link, &token).await,
            Err(AccountError::AlreadySetUp)
        ));
        let again = setup::set_up(
            db,
            &hasher,
            &link,
            &token,
            first("Globex", "owner@globex.test", &pw),
            now(),
        )
        .await;
        assert!(
            matches!(again, Err(AccountError::AlreadySetUp)),
            "{again:?}"
        );
        assert_eq!(written(&test_db).await, (1, 1, 1), "{:?}", test_db.backend);
    }
}

#[tokio::test]
async fn a_wrong_or_absent_link_and_bad_input_write_nothing_and_keep_the_link() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (link, token) = SetupLink::generate();
        let pw = password();
        let other = Password::new("another horse battery");
        let short = Password::new("short");
        let tok = token.as_str();
        let refusals: [(&str, &str, FirstOrganization<'_>, Option<&str>); 7] = [
            (
                "another token",
                "x",
                first("Acme", "owner@acme.test", &pw),
                None,
            ),
            ("no token", "", first("Acme", "owner@acme.test", &pw), None),
            (
                "no name",
                tok,
                first("  ", "owner@acme.test", &pw),
                Some("name"),
            ),
            (
                "a bad email",
                tok,
                first("Acme", "not an email", &pw),
                Some("email"),
            ),
            (
                "a short password",
                tok,
                first("Acme", "owner@acme.test", &short),
                Some("password"),
            ),
            (
                "two passwords",
                tok,
                FirstOrganization {
                    confirm: &other,
                    ..first("Acme", "owner@acme.test", &pw)
                },
                Some("confirm"),
            ),
            (
                "a control character",
                tok,
                first("Ac\u{7}me", "owner@acme.test", &pw),
                Some("name"),
            ),
        ];
        for (what, presented, typed, field) in refusals {
            let refused = setup::set_up(db, &hasher, &link, presented, typed, now()).await;
            match (field, refused) {
                (None, Err(AccountError::SetupLinkInvalid)) => {}
                (Some(field), Err(AccountError::Invalid(error))) if error.field == field => {}
                (_, other) => panic!("{what}: {other:?} ({:?})", test_db.backend),
            }
            assert_eq!(
                written(&test_db).await,
                (0, 0, 0),
                "{what}: {:?}",
                test_db.backend
            );
        }
        // The link still works after all of that.
        setup::set_up(
            db,
            &hasher,
            &link,
            &token,
            first("Acme", "owner@acme.test", &pw),
            now(),
        )
        .await
        .unwrap();

        // A server started with an organization has no link at all.
        let none = SetupLink::none();
        let (_, unrelated) = SetupLink::generate();
        assert!(matches!(
            setup::check(db, &none, &unrelated).await,
            Err(AccountError::AlreadySetUp)
        ));
    }
}

#[tokio::test]
async fn an_organization_made_on_the_command_line_ends_the_link() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let db = &test_db.db;
        let (link, token) = SetupLink::generate();
        accounts::create_organization(db, &hasher, "Acme", "owner@acme.test", &password(), now())
            .await
            .unwrap();
        let pw = password();
        let refused = setup::set_up(
            db,
            &hasher,
            &link,
            &token,
            first("Globex", "owner@globex.test", &pw),
            now(),
        )
        .await;
        assert!(
            matches!(refused, Err(AccountError::AlreadySetUp)),
            "{refused:?}"
        );
        assert_eq!(written(&test_db).await, (1, 1, 1), "{:?}", test_db.backend);
    }
}

/// Sends [`AT_ONCE`] set-ups at once, the `i`-th with the link and token `link_for(i)` and an
/// organization and owner of its own; returns how many set the installation up. Any other
/// answer than a success or a refusal that `refused_as` accepts fails the test.
async fn at_once(
    test_db: &TestDatabase,
    hasher: &PasswordHasher,
    link_for: impl Fn(usize) -> (Arc<SetupLink>, String),
    refused_as: fn(&AccountError) -> bool,
) -> usize {
    let tasks: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let (db, hasher) = (test_db.db.clone(), hasher.clone());
            let (link, token) = link_for(i);
            tokio::spawn(async move {
                let pw = password();
                let (name, email) = (format!("Org {i}"), format!("owner{i}@org.test"));
                setup::set_up(
                    &db,
                    &hasher,
                    &link,
                    &token,
                    first(&name, &email, &pw),
                    now(),
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(refused) if refused_as(&refused) => {}
            Err(other) => panic!("{other:?} ({:?})", test_db.backend),
        }
    }
    created
}

/// The same link sent 200 times at once (one server, a double-click or a script): one
/// organization; the link, taken by one request, refuses the rest.
#[tokio::test]
async fn the_same_link_200_times_at_once_sets_up_one_organization() {
    let hasher = PasswordHasher::new(2).unwrap();
    for test_db in migrated_databases().await {
        let (link, token) = SetupLink::generate();
        let link = Arc::new(link);
        let created = at_once(
            &test_db,
            &hasher,
            |_| (link.clone(), token.clone()),
            |refused| {
                matches!(
                    refused,
                    AccountError::SetupLinkInvalid | AccountError::AlreadySetUp
                )
            },
        )
        .await;
        assert_eq!(created, 1, "{:?}", test_db.backend);
        assert_eq!(written(&test_db).await, (1, 1, 1), "{:?}", test_db.backend);
    }
}

/// 200 links at once, as from 200 instances on one database (each prints its own): the
/// database, not the link, keeps it to one organization. (Without the lock that
/// [`setup::set_up`] takes first, PostgreSQL made nine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_of_200_instances_at_once_set_up_one_organization() {
    // Many hashes at once, so that many set-ups reach the database together.
    let hasher = PasswordHasher::new(16).unwrap();
    for test_db in migrated_databases().await {
        let created = at_once(
            &test_db,
            &hasher,
            |_| {
                let (link, token) = SetupLink::generate();
                (Arc::new(link), token)
            },
            |refused| matches!(refused, AccountError::AlreadySetUp),
        )
        .await;
        assert_eq!(created, 1, "{:?}", test_db.backend);
        assert_eq!(written(&test_db).await, (1, 1, 1), "{:?}", test_db.backend);
    }
}
