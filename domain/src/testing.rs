//! Fresh databases for tests, one per test, so that tests run in parallel: a SQLite file in
//! a temporary folder always, and a new PostgreSQL database too when
//! `LIFELINE_TEST_POSTGRES_URL` is set. Dropping a [`TestDatabase`] removes it.
//!
//! Every test database comes with the fixed test key ([`TEST_SECRET_KEY`]) installed for
//! the audit log ([`crate::audit::keys::install`]), as a server installs its own at start-up;
//! a test that runs the `lifeline` binary gives it the same key, so that both sides link and
//! verify the same chains.
//!
//! Test support only (feature `testing`): it panics with a plain message instead of
//! returning errors, because a test that cannot get its database must fail loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

use sea_orm::{
    ConnectionTrait,
    sqlx::{Connection, Executor, PgConnection},
};

use crate::{
    db::{self, Backend, DatabaseConnection},
    secrets::SecretKey,
};

/// The secret key of every test (version 1; 64 hexadecimal digits). Never a real one.
pub const TEST_SECRET_KEY: &str =
    "7e57c0de7e57c0de7e57c0de7e57c0de7e57c0de7e57c0de7e57c0de7e57c0de";

/// [`TEST_SECRET_KEY`] as a key.
pub fn secret_key() -> SecretKey {
    SecretKey::from_hex(TEST_SECRET_KEY).expect("the test key is 64 hexadecimal digits")
}

/// Installs [`TEST_SECRET_KEY`] for the audit log, once per test process.
pub fn install_test_key() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| crate::audit::keys::install(secret_key()));
}

/// The variable that names the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VAR: &str = "LIFELINE_TEST_POSTGRES_URL";

/// One test's own database, removed when dropped.
pub struct TestDatabase {
    pub backend: Backend,
    /// The URL a server process can be started with.
    pub url: String,
    pub db: DatabaseConnection,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The temporary folder holding the SQLite file; removed with it.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// An empty SQLite database in a new temporary folder.
    pub async fn sqlite() -> Self {
        install_test_key();
        let folder = tempfile::tempdir().expect("create a temporary folder for SQLite");
        let url = format!("sqlite://{}/lifeline.db", folder.path().display());
        let db = db::connect(&url).await.expect("open the test SQLite file");
        Self {
            backend: Backend::Sqlite,
            url,
            db,
            cleanup: Cleanup::Sqlite(folder),
        }
    }

