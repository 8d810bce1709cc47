//! Brute-force limits through the real binary: every request that checks a secret counts
//! against its client's address and against the account it tries; the client's address is
//! the peer's, or the one a trusted proxy names (and that address is in the audit log).
//!
//! `every_secret_check` reads the sources and fails when an endpoint that reaches argon2 is
//! missing from the throttle's list.

mod every_secret_check;

use domain::testing::{TestDatabase, fresh_databases};
use reqwest::{Client, Response, StatusCode, header};

use crate::support::{
    PASSWORD,
    cli::{create_org, create_user},
    client::{client, post, post_with_headers, session_cookie, sign_in},
    process::Server,
};

/// The email step, then the password step with `password` sent with `headers` (as a proxy
/// in front of the server would add them).
async fn password_attempt(
    client: &Client,
    server: &Server,
    email: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Response {
    let step1 = post(
        client,
        server,
        "/api/sign_in/email",
        None,
        &[("email", email)],
    )
    .await;
    let (session, _) = session_cookie(&step1).expect("a session after the email step");
    post_with_headers(
        client,
        server,
        "/api/sign_in/password",
        Some(&session),
        &[("password", password)],
        headers,
    )
    .await
}

/// `X-Forwarded-For: address`.
fn forwarded_for(address: &str) -> [(&'static str, &str); 1] {
    [("x-forwarded-for", address)]
}

/// Asserts a `429 Too Many Requests` with a `Retry-After` within the minute, and returns
/// its text.
async fn assert_throttled(response: Response) -> String {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    response.text().await.unwrap()
}

/// The source address of the latest event in Acme's audit log.
async fn latest_source_ip(database: &TestDatabase) -> Option<String> {
    let events = domain::audit::latest(&database.db, 1, 1).await.unwrap();
    events.into_iter().next().and_then(|event| event.source.ip)
}

#[tokio::test]
async fn confirming_the_password_again_is_throttled() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "4"),
        ])
        .await;
        let client = client();
        // The password step is the address's first attempt.
        let session = sign_in(&client, &server, "owner@acme.test").await;
        let confirm = || {
            post(
                &client,
                &server,
                "/api/account/confirm",
                Some(&session),
                &[("password", "not the password"), ("next", "/account")],
            )
        };
        for _ in 0..3 {
            let answered = confirm().await;
            assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        // One more may slip in if a slow machine took long enough for the bucket to refill.
        let mut last = confirm().await;
        if last.status() != StatusCode::TOO_MANY_REQUESTS {
            last = confirm().await;
        }
        let text = assert_throttled(last).await;
        assert!(text.contains("Too many attempts"), "{text}");
    }
}

#[tokio::test]
async fn a_trusted_proxys_client_address_is_throttled_and_audited() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LIFELINE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "2"),
        ])
        .await;
        let client = client();
        let attempt = |headers: &'static [(&'static str, &'static str)]| {
            password_attempt(&client, &server, "owner@acme.test", PASSWORD, headers)
        };

        // One client behind the proxy: its two attempts, then 429.
        for _ in 0..2 {
            let answered = attempt(&[("x-forwarded-for", "198.51.100.7")]).await;
            assert!(answered.status().is_success() || answered.status().is_redirection());
            assert_eq!(
                latest_source_ip(&database).await.as_deref(),
                Some("198.51.100.7"),
                "the audit log has the client's address, not the proxy's"
            );
        }
        let text = assert_throttled(attempt(&[("x-forwarded-for", "198.51.100.7")]).await).await;
        assert!(text.contains("from your network"), "{text}");

        // Another client of the same proxy is not held up; what a client claims left of the
        // address the proxy saw is not believed.
        let other = attempt(&[("x-forwarded-for", "198.51.100.7, 198.51.100.8")]).await;
        assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            latest_source_ip(&database).await.as_deref(),
            Some("198.51.100.8")
        );

        // RFC 7239 `Forwarded`, IPv6: one /64 is one bucket, the log keeps the full address.
        let first = attempt(&[("forwarded", "for=\"[2001:db8:1:2::1]:4711\";proto=http")]).await;
        assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            latest_source_ip(&database).await.as_deref(),
            Some("2001:db8:1:2::1")
        );
        let second = attempt(&[("forwarded", "for=\"[2001:db8:1:2::ffff]\"")]).await;
        assert_ne!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_throttled(attempt(&[("forwarded", "for=\"[2001:db8:1:2:abcd::9]\"")]).await).await;
        let next_network = attempt(&[("forwarded", "for=\"[2001:db8:1:3::1]\"")]).await;
        assert_ne!(next_network.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        // No proxy is trusted: the peer, 127.0.0.1, is every request's address.
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_MINUTE", "2"),
        ])
        .await;
        let client = client();
        let attempt = |headers: &'static [(&'static str, &'static str)]| {
            password_attempt(&client, &server, "owner@acme.test", PASSWORD, headers)
        };
        for headers in [
            &[("x-forwarded-for", "198.51.100.7")][..],
            &[("forwarded", "for=198.51.100.8")][..],
        ] {
            let answered = attempt(headers).await;
            assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                latest_source_ip(&database).await.as_deref(),
                Some("127.0.0.1"),
                "{headers:?}"
            );
        }
        // A new address in the header is no new bucket.
        assert_throttled(attempt(&[("x-forwarded-for", "198.51.100.9")]).await).await;
    }
}

#[tokio::test]
async fn one_account_gets_only_so_many_attempts_from_however_many_addresses() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LIFELINE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "3"),
        ])
        .await;
        let client = client();

        // The password step, counted by the email typed, each time from another address.
        for i in 1..=3 {
            let address = format!("198.51.100.{i}");
            let answered = password_attempt(
                &client,
                &server,
                "owner@acme.test",
                "not the password",
                &forwarded_for(&address),
            )
            .await;
            assert!(answered.status().is_client_error(), "{}", answered.status());
            assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        let throttled = password_attempt(
            &client,
            &server,
            "OWNER@acme.test",
            PASSWORD,
            &forwarded_for("198.51.100.4"),
        )
        .await;
        let text = assert_throttled(throttled).await;
        assert!(text.contains("at this account"), "{text}");
        // Another account from that address is not held up.
        let other = password_attempt(
            &client,
            &server,
            "member@acme.test",
            PASSWORD,
            &forwarded_for("198.51.100.4"),
        )
        .await;
        assert!(other.status().is_redirection() || other.status().is_success());

        // A signed-in member's password asked again, counted by the member.
        let session = sign_in(&client, &server, "member@acme.test").await;
        let confirm = |address: String| {
            let (client, server, session) = (&client, &server, &session);
            async move {
                post_with_headers(
                    client,
                    server,
                    "/api/account/confirm",
                    Some(session),
                    &[("password", PASSWORD), ("next", "/account")],
                    &forwarded_for(&address),
                )
                .await
            }
        };
        for i in 1..=3 {
            let answered = confirm(format!("203.0.113.{i}")).await;
            assert_ne!(answered.status(), StatusCode::TOO_MANY_REQUESTS);
        }
        assert_throttled(confirm("203.0.113.4".into()).await).await;
    }
}
