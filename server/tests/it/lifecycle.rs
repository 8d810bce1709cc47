//! Start-up, health checks, configuration errors and shutdown of the real binary.

use domain::testing::fresh_databases;

use crate::support::process::{Server, run_to_exit};

#[tokio::test]
async fn a_fresh_database_is_migrated_at_start_up_and_reported_ready() {
    for database in fresh_databases().await {
        let server = Server::start(&database.url).await;

        let health = reqwest::get(server.url("/healthz")).await.unwrap();
        assert_eq!(health.status(), 200, "{:?}", database.backend);
        assert_eq!(health.text().await.unwrap(), "ok");

        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200, "{:?}", database.backend);
        assert_eq!(ready.text().await.unwrap(), "ready");

        let status = domain::db::schema_status(&database.db).await.unwrap();
        assert!(status.is_current(), "{:?}: {status:?}", database.backend);
    }
}

#[tokio::test]
async fn readyz_reports_a_database_that_went_away() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("lifeline.db");
    let server = Server::start(&format!("sqlite://{}", file.display())).await;
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        200
    );

    // Deleting the schema's bookkeeping behind the server's back makes the database
    // unusable for it; liveness stays up while readiness says why.
    let db = domain::db::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&db, "DROP TABLE seaql_migrations")
        .await
        .unwrap();

    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        reqwest::get(server.url("/healthz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn with_no_configuration_it_creates_the_sqlite_file_under_data() {
    // No DATABASE_URL: the embedded default, relative to the working folder.
    let server = Server::start_with(&[]).await;
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        200
    );
    let log = server.log().join("\n");
    assert!(log.contains("SQLite"), "{log}");
    assert!(server.workdir().join("data/lifeline.db").is_file());
    let (clean, _) = server.terminate().await;
    assert!(clean);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_code_zero() {
    for database in fresh_databases().await {
        let server = Server::start(&database.url).await;
        assert_eq!(
            reqwest::get(server.url("/healthz")).await.unwrap().status(),
            200
        );

        let (clean, log) = server.terminate().await;
        assert!(clean, "{:?}: {log:?}", database.backend);
        assert!(
            log.iter().any(|line| line.contains("received SIGTERM")),
            "{log:?}"
        );
        assert!(
            log.iter().any(|line| line.contains("shutting down")),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_naming_the_variable_without_a_panic() {
    for (variable, value) in [
        ("DATABASE_URL", "mysql://root@localhost/lifeline"),
        ("DATABASE_URL", "not a url"),
        ("LIFELINE_LISTEN_ADDR", "localhost:http"),
        ("LIFELINE_LOG", "lifeline=shout"),
        ("LIFELINE_LOG_FORMAT", "yaml"),
        ("LIFELINE_SECURE_COOKIES", "perhaps"),
    ] {
        let (success, stderr) = run_to_exit(&[(variable, value)]).await;
        assert!(!success, "{variable}={value} was accepted");
        assert!(
            stderr.starts_with(&format!("lifeline: {variable} ")),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_database_exits_non_zero_naming_the_variable() {
    let (success, stderr) =
        run_to_exit(&[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")]).await;
    assert!(!success);
    assert!(
        stderr.starts_with("lifeline: DATABASE_URL cannot connect"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/lifeline.db", folder.path().display());
    let server =
        Server::start_with(&[("DATABASE_URL", &url), ("LIFELINE_LOG_FORMAT", "json")]).await;
    let (clean, log) = server.terminate().await;
    assert!(clean);
    assert!(!log.is_empty());
    for line in &log {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {line}");
        });
        assert!(event.get("level").is_some(), "{line}");
    }
}
