//! Two `lifeline` processes on one PostgreSQL database, as behind a load balancer: a code
//! is spent once however the attempts are split, a policy change on one instance holds on
//! the other at the next request, a session made on one is valid on the other, and a lockout
//! reached on one holds on the other. Runs when `LIFELINE_TEST_POSTGRES_URL` is set (CI sets
//! it); SQLite is one process's file and has nothing to scale out to.

use domain::{
    accounts, audit::Source, authz::Authz, lockout, members, secrets::SecretKey,
    testing::TestDatabase,
};
use reqwest::Client;

use crate::{
    accounts::{cli, post, sign_in, signed_in_email},
    backup_codes::{owner_with_codes, password_step, start_with},
    harness::Server,
    policy::{fields, save_policy},
};

async fn add_user(database_url: &str, email: &str, role: &str) {
    let (ok, _, stderr) = cli(
        database_url,
        &[
            "create-user",
            "--org",
            "acme",
            "--email",
            email,
            "--role",
            role,
        ],
        &format!("{}\n", crate::accounts::PASSWORD),
    )
    .await;
    assert!(ok, "{stderr}");
}

/// Sends `code` as the backup code of the sign-in waiting in session `pending`.
async fn redeem(client: &Client, server: &Server, pending: &str, code: &str) -> bool {
    let response = post(
        client,
        server,
        "/api/sign_in/backup_code",
        Some(pending),
        &[("code", code)],
    )
    .await;
    response.status().is_success() || response.status().is_redirection()
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_act_as_one() {
    let Some(admin_url) = domain::testing::postgres_admin_url() else {
        eprintln!("LIFELINE_TEST_POSTGRES_URL is not set: the two-instance test needs PostgreSQL");
        return;
    };
    let database = TestDatabase::postgres(&admin_url).await;
    let key = SecretKey::generate();
    let codes = owner_with_codes(&database, &key).await;
    add_user(&database.url, "admin@acme.test", "admin").await;
    // Only an owner unlocks an owner.
    add_user(&database.url, "owner2@acme.test", "owner").await;
    let (a, client) = start_with(&database, &key, &[]).await;
    let (b, _) = start_with(&database, &key, &[]).await;
    let owner = accounts::member(&database.db, 1).await.unwrap().unwrap();

    // A session made on A is valid on B.
    let admin_session = sign_in(&client, &a, "admin@acme.test").await;
    assert_eq!(
        signed_in_email(&client, &b, &admin_session)
            .await
            .as_deref(),
        Some("admin@acme.test")
    );

    // A lockout reached on A holds on B: five wrong codes on A, then the right one on B.
    let pending = password_step(&client, &a).await;
    for wrong in 1..=5 {
        assert!(!redeem(&client, &a, &pending, &format!("0000 0000 000{wrong}")).await);
    }
    let pending = password_step(&client, &b).await;
    assert!(
        !redeem(&client, &b, &pending, &codes[1]).await,
        "locked on A, so refused on B, right code or not"
    );
    let other_owner = accounts::member(&database.db, 3).await.unwrap().unwrap();
    let authz = Authz::load(&database.db).await.unwrap();
    members::unlock(
        &database.db,
        &authz,
        &other_owner,
        owner.id,
        &Source::default(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();

    // 100 concurrent redemptions of one code, half on each instance: exactly one succeeds.
    let mut sessions = Vec::new();
    for i in 0..100 {
        let server = if i % 2 == 0 { &a } else { &b };
        sessions.push(password_step(&client, server).await);
    }
    let attempts = sessions.iter().enumerate().map(|(i, pending)| {
        let server = if i % 2 == 0 { &a } else { &b };
        redeem(&client, server, pending, &codes[0])
    });
    let successes = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|&ok| ok)
        .count();
    assert_eq!(successes, 1, "one code, one sign-in, across both instances");
    assert!(
        lockout::locked_until(
            &database.db,
            owner.id,
            lockout::Factor::BackupCode,
            chrono::Utc::now()
        )
        .await
        .unwrap()
        .is_some(),
        "the 99 refusals, counted by both instances in the database, locked the account"
    );
    members::unlock(
        &database.db,
        &authz,
        &other_owner,
        owner.id,
        &Source::default(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();

    // An admin disallows codes on A; the next redemption on B is refused.
    let pending = password_step(&client, &b).await;
    let mut form = fields(("backup_codes", "not_allowed"));
    form.push(("expected_version".into(), "0".into()));
    let saved = save_policy(&client, &a, admin_session.clone(), form).await;
    assert!(
        saved.status().is_success() || saved.status().is_redirection(),
        "{}",
        saved.text().await.unwrap()
    );
    assert!(
        !redeem(&client, &b, &pending, &codes[2]).await,
        "the policy saved on A holds on B at once"
    );
    let refused = audit_latest(&database, owner.org_id).await;
    assert_eq!(refused.action, "backup_code.refused");
    assert_eq!(refused.details["reason"], "not_allowed");
}

async fn audit_latest(database: &TestDatabase, org_id: i32) -> domain::audit::Recorded {
    domain::audit::latest(&database.db, org_id, 1)
        .await
        .unwrap()
        .remove(0)
}