    /// An empty PostgreSQL database created for this test on the server at `admin_url`.
    pub async fn postgres(admin_url: &str) -> Self {
        install_test_key();
        let name = unique_database_name();
        let mut admin = PgConnection::connect(admin_url).await.unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL cannot be reached there: {e}")
        });
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database_name(admin_url, &name);
        let db = db::connect(&url)
            .await
            .expect("connect to the new test database");
        Self {
            backend: Backend::Postgres,
            url,
            db,
            cleanup: Cleanup::Postgres {
                admin_url: admin_url.to_owned(),
                name,
            },
        }
    }

    /// Applies every migration, as the server does at start-up.
    pub async fn migrated(self) -> Self {
        db::migrate(&self.db)
            .await
            .expect("migrate the test database");
        self
    }

    /// Runs raw SQL, for tests that inspect or tamper with what the application wrote.
    pub async fn execute(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// `SELECT COUNT(*) FROM <from_where>`: how many rows, e.g.
    /// `count("audit_event WHERE action = 'organization.created'")`.
    pub async fn count(&self, from_where: &str) -> i64 {
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {from_where}");
        self.db
            .query_one(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.clone(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: no row"))
            .try_get("", "n")
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// What a forger re-links after tampering with a chain ([`TestDatabase::forge_plain_links`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Plain SHA-256 links, each event keeping the key version it names.
    KeepKeyVersions,
    /// Plain SHA-256 links with the key versions cleared: the whole chain downgraded to the
    /// plain links of before the key.
    Downgrade,
}

impl TestDatabase {
    /// Does what someone who can write to the database, but does not hold the server's key,
    /// can do after changing events of `org_id`: recomputes the links from event `from_seq`
    /// on as plain SHA-256 ([`crate::audit::chain::Link::hash`], the only link they can
    /// compute), each following the one before, and moves the chain's head to the last event.
    pub async fn forge_plain_links(&self, org_id: i32, from_seq: i64, forgery: Forgery) {
        use chrono::{DateTime, Utc};
        use sea_orm::{QueryResult, Statement};

        let rows = self
            .db
            .query_all(Statement::from_string(
                self.db.get_database_backend(),
                format!(
                    "SELECT id, org_id, seq, at, actor_id, actor, action, target_id, target, \
                     outcome, source_ip, user_agent, details, hash FROM audit_event \
                     WHERE org_id = {org_id} ORDER BY seq"
                ),
            ))
            .await
            .expect("read the audit events");
        let text = |row: &QueryResult, column: &str| -> String {
            row.try_get("", column)
                .unwrap_or_else(|e| panic!("{column}: {e}"))
        };
        let optional = |row: &QueryResult, column: &str| -> Option<String> {
            row.try_get("", column)
                .unwrap_or_else(|e| panic!("{column}: {e}"))
        };
        let mut prev = crate::audit::GENESIS.to_owned();
        let mut last_seq = 0;
        for row in &rows {
            let seq: i64 = row.try_get("", "seq").expect("seq");
            last_seq = seq;
            if seq < from_seq {
                prev = text(row, "hash");
                continue;
            }
            let (actor, target) = (optional(row, "actor"), optional(row, "target"));
            let (source_ip, user_agent) = (optional(row, "source_ip"), optional(row, "user_agent"));
            let (action, outcome, details) = (
                text(row, "action"),
                text(row, "outcome"),
                text(row, "details"),
            );
            let at: DateTime<Utc> = row.try_get("", "at").expect("at");
            let hash = crate::audit::chain::Link {
                org_id,
                seq,
                at,
                actor_id: row.try_get("", "actor_id").expect("actor_id"),
                actor: actor.as_deref(),
                action: &action,
                target_id: row.try_get("", "target_id").expect("target_id"),
                target: target.as_deref(),
                outcome: &outcome,
                source_ip: source_ip.as_deref(),
                user_agent: user_agent.as_deref(),
                details: &details,
                prev_hash: &prev,
            }
            .hash();
            let id: i32 = row.try_get("", "id").expect("id");
            let versions = match forgery {
                Forgery::KeepKeyVersions => "",
                Forgery::Downgrade => ", key_version = NULL",
            };
            self.execute(&format!(
                "UPDATE audit_event SET prev_hash = '{prev}', hash = '{hash}'{versions} \
                 WHERE id = {id}"
            ))
            .await;
            prev = hash;
        }
        let versions = match forgery {
            Forgery::KeepKeyVersions => "",
            Forgery::Downgrade => ", key_version = NULL",
        };
        self.execute(&format!(
            "UPDATE audit_chain_head SET seq = {last_seq}, hash = '{prev}'{versions} \
             WHERE org_id = {org_id}"
        ))
        .await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return; // The TempDir removes the SQLite file.
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop cannot await, and may run inside a runtime: do the clean-up on a thread of
        // its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop a test database: {e}");
        }
    }
}

/// A fresh, empty database on every backend the test run covers: SQLite always,
/// PostgreSQL when [`POSTGRES_URL_VAR`] is set.
pub async fn fresh_databases() -> Vec<TestDatabase> {
    let mut databases = vec![TestDatabase::sqlite().await];
    if let Some(admin_url) = postgres_admin_url() {
        databases.push(TestDatabase::postgres(&admin_url).await);
    }
    databases
}

/// Like [`fresh_databases`], with every migration applied.
pub async fn migrated_databases() -> Vec<TestDatabase> {
    let mut databases = Vec::new();
    for database in fresh_databases().await {
        databases.push(database.migrated().await);
    }
    databases
}

/// The PostgreSQL server URL tests should use, if any.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

fn unique_database_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "lifeline_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `postgres://u@h:5432/test?x=y` with the database `name` in place of `test`.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn with_database_name_replaces_only_the_database() {
        assert_eq!(
            with_database_name("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database_name("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database_name("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
