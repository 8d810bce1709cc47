//! Two `lifeline` processes on one PostgreSQL database, as behind a load balancer: a code
//! is spent once however the attempts are split, a policy change on one instance holds on
//! the other within the gate's bound (100 ms), a session made on one is valid on the other, and a lockout
//! reached on one holds on the other. Runs when `LIFELINE_TEST_POSTGRES_URL` is set (CI sets
//! it); SQLite is one process's file and has nothing to scale out to.

use domain::{
    accounts, audit::Source, authz::Authz, command::Command, members, secrets::SecretKey,
    testing::TestDatabase,
};
use reqwest::Client;

use crate::support::{
    PASSWORD,
    cli::create_user,
    client::{
        SecondFactor, client, password_step, policy_fields, save_policy, second_factor_step,
        sign_in, signed_in_email, succeeded,
    },
    organizations::owner_with_codes,
    process::Server,
};

/// Sends `code` as the backup code of the sign-in waiting in session `pending`; whether it
/// signed in.
async fn redeem(client: &Client, server: &Server, pending: &str, code: &str) -> bool {
    let response =
        second_factor_step(client, server, pending, SecondFactor::BackupCode(code)).await;
    succeeded(response.status())
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
    create_user(&database.url, "acme", "admin@acme.test", "admin").await;
    // Only an owner unlocks an owner.
    create_user(&database.url, "acme", "owner2@acme.test", "owner").await;
    // A wait queue for argon2 longer than the 100 concurrent redemptions below: this test is
    // about what two instances share, not what one turns away.
    let queue = [("LIFELINE_HASH_QUEUE", "1000")];
    let a = Server::start_with_key(&database.url, &key, &queue).await;
    let b = Server::start_with_key(&database.url, &key, &queue).await;
    let client = client();
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
    let pending = password_step(&client, &a, "owner@acme.test", PASSWORD).await;
    for wrong in 1..=5 {
        assert!(!redeem(&client, &a, &pending, &format!("0000 0000 000{wrong}")).await);
    }
    let pending = password_step(&client, &b, "owner@acme.test", PASSWORD).await;
    assert!(
        !redeem(&client, &b, &pending, &codes[1]).await,
        "locked on A, so refused on B, right code or not"
    );
    let other_owner = accounts::member(&database.db, 3).await.unwrap().unwrap();
    let authz = Authz::load(&database.db).await.unwrap();
    let source = Source::default();
    let by_other_owner = |now| Command::new(&database.db, &authz, &other_owner, &source, now);
    members::unlock(&by_other_owner(chrono::Utc::now()), owner.id)
        .await
        .unwrap();

    // 100 concurrent redemptions of one code, half on each instance: exactly one succeeds,
    // and the attempts limit, shared in the database, lets at most 5 through per window (the
    // success starts a new one), turning the rest away unevaluated on both instances.
    let refusals = |reason: &'static str| {
        let db = &database.db;
        async move {
            domain::audit::latest(db, owner.org_id, 100_000)
                .await
                .unwrap()
                .iter()
                .filter(|e| e.action == "backup_code.refused" && e.details["reason"] == reason)
                .count()
        }
    };
    let (used_before, locked_before) = (refusals("used").await, refusals("locked").await);
    let mut sessions = Vec::new();
    for i in 0..100 {
        let server = if i % 2 == 0 { &a } else { &b };
        sessions.push(password_step(&client, server, "owner@acme.test", PASSWORD).await);
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
    let evaluated = refusals("used").await - used_before;
    let turned_away = refusals("locked").await - locked_before;
    assert_eq!(
        evaluated + turned_away,
        99,
        "every other attempt refused, on the record"
    );
    assert!(
        evaluated < 2 * 5,
        "at most 5 evaluated per window across both instances: {evaluated}"
    );
    members::unlock(&by_other_owner(chrono::Utc::now()), owner.id)
        .await
        .unwrap();

    // An admin disallows codes on A; B's next redemption after the gate's bound is refused.
    let pending = password_step(&client, &b, "owner@acme.test", PASSWORD).await;
    let mut form = policy_fields(("backup_codes", "not_allowed"));
    form.push(("expected_version".into(), "0".into()));
    let saved = save_policy(&client, &a, admin_session.clone(), form).await;
    assert!(
        saved.status().is_success() || saved.status().is_redirection(),
        "{}",
        saved.text().await.unwrap()
    );
    // B trusts the revision it last read for `TRUSTED_FOR` (A's own next request would be
    // refused at once): past that, B's next decision is under the new policy.
    tokio::time::sleep(domain::authz::revision::TRUSTED_FOR).await;
    assert!(
        !redeem(&client, &b, &pending, &codes[2]).await,
        "the policy saved on A holds on B within TRUSTED_FOR"
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
