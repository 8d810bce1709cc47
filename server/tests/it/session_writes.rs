//! A session costs a database write when it changes or when its expiry is due to move, not
//! one per request: through the real binary, a crowd of page, asset and server-function
//! loads with a session cookie leaves the session table as it was, a session in use is
//! written about once per extension interval, and a real sign-in still works meanwhile.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use domain::{
    db::Backend,
    testing::{TestDatabase, fresh_databases},
};
use reqwest::{Client, header};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::{
    cli::create_org,
    client::{client, sign_in, signed_in_email},
    process::Server,
};

const CLIENTS: usize = 64;
const LOAD: Duration = Duration::from_secs(10);

/// What a browser fetches with its session cookie: pages, the site's files, a server
/// function that reads the session, and the health checks.
const LOADS: [(&str, &str); 7] = [
    ("GET", "/"),
    ("GET", "/account"),
    ("GET", "/pkg/lifeline.css"),
    ("GET", "/pkg/lifeline.js"),
    ("GET", "/favicon.svg"),
    ("POST", "/api/account"),
    ("GET", "/healthz"),
];

/// Every row of the session table (id and stored record, which holds the expiry), in order.
async fn session_rows(database: &TestDatabase) -> Vec<(String, Vec<u8>)> {
    let db = &database.db;
    db.query_all(Statement::from_string(
        db.get_database_backend(),
        "SELECT id, data FROM session ORDER BY id",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        (
            row.try_get::<String>("", "id").unwrap(),
            row.try_get::<Vec<u8>>("", "data").unwrap(),
        )
    })
    .collect()
}

/// A mark that moves whenever the session table is written. On SQLite, the file's `PRAGMA
/// data_version`, which moves on every commit by another connection (so on any write at
/// all). On PostgreSQL, the version of every row (`xmin`, `ctid`): an update, even to the
/// same values, makes a new row version, and inserts and deletes change the set; unlike
/// `pg_stat_user_tables`, it does not wait for the server's connections to report.
struct WriteMark {
    sqlite: Option<sea_orm::sqlx::SqliteConnection>,
}

impl WriteMark {
    async fn new(database: &TestDatabase) -> Self {
        use sea_orm::sqlx::Connection;
        let sqlite = match database.backend {
            // A connection of its own, held throughout: data_version is per connection.
            Backend::Sqlite => Some(
                sea_orm::sqlx::SqliteConnection::connect(&database.url)
                    .await
                    .unwrap(),
            ),
            Backend::Postgres => None,
        };
        Self { sqlite }
    }

    async fn read(&mut self, database: &TestDatabase) -> String {
        use sea_orm::sqlx::Row;
        match &mut self.sqlite {
            Some(connection) => {
                let version: i64 = sea_orm::sqlx::query("PRAGMA data_version")
                    .fetch_one(&mut *connection)
                    .await
                    .unwrap()
                    .get(0);
                format!("data_version {version}")
            }
            None => {
                let db = &database.db;
                let row = db
                    .query_one(Statement::from_string(
                        db.get_database_backend(),
                        "SELECT COALESCE(string_agg(id || ' ' || xmin::text || ' ' || \
                         ctid::text, ', ' ORDER BY id), '') AS versions FROM session",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                row.try_get::<String>("", "versions").unwrap()
            }
        }
    }
}

/// A site root with the files a page links to, so that the file handler serves them.
fn site_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("pkg")).unwrap();
    std::fs::write(root.path().join("pkg/lifeline.css"), "body { margin: 0 }").unwrap();
    std::fs::write(root.path().join("pkg/lifeline.js"), "export default 0;").unwrap();
    std::fs::write(root.path().join("favicon.svg"), "<svg/>").unwrap();
    root
}

