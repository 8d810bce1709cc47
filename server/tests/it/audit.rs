//! `lifeline audit verify` and `lifeline audit export`, through the real binary.

use domain::testing::fresh_databases;

use crate::accounts::{cli, create_org};

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
                    action: "test.event",
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
