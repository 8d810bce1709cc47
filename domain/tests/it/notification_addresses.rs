//! A member's second notification address on every backend: it gets notices only once the
//! link sent to it is followed (once, within 24 hours); adding, confirming and removing it
//! tell the member; and the day's additions hold at three when 200 arrive at once.

use std::sync::Arc;

use chrono::Duration;
use domain::{
    audit::Source,
    authz::Authz,
    command::Command,
    hashing::PasswordHasher,
    identity::Member,
    notification_addresses::{self, ADDS_PER_DAY, AddressError, VERIFY_PATH},
    testing::{TestDatabase, migrated_databases},
};
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::fixtures::{owner, t0};

/// The outbox's rows to `recipient`: (kind, subject, text).
async fn mail_to(test_db: &TestDatabase, recipient: &str) -> Vec<(String, String, String)> {
    let backend = test_db.db.get_database_backend();
    let placeholder = if backend == sea_orm::DatabaseBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    test_db
        .db
        .query_all(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT kind, subject, body_text FROM notification_outbox \
                 WHERE recipient = {placeholder} ORDER BY id"
            ),
            [Value::from(recipient)],
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get("", "kind").unwrap(),
                row.try_get("", "subject").unwrap(),
                row.try_get("", "body_text").unwrap(),
            )
        })
        .collect()
}

/// The token of the last confirmation link sent to `address`.
async fn token_sent_to(test_db: &TestDatabase, address: &str) -> String {
    let (_, _, text) = mail_to(test_db, address)
        .await
        .pop()
        .expect("a confirmation message");
    let link = text
        .lines()
        .find_map(|line| line.strip_prefix("Confirm within 24 hours: "))
        .unwrap_or_else(|| panic!("no link in {text}"));
    assert!(link.contains(VERIFY_PATH), "{link}");
    link.split_once("token=").unwrap().1.trim().to_owned()
}

async fn member(test_db: &TestDatabase) -> (Member, Authz) {
    let owner = owner(test_db, &PasswordHasher::new(2).unwrap()).await;
    (owner, Authz::load(&test_db.db).await.unwrap())
}

#[tokio::test]
async fn a_second_address_gets_notices_only_once_confirmed() {
    for test_db in migrated_databases().await {
        let (owner, authz) = member(&test_db).await;
        let source = Source::default();
        let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());

        // Its own sign-in address, or no address at all, is refused next to the field.
        for bad in ["owner@acme.test", "not an address"] {
            match notification_addresses::add(&cmd, bad).await {
                Err(AddressError::Invalid(field)) => assert_eq!(field.field, "email"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        notification_addresses::add(&cmd, "Pager@Example.test")
            .await
            .unwrap();
        let shown = notification_addresses::second_address(&test_db.db, &owner)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (shown.email.as_str(), shown.verified),
            ("pager@example.test", false)
        );
        // The member hears of it at the sign-in address; the new one gets only the link.
        let told = mail_to(&test_db, "owner@acme.test").await;
        assert!(
            told.iter()
                .any(|(kind, _, _)| kind == "notification_address.added"),
            "{told:?}"
        );
        let token = token_sent_to(&test_db, "pager@example.test").await;
        assert_eq!(mail_to(&test_db, "pager@example.test").await.len(), 1);

        // A wrong token, and a link past 24 hours, confirm nothing.
        for (bad, at) in [
            ("nonsense", t0()),
            (token.as_str(), t0() + Duration::hours(24)),
        ] {
            assert!(
                notification_addresses::verify(&test_db.db, bad, &source, at)
                    .await
                    .is_err()
            );
        }
        let confirmed =
            notification_addresses::verify(&test_db.db, &token, &source, t0() + Duration::hours(1))
                .await
                .unwrap();
        assert!(confirmed.verified);
        // Used once: a second follow is refused.
        assert!(matches!(
            notification_addresses::verify(&test_db.db, &token, &source, t0() + Duration::hours(2))
                .await,
            Err(AddressError::UnknownLink)
        ));
        // The confirmation itself reaches both addresses, each with a link.
        for address in ["owner@acme.test", "pager@example.test"] {
            let mail = mail_to(&test_db, address).await;
            let (_, _, text) = mail
                .iter()
                .find(|(kind, _, _)| kind == "notification_address.verified")
                .unwrap_or_else(|| panic!("{address}: {mail:?}"));
            assert!(text.contains("This wasn't me: "), "{text}");
        }

        // Removed: the sign-in address hears of it, and the second one gets nothing more.
        let later = Command::new(
            &test_db.db,
            &authz,
            &owner,
            &source,
            t0() + Duration::hours(3),
        );
        let before = mail_to(&test_db, "pager@example.test").await.len();
        notification_addresses::remove(&later).await.unwrap();
        assert!(
            notification_addresses::second_address(&test_db.db, &owner)
                .await
                .unwrap()
                .is_none()
        );
        // Removing again finds nothing to remove, and says nothing.
        notification_addresses::remove(&later).await.unwrap();
        let removals = mail_to(&test_db, "owner@acme.test")
            .await
            .into_iter()
            .filter(|(kind, _, _)| kind == "notification_address.removed")
            .count();
        assert_eq!(removals, 1);
        assert_eq!(mail_to(&test_db, "pager@example.test").await.len(), before);
    }
}

#[tokio::test]
async fn two_hundred_additions_at_once_add_three() {
    for test_db in migrated_databases().await {
        let (owner, authz) = member(&test_db).await;
        let test_db = Arc::new(test_db);
        let owner = Arc::new(owner);
        let authz = Arc::new(authz);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let (test_db, owner, authz) = (test_db.clone(), owner.clone(), authz.clone());
                tokio::spawn(async move {
                    let source = Source::default();
                    let cmd = Command::new(&test_db.db, &authz, &owner, &source, t0());
                    notification_addresses::add(&cmd, &format!("pager{i}@example.test")).await
                })
            })
            .collect();
        let mut added = 0u64;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => added += 1,
                Err(AddressError::Invalid(field)) => {
                    assert_eq!(field.field, "email");
                    assert!(field.message.contains("24 hours"), "{}", field.message);
                }
                Err(other) => panic!("{:?}: {other:?}", test_db.backend),
            }
        }
        assert_eq!(added, ADDS_PER_DAY, "{:?}", test_db.backend);
        let backend = test_db.db.get_database_backend();
        let count = |sql: &'static str| {
            let test_db = test_db.clone();
            async move {
                let row = test_db
                    .db
                    .query_one(Statement::from_string(backend, sql))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<i64>("", "n").unwrap()
            }
        };
        assert_eq!(
            count(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM audit_event \
                 WHERE action = 'notification_address.added'"
            )
            .await,
            3
        );
        assert_eq!(
            count(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM notification_outbox \
                 WHERE kind = 'notification_address.verify'"
            )
            .await,
            3
        );
        assert_eq!(
            count("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM notification_address").await,
            1
        );
    }
}
