//! Server-side sessions in the application database, on whichever engine it runs, and what
//! keeps them from costing a write per request.
//!
//! The session store crate has one store per engine; this picks the one that matches the
//! pool SeaORM already holds, so sessions share the application's connections.
//!
//! A session is saved when a request changed it, or when its expiry is due to move
//! ([`keep_alive`]): the idle limit counts from the last request to within a minute, and a
//! burst of page loads costs one write, not one each. Requests that have no use for a
//! session (the site's files, the health checks: [`SessionFree`]) do not pass the session
//! layer at all.

use std::{path::Path, sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    Router,
    extract::{Request, State},
    middleware::{Next, from_fn_with_state},
    response::Response,
};
use domain::db::{Backend, DatabaseConnection};
use tower_sessions::{
    ExpiredDeletion, Session, SessionManagerLayer, SessionStore,
    session::{Id, Record},
    session_store,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The table (in PostgreSQL: in the `public` schema) that holds the sessions.
const TABLE: &str = "session";
/// When the session's expiry was last moved (Unix milliseconds), kept in the session.
const EXTENDED_AT: &str = "session.extended_at";
/// A session's expiry is moved at most this often (less under a short idle limit).
const EXTEND_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// `app` with sessions (the `sessions` layer, and [`keep_alive`] inside it) for every
/// request but those that are [`SessionFree`], which go to `app` as it is.
pub fn where_used(
    app: Router,
    sessions: SessionManagerLayer<DatabaseSessionStore>,
    extend_every: ExtendEvery,
    free: SessionFree,
) -> Router {
    let with_sessions = app
        .clone()
        .layer(from_fn_with_state(extend_every, keep_alive))
        .layer(sessions);
    Router::new().fallback_service(tower::service_fn(move |request: Request| {
        use tower::ServiceExt;
        let routed = if free.contains(request.uri().path()) {
            app.clone()
        } else {
            with_sessions.clone()
        };
        routed.oneshot(request)
    }))
}

/// How often a session in use has its expiry moved: every minute, or every quarter of the
/// idle limit when that is shorter, so that a session in use never lapses.
#[derive(Debug, Clone, Copy)]
pub struct ExtendEvery(Duration);

impl ExtendEvery {
    /// For sessions that end after `idle` without a request.
    pub fn for_idle_limit(idle: Duration) -> Self {
        Self(EXTEND_AT_MOST_EVERY.min(idle / 4))
    }
}

/// Session layer companion (inside it): marks the request's session for saving when it has
/// not been saved for [`ExtendEvery`], so that its expiry (and its cookie's) moves forward;
/// otherwise an unchanged session is left as it is, unwritten. A request without a session
/// cookie gets no session from this.
pub async fn keep_alive(
    State(every): State<ExtendEvery>,
    request: Request,
    next: Next,
) -> Response {
    let session = request.extensions().get::<Session>().cloned();
    let response = next.run(request).await;
    if let Some(session) = session {
        extend_when_due(&session, every).await;
    }
    response
}

async fn extend_when_due(session: &Session, ExtendEvery(every): ExtendEvery) {
    let now = now_millis();
    if session.is_modified() {
        // Saved anyway, with a new expiry: note when, at no extra cost. An emptied session
        // (signed out) stays empty, so that it is deleted, not saved.
        if !session.is_empty().await {
            let _ = session.insert(EXTENDED_AT, now).await;
        }
        return;
    }
    if session.id().is_none() {
        return;
    }
    // Loads the session when the handler did not (a read, never a write).
    let extended_at = match session.get::<i64>(EXTENDED_AT).await {
        Ok(extended_at) => extended_at,
        Err(error) => {
            tracing::warn!(%error, "reading the session to extend it");
            return;
        }
    };
    // Gone from the store (expired, or signed out meanwhile): nothing to extend.
    if session.id().is_none() {
        return;
    }
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
    if extended_at.is_none_or(|at| now.saturating_sub(at) >= every) {
        let _ = session.insert(EXTENDED_AT, now).await;
    }
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The requests that pass no session layer: the health checks, and the files the site
/// serves: its package directory (wasm, JS, CSS) and the files at the top of the site root
/// (the favicon). Other folders there keep the session layer, so that one named like a page
/// (`admin/`) cannot take the session from the pages.
#[derive(Debug, Clone)]
pub struct SessionFree {
    /// The health checks, and the files at the top of the site root.
    paths: Arc<[String]>,
    /// `/pkg/`: everything under it.
    package: Arc<str>,
}

impl SessionFree {
    /// For a site served from `site_root`, with its wasm, JS and CSS in `pkg_dir` there.
    pub fn for_site(site_root: &Path, pkg_dir: &str) -> Self {
        let mut paths = vec!["/healthz".to_owned(), "/readyz".to_owned()];
        let package = format!("/{}/", pkg_dir.trim_matches('/'));
        for entry in std::fs::read_dir(site_root).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_file())
                && let Ok(name) = entry.file_name().into_string()
            {
                paths.push(format!("/{name}"));
            }
        }
        Self {
            paths: paths.into(),
            package: package.into(),
        }
    }

    /// Whether a request for `path` goes without a session.
    pub fn contains(&self, path: &str) -> bool {
        path.starts_with(&*self.package) || self.paths.iter().any(|free| free == path)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_in_use_is_extended_every_minute_or_quarter_of_its_idle_limit() {
        let every = |idle| ExtendEvery::for_idle_limit(Duration::from_secs(idle)).0;
        assert_eq!(every(30 * 60), Duration::from_secs(60));
        assert_eq!(every(4 * 60), Duration::from_secs(60));
        assert_eq!(every(3), Duration::from_millis(750));
    }

    #[test]
    fn the_site_files_and_health_checks_go_without_a_session() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("pkg")).unwrap();
        std::fs::create_dir_all(root.path().join("admin")).unwrap();
        std::fs::write(root.path().join("favicon.svg"), "<svg/>").unwrap();
        let free = SessionFree::for_site(root.path(), "pkg");
        for path in ["/healthz", "/readyz", "/pkg/lifeline.wasm", "/favicon.svg"] {
            assert!(free.contains(path), "{path}");
        }
        for path in [
            "/",
            "/account",
            "/api/sign_in/email",
            "/admin/members",
            "/pkg",
        ] {
            assert!(!free.contains(path), "{path}");
        }
        // No site root (tests, a server without its site): the package path still is.
        let none = SessionFree::for_site(&root.path().join("missing"), "/pkg/");
        assert!(none.contains("/pkg/lifeline.css") && !none.contains("/favicon.svg"));
    }
}
