//! The first run in the browser, through the real binary: a server started with no
//! organization prints a one-time `/setup?token=…` link; the page shows its form for that
//! token only; creating the organization signs its owner in and goes on to setting up MFA;
//! the same request 200 times at once makes one organization; afterwards, and on a server
//! started with an organization, the page and its server functions refuse, writing nothing.

use domain::testing::{TestDatabase, fresh_databases};
use reqwest::StatusCode;

use crate::support::{
    PASSWORD,
    client::{client, post, session_cookie, signed_in_email, succeeded},
    process::Server,
};

/// The link in the server's log, if it printed one within a few seconds (it comes just after
/// the line saying the server listens).
async fn setup_link(server: &Server) -> Option<String> {
    for _ in 0..50 {
        let link = server.log().iter().find_map(|line| {
            let start = line.find("http")?;
            let link = line[start..].split_whitespace().next()?;
            link.contains("/setup?token=").then(|| link.to_owned())
        });
        if link.is_some()
            || server
                .log()
                .iter()
                .any(|line| line.contains("no organization"))
        {
            return link;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

fn token_of(link: &str) -> String {
    link.split_once("token=").expect("a token").1.to_owned()
}

/// A form's fields, as (name, value).
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// What the form posts, with the token and `password` typed twice.
fn form<'a>(token: &'a str, name: &'a str, email: &'a str) -> Fields<'a> {
    vec![
        ("token", token),
        ("name", name),
        ("email", email),
        ("password", PASSWORD),
        ("confirm", PASSWORD),
    ]
}

async fn page(server: &Server, path: &str) -> (StatusCode, String) {
    let response = client().get(server.url(path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// (organizations, members, audit events) in `database`.
async fn written(database: &TestDatabase) -> (i64, i64, i64) {
    (
        database.count("organization").await,
        database.count("user_account").await,
        database.count("audit_event").await,
    )
}

#[tokio::test]
async fn the_printed_link_sets_up_the_installation_once_and_signs_the_owner_in() {
    for database in fresh_databases().await {
        let server = Server::start(&database.url).await;
        let link = setup_link(&server)
            .await
            .unwrap_or_else(|| panic!("no setup link in the log: {:?}", server.log()));
        assert!(link.starts_with(&server.base_url), "{link}");
        let token = token_of(&link);

        // The form, for the printed token only.
        let (status, html) = page(&server, &format!("/setup?token={token}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Create organization"), "{html}");
        for other in [
            "/setup",
            "/setup?token=x",
            &format!("/setup?token={token}x"),
        ] {
            let (status, html) = page(&server, other).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{other}");
            assert!(!html.contains("Create organization"), "{other}: {html}");
            assert!(
                html.contains("This setup link does not work"),
                "{other}: {html}"
            );
        }

        // Refusals write nothing and leave the link working: another token, and each field.
        let client = client();
        let mut differ = form(&token, "Acme", "owner@acme.test");
        differ[4] = ("confirm", "another password entirely");
        let refusals: [(&str, Fields<'_>, Option<&str>); 4] = [
            (
                "another token",
                form("not-the-token", "Acme", "owner@acme.test"),
                None,
            ),
            ("no name", form(&token, "", "owner@acme.test"), Some("name")),
            ("a bad email", form(&token, "Acme", "owner"), Some("email")),
            ("two passwords", differ, Some("confirm")),
        ];
        for (what, fields, field) in refusals {
            let response = post(&client, &server, "/api/setup/create", None, &fields).await;
            let status = response.status();
            let body = response.text().await.unwrap();
            assert!(status.is_client_error(), "{what}: {status} {body}");
            if let Some(field) = field {
                assert!(body.contains(&format!("\"{field}\"")), "{what}: {body}");
            } else {
                assert!(
                    body.contains("This setup link does not work"),
                    "{what}: {body}"
                );
            }
            assert_eq!(written(&database).await, (0, 0, 0), "{what}");
        }

        // The owner is created, signed in, and sent on to set up MFA.
        let response = post(
            &client,
            &server,
            "/api/setup/create",
            None,
            &form(&token, "Acme", "owner@acme.test"),
        )
        .await;
        assert!(succeeded(response.status()), "{}", response.status());
        let (session, _) = session_cookie(&response).expect("a signed-in session");
        assert_eq!(
            signed_in_email(&client, &server, &session).await.as_deref(),
            Some("owner@acme.test")
        );
        let (organizations, members, _) = written(&database).await;
        assert_eq!((organizations, members), (1, 1));
        assert_eq!(
            database
                .count("audit_event WHERE action = 'organization.created'")
                .await,
            1
        );

        // Used: the page and a second post refuse, and nothing more is written.
        let before = written(&database).await;
        let (_, html) = page(&server, &format!("/setup?token={token}")).await;
        assert!(html.contains("already set up"), "{html}");
        let again = post(
            &client,
            &server,
            "/api/setup/create",
            None,
            &form(&token, "Globex", "owner@globex.test"),
        )
        .await;
        assert!(again.status().is_client_error(), "{}", again.status());
        assert_eq!(written(&database).await, before);

        // The password was never logged.
        let (_, log) = server.terminate().await;
        assert!(!log.iter().any(|line| line.contains(PASSWORD)), "{log:?}");
    }
}

#[tokio::test]
async fn the_same_setup_sent_200_times_at_once_makes_one_organization() {
    for database in fresh_databases().await {
        let server = Server::start(&database.url).await;
        let token = token_of(&setup_link(&server).await.expect("a setup link"));
        let client = client();
        let fields: Vec<Vec<(String, String)>> = (0..200)
            .map(|i| {
                form(&token, "Acme", "owner@acme.test")
                    .into_iter()
                    .map(|(name, value)| {
                        let value = match name {
                            "name" => format!("Org {i}"),
                            "email" => format!("owner{i}@org.test"),
                            _ => value.to_owned(),
                        };
                        (name.to_owned(), value)
                    })
                    .collect()
            })
            .collect();
        let answers = futures::future::join_all(fields.iter().map(|fields| {
            let fields: Vec<(&str, &str)> = fields
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let client = client.clone();
            let server = &server;
            async move {
                post(&client, server, "/api/setup/create", None, &fields)
                    .await
                    .status()
            }
        }))
        .await;
        let created = answers.iter().filter(|status| succeeded(**status)).count();
        assert_eq!(created, 1, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|status| succeeded(*status) || status.is_client_error()),
            "{answers:?}"
        );
        assert_eq!(database.count("organization").await, 1);
        assert_eq!(database.count("user_account").await, 1);
    }
}

#[tokio::test]
async fn a_server_started_with_an_organization_prints_no_link_and_refuses_the_page() {
    for database in fresh_databases().await {
        let database = database.migrated().await;
        domain::accounts::create_organization(
            &database.db,
            &domain::hashing::PasswordHasher::new(1).unwrap(),
            "Acme",
            "owner@acme.test",
            &domain::secrets::Password::new(PASSWORD),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let server = Server::start(&database.url).await;
        assert_eq!(setup_link(&server).await, None, "{:?}", server.log());
        let (status, html) = page(&server, "/setup?token=anything").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(html.contains("already set up"), "{html}");
        let before = written(&database).await;
        let refused = post(
            &client(),
            &server,
            "/api/setup/create",
            None,
            &form("anything", "Globex", "owner@globex.test"),
        )
        .await;
        assert!(refused.status().is_client_error(), "{}", refused.status());
        assert_eq!(written(&database).await, before);
    }
}