/// Sends one of [`LOADS`] with the session `cookie`; its status.
async fn load(client: &Client, base_url: &str, which: usize, cookie: &str) -> u16 {
    let (method, path) = LOADS[which % LOADS.len()];
    let request = match method {
        "POST" => client
            .post(format!("{base_url}{path}"))
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        _ => client.get(format!("{base_url}{path}")),
    };
    let response = request
        .header(header::COOKIE, format!("lifeline_session={cookie}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // Read the body, as a browser would.
    let _ = response.bytes().await;
    status
}

#[tokio::test]
async fn a_crowd_of_requests_with_a_session_writes_nothing_to_the_session_table() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let site = site_root();
        let site_path = site.path().display().to_string();
        let server = Server::start_with(&[
            ("DATABASE_URL", &database.url),
            ("LEPTOS_SITE_ROOT", &site_path),
        ])
        .await;
        let client = client();
        let session = sign_in(&client, &server, "owner@acme.test").await;
        assert_eq!(load(&client, &server.base_url, 2, &session).await, 200);
        assert_eq!(load(&client, &server.base_url, 4, &session).await, 200);

        let mut mark = WriteMark::new(&database).await;
        let rows_before = session_rows(&database).await;
        let mark_before = mark.read(&database).await;

        // 64 clients, each with the session cookie, loading pages, files and a server
        // function that reads the session, for ten seconds.
        let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
        let started = Instant::now();
        let workers: Vec<_> = (0..CLIENTS)
            .map(|worker| {
                let (client, base_url, session, statuses) = (
                    client.clone(),
                    server.base_url.clone(),
                    session.clone(),
                    Arc::clone(&statuses),
                );
                tokio::spawn(async move {
                    let mut which = worker;
                    while started.elapsed() < LOAD {
                        let status = load(&client, &base_url, which, &session).await;
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                        which += 1;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let statuses = statuses.lock().unwrap().clone();
        let requests: usize = statuses.values().sum();

        let rows_after = session_rows(&database).await;
        let mark_after = mark.read(&database).await;
        eprintln!(
            "{:?}: {requests} requests in {:?} from {CLIENTS} clients, statuses {statuses:?}; \
             session table {mark_before:?} -> {mark_after:?}",
            database.backend,
            started.elapsed(),
        );
        assert!(statuses.keys().all(|status| *status < 500), "{statuses:?}");
        assert!(
            statuses.keys().all(|status| *status == 200),
            "every load answered: {statuses:?}"
        );
        // A real crowd: at least five loads per client. The suite's other tests share the
        // cores meanwhile (the isolation fixtures write hundreds of rows), so this is a floor
        // that shows the load happened, not a throughput target.
        assert!(requests > CLIENTS * 5, "{requests} requests");
        assert_eq!(
            rows_after, rows_before,
            "{:?}: no session was saved, created or deleted",
            database.backend
        );
        assert_eq!(
            mark_after, mark_before,
            "{:?}: the session table was not written",
            database.backend
        );

        // The session is still signed in, and a real sign-in still works (and is written:
        // the mark would have seen writes).
        assert_eq!(
            signed_in_email(&client, &server, &session).await.as_deref(),
            Some("owner@acme.test")
        );
        let other = sign_in(&client, &server, "owner@acme.test").await;
        assert_eq!(
            signed_in_email(&client, &server, &other).await.as_deref(),
            Some("owner@acme.test")
        );
        assert_ne!(session_rows(&database).await, rows_before);
        assert_ne!(mark.read(&database).await, mark_before);
    }
}

#[tokio::test]
async fn a_session_in_use_is_written_once_per_extension_and_outlives_its_idle_limit() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    // Idle limit 8 s: the expiry of a session in use moves every 2 s (a quarter of it).
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SESSION_IDLE_SECONDS", "8"),
    ])
    .await;
    let client = client();
    let session = sign_in(&client, &server, "owner@acme.test").await;
    let stored = || async {
        session_rows(&database)
            .await
            .into_iter()
            .find(|(id, _)| *id == session)
            .map(|(_, record)| record)
    };

    // A request every 250 ms for 12 s, past the idle limit: the session stays signed in,
    // and its row changes every couple of seconds, not at every request.
    let mut versions = vec![stored().await.unwrap()];
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(12) {
        assert_eq!(
            signed_in_email(&client, &server, &session).await.as_deref(),
            Some("owner@acme.test"),
            "alive after {:?}",
            started.elapsed()
        );
        requests += 1;
        let now = stored().await.unwrap();
        if versions.last() != Some(&now) {
            versions.push(now);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let writes = versions.len() - 1;
    eprintln!("{requests} requests in 12 s: the session was written {writes} times");
    assert!(
        (4..=7).contains(&writes),
        "{writes} writes for {requests} requests"
    );

    // Left alone past its idle limit, it is over.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(signed_in_email(&client, &server, &session).await, None);
}
