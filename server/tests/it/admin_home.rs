//! The administration home through the real binary: what needs attention is listed with the
//! page where it is done, and a quiet organization is told nothing is waiting; members never
//! see it.

use chrono::Utc;
use domain::{
    notifications::{self, Message, Rendered},
    testing::fresh_databases,
};

use crate::support::{
    cli::{create_org, create_user},
    client::{client, sign_in},
    process::Server,
};

/// What the home page says for each thing that can need attention, and where it sends.
const ATTENTION: [(&str, &str); 2] = [
    (
        "1 member locked out after wrong attempts",
        "/admin/members?standing=locked",
    ),
    ("1 security message could not be delivered", "/admin/alerts"),
];

async fn home(server: &Server, session: &str) -> (reqwest::StatusCode, String) {
    let response = client()
        .get(server.url("/admin"))
        .header("cookie", format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_home_lists_what_needs_attention_and_links_to_where_it_is_done() {
    for database in fresh_databases().await {
        let backend = database.backend;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        create_user(&database.url, "acme", "member@acme.test", "member").await;
        create_user(&database.url, "acme", "locked@acme.test", "member").await;

        // Nothing yet.
        let server = Server::start(&database.url).await;
        let owner = sign_in(&client(), &server, "owner@acme.test").await;
        let (status, html) = home(&server, &owner).await;
        assert_eq!(status, 200, "{backend:?}: {html:.2000}");
        assert!(html.contains("Nothing is waiting for you."), "{backend:?}");
        for (text, _) in ATTENTION {
            assert!(!html.contains(text), "{backend:?}: {text}");
        }
        server.terminate().await;

        // A member locked after wrong attempts, and a notice that could not be delivered.
        let locked_id = 3;
        let now = Utc::now();
        database
            .execute(&format!(
                "INSERT INTO factor_attempt \
                 (user_id, factor, source, attempts, window_started_at, locked_until, lockouts) \
                 VALUES ({locked_id}, 'password', '', 5, '{}', '{}', 1)",
                now.to_rfc3339(),
                (now + chrono::Duration::minutes(15)).to_rfc3339(),
            ))
            .await;
        notifications::enqueue(
            &database.db,
            Message {
                org_id: 1,
                user_id: Some(locked_id),
                kind: "backup_codes.generated",
                recipient: "locked@acme.test",
                rendered: Rendered {
                    subject: "New backup codes".to_owned(),
                    text: "A new set was made.".to_owned(),
                    html: "<p>A new set was made.</p>".to_owned(),
                },
            },
            now,
        )
        .await
        .unwrap();
        database
            .execute(&format!(
                "UPDATE notification_outbox SET failed_at = '{}', attempts = 8, \
                 last_error = 'mailbox unavailable'",
                now.to_rfc3339()
            ))
            .await;

        let server = Server::start(&database.url).await;
        let owner = sign_in(&client(), &server, "owner@acme.test").await;
        let (status, html) = home(&server, &owner).await;
        assert_eq!(status, 200, "{backend:?}");
        assert!(!html.contains("Nothing is waiting for you."), "{backend:?}");
        for (text, href) in ATTENTION {
            let link = format!("<a href=\"{}\">{text}", href.replace('&', "&amp;"));
            assert!(
                html.contains(&link),
                "{backend:?}: no {link} in {html:.4000}"
            );
        }
        // The lock's count links to the locked member, and only them.
        assert!(html.contains("class=\"count-locked\">1<"), "{backend:?}");

        // A member gets a refusal, not the organization's figures.
        let member = sign_in(&client(), &server, "member@acme.test").await;
        let (status, html) = home(&server, &member).await;
        assert!(!status.is_server_error(), "{backend:?}: {status}");
        assert!(!html.contains("count-total"), "{backend:?}: {html:.2000}");
        assert!(!html.contains("Recent security events"), "{backend:?}");
        server.terminate().await;
    }
}
