//! Server-side sessions in the application database, on whichever engine it runs.
//!
//! The session store crate has one store per engine; this picks the one that matches the
//! pool SeaORM already holds, so sessions share the application's connections.

use async_trait::async_trait;
use domain::db::{Backend, DatabaseConnection};
use tower_sessions::{
    ExpiredDeletion, SessionStore,
    session::{Id, Record},
    session_store,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The table (in PostgreSQL: in the `public` schema) that holds the sessions.
const TABLE: &str = "session";

/// The session store for the application database.
#[derive(Debug, Clone)]
pub enum DatabaseSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DatabaseSessionStore {
    /// A store on `db`'s pool, with its table created if missing.
    pub async fn new(db: &DatabaseConnection) -> Result<Self, String> {
        let store = match Backend::of(db) {
            Backend::Sqlite => Self::Sqlite(
                SqliteStore::new(db.get_sqlite_connection_pool().clone()).with_table_name(TABLE)?,
            ),
            Backend::Postgres => Self::Postgres(
                PostgresStore::new(db.get_postgres_connection_pool().clone())
                    .with_schema_name("public")?
                    .with_table_name(TABLE)?,
            ),
        };
        match &store {
            Self::Sqlite(store) => store.migrate().await,
            Self::Postgres(store) => store.migrate().await,
        }
        .map_err(|e| format!("cannot create the session table: {e}"))?;
        Ok(store)
    }

    /// Deletes expired sessions every `period`, for as long as the server runs.
    pub fn spawn_expired_deletion(&self, period: std::time::Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let outcome = match store {
                Self::Sqlite(store) => store.continuously_delete_expired(period).await,
                Self::Postgres(store) => store.continuously_delete_expired(period).await,
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "expired-session clean-up stopped");
            }
        });
    }
}

#[async_trait]
impl SessionStore for DatabaseSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.create(record).await,
            Self::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.save(record).await,
            Self::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(store) => store.load(id).await,
            Self::Postgres(store) => store.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete(id).await,
            Self::Postgres(store) => store.delete(id).await,
        }
    }
}
