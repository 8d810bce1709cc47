//! Sessions and throttling through the real binary: sign-out and an admin's MFA reset end
//! the member's other sessions, sessions end when idle and at their absolute lifetime, and
//! one address gets only so many attempts at a secret per minute.

use domain::testing::fresh_databases;
use reqwest::{StatusCode, header};

use crate::support::{
    PASSWORD,
    cli::{cli, create_org, create_user},
    client::{client, post, session_cookie, sign_in, signed_in_email},
    process::Server,
};

#[tokio::test]
async fn signing_out_or_an_mfa_reset_ends_every_other_session_of_the_member() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        let server = Server::start(&database.url).await;
        let client = client();

        // The member on two devices; signing out on one ends the other.
        let laptop = sign_in(&client, &server, "member@acme.test").await;
        let phone = sign_in(&client, &server, "member@acme.test").await;
        let email = |cookie: String| {
            let (client, server) = (&client, &server);
            async move { signed_in_email(client, server, &cookie).await }
        };
        assert_eq!(
            email(phone.clone()).await.as_deref(),
            Some("member@acme.test")
        );
        let signed_out = post(&client, &server, "/api/sign_out", Some(&laptop), &[]).await;
        assert!(signed_out.status().is_success() || signed_out.status().is_redirection());
        assert_eq!(email(laptop).await, None);
        assert_eq!(
            email(phone).await,
            None,
            "the other device is signed out too"
        );

        // An owner resets the member's MFA: the member's session ends, the owner's does not.
        let member = sign_in(&client, &server, "member@acme.test").await;
        let owner = sign_in(&client, &server, "owner@acme.test").await;
        let members: serde_json::Value = post(&client, &server, "/api/members", Some(&owner), &[])
            .await
            .json()
            .await
            .unwrap();
        let member_id = members["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["email"] == "member@acme.test")
            .unwrap()["id"]
            .to_string();
        let reset = post(
            &client,
            &server,
            "/api/members/reset_mfa",
            Some(&owner),
            &[("member_id", &member_id)],
        )
        .await;
        assert_eq!(
            reset.status(),
            StatusCode::OK,
            "{}",
            reset.text().await.unwrap()
        );
        assert_eq!(email(member).await, None);
        assert_eq!(email(owner).await.as_deref(), Some("owner@acme.test"));
    }
}

#[tokio::test]
async fn a_session_ends_when_idle_and_at_its_lifetime_however_active() {
    let database = fresh_databases().await.remove(0);
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let client = client();

    // Idle: three seconds without a request. Requests a second apart keep a session alive;
    // the one signed in first and left alone is over.
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SESSION_IDLE_SECONDS", "3"),
    ])
    .await;
    let idle = sign_in(&client, &server, "owner@acme.test").await;
    let active = sign_in(&client, &server, "owner@acme.test").await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(signed_in_email(&client, &server, &active).await.is_some());
    }
    assert_eq!(signed_in_email(&client, &server, &idle).await, None);
    drop(server);

    // Lifetime: four seconds after sign-in (counted in whole seconds), however active.
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SESSION_LIFETIME_SECONDS", "4"),
    ])
    .await;
    let signed_in_at = std::time::Instant::now();
    let session = sign_in(&client, &server, "owner@acme.test").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        signed_in_email(&client, &server, &session).await.is_some(),
        "alive within its lifetime"
    );
    // A request every second meanwhile; the outcome near the boundary is not asserted.
    while signed_in_at.elapsed() < std::time::Duration::from_millis(5200) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let _ = signed_in_email(&client, &server, &session).await;
    }
    assert_eq!(
        signed_in_email(&client, &server, &session).await,
        None,
        "over after its lifetime, active or not"
    );
}

#[tokio::test]
async fn one_address_gets_only_so_many_attempts_at_a_secret_per_minute() {
    let database = fresh_databases().await.remove(0);
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "3"),
    ])
    .await;
    let client = client();
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    let (session, _) = session_cookie(&step1).unwrap();
    let attempt = || {
        post(
            &client,
            &server,
            "/api/sign_in/password",
            Some(&session),
            &[("password", "not the password")],
        )
    };
    for _ in 0..3 {
        let refused = attempt().await;
        assert!(
            refused.status().is_client_error() && refused.status() != StatusCode::TOO_MANY_REQUESTS,
            "{}",
            refused.status()
        );
    }
    let throttled = attempt().await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    assert!(
        throttled
            .text()
            .await
            .unwrap()
            .contains("Too many attempts")
    );
    // Pages and other requests are not throttled.
    assert_eq!(
        client.get(server.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // The throttled attempt never reached the password check: three failures on record.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (ok, events, stderr) = cli(
        &database.url,
        &["audit", "export", "--org", "acme", "--format", "jsonl"],
        "",
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(events.matches("\"sign_in.failed\"").count(), 3);
}

#[tokio::test]
async fn administrator_changes_ask_for_the_password_again_after_the_window() {
    let database = fresh_databases().await.remove(0);
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "2"),
    ])
    .await;
    let client = client();
    let owner = sign_in(&client, &server, "owner@acme.test").await;
    let add = || {
        post(
            &client,
            &server,
            "/api/members/add",
            Some(&owner),
            &[
                ("email", "new@acme.test"),
                ("password", "another long password"),
                ("role", "member"),
            ],
        )
    };
    let members = || async {
        let page: serde_json::Value = post(&client, &server, "/api/members", Some(&owner), &[])
            .await
            .json()
            .await
            .unwrap();
        page["rows"].as_array().unwrap().len()
    };
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    // Past the window: refused, with a message that says what to do, and nothing added.
    let refused = add().await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = refused.text().await.unwrap();
    // The error the page turns into "confirm your password", with a link to do it.
    assert!(body.contains("ReauthenticationRequired"), "{body}");
    assert_eq!(
        members().await,
        1,
        "reading is still allowed; nothing was added"
    );

    // A wrong password does not open the window; the right one does, then back to `next`.
    let confirm = |password: &'static str, next: &'static str| {
        let (client, server, owner) = (&client, &server, &owner);
        async move {
            post(
                client,
                server,
                "/api/account/confirm",
                Some(owner),
                &[("password", password), ("next", next)],
            )
            .await
        }
    };
    assert_eq!(
        confirm("not it", "/admin/members").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(add().await.status(), StatusCode::FORBIDDEN);
    let confirmed = confirm(PASSWORD, "//evil.example/").await;
    assert!(confirmed.status().is_success() || confirmed.status().is_redirection());
    let location = confirmed
        .headers()
        .get(header::LOCATION)
        .or_else(|| confirmed.headers().get("serverfnredirect"))
        .map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(
        location.as_deref(),
        Some("/account"),
        "never to another site"
    );
    let added = add().await;
    assert_eq!(
        added.status(),
        StatusCode::OK,
        "{}",
        added.text().await.unwrap()
    );
    assert_eq!(members().await, 2);
}
