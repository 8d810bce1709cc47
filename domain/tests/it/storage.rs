//! Opening databases and migrating them, on every backend.

use domain::{
    db::{self, Backend, ConnectError, DatabaseUrlError},
    testing::{TestDatabase, fresh_databases, migrated_databases},
};
use migrations::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn migrations_apply_on_an_empty_database_and_leave_nothing_pending() {
    for test_db in fresh_databases().await {
        let before = db::schema_status(&test_db.db).await.unwrap();
        assert_eq!(before.applied, 0, "{:?}", test_db.backend);
        assert!(before.pending > 0, "{:?}", test_db.backend);
        assert!(!before.is_current());

        db::migrate(&test_db.db).await.unwrap();

        let after = db::schema_status(&test_db.db).await.unwrap();
        assert_eq!(after.applied, Migrator::migrations().len());
        assert_eq!(after.pending, 0);
        assert!(after.is_current());
    }
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    for test_db in migrated_databases().await {
        db::migrate(&test_db.db).await.unwrap();
        let status = db::schema_status(&test_db.db).await.unwrap();
        assert_eq!(
            status.applied,
            Migrator::migrations().len(),
            "{:?}",
            test_db.backend
        );
        assert_eq!(status.pending, 0);
    }
}

#[tokio::test]
async fn every_migration_goes_down_and_up_again() {
    for test_db in migrated_databases().await {
        let total = Migrator::migrations().len();
        // One step at a time, so that each `down` is exercised on its own.
        for remaining in (0..total).rev() {
            Migrator::down(&test_db.db, Some(1)).await.unwrap();
            let status = db::schema_status(&test_db.db).await.unwrap();
            assert_eq!(status.applied, remaining, "{:?}", test_db.backend);
        }
        // With everything rolled back, the application's tables are gone.
        for table in ["organization", "user_account"] {
            let exists = test_db
                .db
                .query_one(sea_orm::Statement::from_string(
                    test_db.db.get_database_backend(),
                    exists_query(test_db.backend, table),
                ))
                .await
                .unwrap()
                .is_some();
            assert!(!exists, "{table} survived down on {:?}", test_db.backend);
        }
        db::migrate(&test_db.db).await.unwrap();
        assert!(db::schema_status(&test_db.db).await.unwrap().is_current());
    }
}

#[tokio::test]
async fn the_organization_slug_is_unique() {
    for test_db in migrated_databases().await {
        let insert = "INSERT INTO organization (name, slug, created_at) \
                      VALUES ('Acme', 'acme', CURRENT_TIMESTAMP)";
        test_db.execute(insert).await;
        let second = test_db.db.execute_unprepared(insert).await;
        assert!(
            second.is_err(),
            "duplicate slug accepted on {:?}",
            test_db.backend
        );
    }
}

#[tokio::test]
async fn sqlite_creates_the_missing_folder_and_file() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("nested/deeper/lifeline.db");
    let url = format!("sqlite://{}", file.display());

    let connection = db::connect(&url).await.unwrap();
    db::migrate(&connection).await.unwrap();

    assert!(file.exists());
}

#[tokio::test]
async fn connect_refuses_an_unsupported_url_before_trying() {
    let error = db::connect("mysql://root@localhost/lifeline")
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        ConnectError::Url(DatabaseUrlError::UnsupportedScheme(ref scheme)) if scheme == "mysql"
    ));
}

#[tokio::test]
async fn connect_reports_an_unreachable_postgres_server() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let error = db::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Connect(_)), "{error}");
}

#[tokio::test]
async fn a_test_database_is_removed_when_dropped() {
    let sqlite = TestDatabase::sqlite().await;
    let file = sqlite.url.trim_start_matches("sqlite://").to_owned();
    assert!(std::path::Path::new(&file).exists());
    drop(sqlite);
    assert!(!std::path::Path::new(&file).exists());
}

fn exists_query(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Sqlite => {
            format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
        }
        Backend::Postgres => format!(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    }
}
