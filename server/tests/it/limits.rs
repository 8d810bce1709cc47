//! Brute-force limits sent as an attacker sends them, through the real binary: 200 requests
//! at once per factor evaluate exactly the organization's number of attempts (5), lock once,
//! and refuse a right secret that comes after them; a stranger's lock does not stop the
//! member's own browser (its device cookie); the operator unlocks from the command line; and
//! two instances on one PostgreSQL database share the limit.

use domain::{audit, secrets::SecretKey, testing::fresh_databases};
use reqwest::{Client, StatusCode, header};

use crate::support::{
    PASSWORD,
    cli::cli,
    client::{SecondFactor, client, password_step, second_factor_step, session_cookie, succeeded},
    organizations::owner_with_codes,
    process::Server,
};

/// Attempts the organization allows per window (the default policy).
const ALLOWED: usize = 5;
/// Requests in one burst.
const BURST: usize = 200;
const OWNER: &str = "owner@acme.test";
/// A wait queue for argon2 longer than a burst: these tests count the guesses the limit lets
/// through, not the requests the queue's bound turns away (that bound has tests of its own).
const QUEUE: &[(&str, &str)] = &[("LIFELINE_HASH_QUEUE", "1000")];

/// How many of the organization's events are `action`, with `reason` when given.
async fn events(db: &domain::db::DatabaseConnection, action: &str, reason: Option<&str>) -> usize {
    audit::latest(db, 1, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .filter(|e| reason.is_none_or(|r| e.details["reason"] == r))
        .count()
}

/// The email and password steps from a fresh session, as a new browser would; the
/// password step's status.
async fn password_from_a_fresh_session(
    client: &Client,
    base_url: &str,
    password: &str,
) -> StatusCode {
    let form = |field, value| vec![(field, value)];
    let step1 = client
        .post(format!("{base_url}/api/sign_in/email"))
        .header(header::ACCEPT, "application/json")
        .form(&form("email", OWNER))
        .send()
        .await
        .unwrap();
    let (id, _) = session_cookie(&step1).expect("a session after the email step");
    client
        .post(format!("{base_url}/api/sign_in/password"))
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, format!("lifeline_session={id}"))
        .form(&form("password", password))
        .send()
        .await
        .unwrap()
        .status()
}

/// The email and password steps (the right password) from the browser holding `device`,
/// the owner's device cookie; the password step's status.
async fn password_from_the_members_browser(
    client: &Client,
    server: &Server,
    device: &str,
) -> StatusCode {
    let step1 = client
        .post(server.url("/api/sign_in/email"))
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, device)
        .form(&[("email", OWNER)])
        .send()
        .await
        .unwrap();
    let (id, _) = session_cookie(&step1).unwrap();
    client
        .post(server.url("/api/sign_in/password"))
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, format!("lifeline_session={id}; {device}"))
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .status()
}

/// Sends `BURST` wrong passwords at once, from fresh sessions, spread over `servers`.
async fn password_burst(servers: &[&Server]) {
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let base_url = servers[i % servers.len()].base_url.clone();
        burst.spawn(async move {
            password_from_a_fresh_session(&client(), &base_url, "not the password").await
        });
    }
    while let Some(status) = burst.join_next().await {
        let status = status.unwrap();
        if !status.is_client_error() {
            // What the servers said about it: a failure here is otherwise hard to read.
            let errors: Vec<String> = servers
                .iter()
                .flat_map(|server| server.log())
                .filter(|line| line.contains("ERROR") || line.contains("WARN"))
                .collect();
            panic!("a wrong password answered {status}; the servers logged {errors:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_passwords_evaluates_exactly_the_allowed_number() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        owner_with_codes(&database, &key).await;
        let server = Server::start_with_key(&database.url, &key, QUEUE).await;
        password_burst(&[&server]).await;
        let backend = database.backend;
        let db = &database.db;
        assert_eq!(
            events(db, "sign_in.failed", Some("wrong")).await,
            ALLOWED,
            "{backend:?}"
        );
        assert_eq!(
            events(db, "sign_in.failed", Some("locked")).await,
            BURST - ALLOWED,
            "{backend:?}"
        );
        assert_eq!(events(db, "password.locked", None).await, 1, "{backend:?}");
        // The right password, after them, is refused like a wrong one.
        let right = password_from_a_fresh_session(&client(), &server.base_url, PASSWORD).await;
        assert!(right.is_client_error(), "{backend:?}: {right}");
    }
}

/// Sends `BURST` copies of `factor` at once on the one sign-in waiting in `pending`.
async fn second_factor_burst(server: &Server, pending: &str, factor: SecondFactor<'static>) {
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let (base_url, pending) = (server.base_url.clone(), pending.to_owned());
        burst.spawn(async move {
            let (path, code) = match factor {
                SecondFactor::AuthenticatorCode(code) => ("/api/sign_in/code", code),
                SecondFactor::BackupCode(code) => ("/api/sign_in/backup_code", code),
            };
            client()
                .post(format!("{base_url}{path}"))
                .header(header::ACCEPT, "application/json")
                .header(header::COOKIE, format!("lifeline_session={pending}"))
                .form(&[("code", code)])
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    while let Some(status) = burst.join_next().await {
        let status = status.unwrap();
        assert!(status.is_client_error(), "a wrong code answered {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_of_wrong_authenticator_and_backup_codes_on_one_step_evaluate_exactly_the_allowed_number()
 {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let server = Server::start_with_key(&database.url, &key, QUEUE).await;
        let backend = database.backend;
        let db = &database.db;
        let client = client();

        let pending = password_step(&client, &server, OWNER, PASSWORD).await;
        second_factor_burst(&server, &pending, SecondFactor::AuthenticatorCode("000000")).await;
        let totp_wrong = audit::latest(db, 1, 100_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "sign_in.failed" && e.details["method"] == "totp")
            .filter(|e| e.details["reason"] == "wrong")
            .count();
        assert_eq!(totp_wrong, ALLOWED, "{backend:?}");
        assert_eq!(events(db, "totp.locked", None).await, 1, "{backend:?}");

        let pending = password_step(&client, &server, OWNER, PASSWORD).await;
        second_factor_burst(
            &server,
            &pending,
            SecondFactor::BackupCode("0000 0000 0001"),
        )
        .await;
        assert_eq!(
            events(db, "backup_code.refused", Some("wrong")).await,
            ALLOWED,
            "{backend:?}"
        );
        assert_eq!(
            events(db, "backup_code.locked", None).await,
            1,
            "{backend:?}"
        );
        // A right code after the burst is refused, and spends nothing.
        let pending = password_step(&client, &server, OWNER, PASSWORD).await;
        let right = second_factor_step(
            &client,
            &server,
            &pending,
            SecondFactor::BackupCode(&codes[0]),
        )
        .await;
        assert!(
            !succeeded(right.status()),
            "{backend:?}: {}",
            right.status()
        );
        assert_eq!(
            events(db, "backup_code.redeemed", None).await,
            0,
            "{backend:?}"
        );
    }
}

/// The `lifeline_device` cookie a response sets, as a `Cookie` header value.
fn device_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("lifeline_device="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_strangers_lock_does_not_stop_the_members_browser_and_the_operator_unlocks() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let server = Server::start_with_key(&database.url, &key, QUEUE).await;
        let backend = database.backend;
        let client = client();

        // The owner signs in from their browser, which keeps the device cookie.
        let pending = password_step(&client, &server, OWNER, PASSWORD).await;
        let signed_in = second_factor_step(
            &client,
            &server,
            &pending,
            SecondFactor::BackupCode(&codes[0]),
        )
        .await;
        assert!(succeeded(signed_in.status()), "{backend:?}");
        let device = device_cookie(&signed_in).expect("a device cookie after signing in");
        assert!(!device.contains(&codes[0].replace(' ', "")));

        // A stranger locks the password from everywhere else.
        password_burst(&[&server]).await;
        let stranger = password_from_a_fresh_session(&client, &server.base_url, PASSWORD).await;
        assert!(stranger.is_client_error(), "{backend:?}");

        // The owner's browser still signs in: its attempts are counted apart.
        let status = password_from_the_members_browser(&client, &server, &device).await;
        assert!(succeeded(status), "{backend:?}: {status}");

        // The operator ends the stranger's lock from the command line, on the record.
        let (ok, _, stderr) = cli(
            &database.url,
            &["unlock", "--org", "acme", "--email", OWNER],
            "",
        )
        .await;
        assert!(ok, "{stderr}");
        let unlocked = audit::latest(&database.db, 1, 1).await.unwrap();
        assert_eq!(unlocked[0].action, "member.unlocked");
        assert_eq!(unlocked[0].actor, None);
        assert_eq!(unlocked[0].details["by"], "command line");
        let again = password_from_a_fresh_session(&client, &server.base_url, PASSWORD).await;
        assert!(succeeded(again), "{backend:?}: {again}");
        let unknown = cli(
            &database.url,
            &["unlock", "--org", "acme", "--email", "nobody@acme.test"],
            "",
        )
        .await;
        assert!(!unknown.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_database_share_the_limit() {
    let Some(admin_url) = domain::testing::postgres_admin_url() else {
        eprintln!("LIFELINE_TEST_POSTGRES_URL is not set: the two-instance test needs PostgreSQL");
        return;
    };
    let database = domain::testing::TestDatabase::postgres(&admin_url).await;
    let key = SecretKey::generate();
    owner_with_codes(&database, &key).await;
    let a = Server::start_with_key(&database.url, &key, QUEUE).await;
    let b = Server::start_with_key(&database.url, &key, QUEUE).await;
    password_burst(&[&a, &b]).await;
    assert_eq!(
        events(&database.db, "sign_in.failed", Some("wrong")).await,
        ALLOWED
    );
    assert_eq!(events(&database.db, "password.locked", None).await, 1);
}

#[tokio::test]
async fn the_per_account_throttle_counts_the_members_own_browser_apart() {
    for database in fresh_databases().await {
        let key = SecretKey::generate();
        let codes = owner_with_codes(&database, &key).await;
        let server = Server::start_with_key(
            &database.url,
            &key,
            &[("LIFELINE_SIGN_IN_ATTEMPTS_PER_ACCOUNT_PER_MINUTE", "3")],
        )
        .await;
        let backend = database.backend;
        let client = client();
        let pending = password_step(&client, &server, OWNER, PASSWORD).await;
        let signed_in = second_factor_step(
            &client,
            &server,
            &pending,
            SecondFactor::BackupCode(&codes[0]),
        )
        .await;
        let device = device_cookie(&signed_in).expect("a device cookie after signing in");

        // A stranger spends the account's attempts for this minute.
        let mut throttled = 0;
        for _ in 0..5 {
            let status = password_from_a_fresh_session(&client, &server.base_url, "not it").await;
            throttled += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
        }
        assert!(throttled >= 2, "{backend:?}: {throttled}");
        let stranger = password_from_a_fresh_session(&client, &server.base_url, PASSWORD).await;
        assert_eq!(stranger, StatusCode::TOO_MANY_REQUESTS, "{backend:?}");

        // The owner's browser has a bucket of its own.
        let status = password_from_the_members_browser(&client, &server, &device).await;
        assert!(succeeded(status), "{backend:?}: {status}");
    }
}

/// Beginning a sign-in (the email step) makes a session: each address may begin only so many
/// a minute, and the ones refused write nothing.
#[tokio::test]
async fn each_address_begins_only_so_many_sign_ins_a_minute() {
    for database in fresh_databases().await {
        create_org_only(&database).await;
        let server = Server::start_with(&[
            ("DATABASE_URL", database.url.as_str()),
            ("LIFELINE_SIGN_IN_STARTS_PER_MINUTE", "3"),
        ])
        .await;
        let client = client();
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let response = client
                .post(server.url("/api/sign_in/email"))
                .header(header::ACCEPT, "application/json")
                .form(&[("email", OWNER)])
                .send()
                .await
                .unwrap();
            let made_a_session = session_cookie(&response).is_some();
            statuses.push((response.status(), made_a_session));
        }
        let begun = statuses
            .iter()
            .filter(|(status, _)| status.is_success() || status.is_redirection())
            .count();
        assert_eq!(begun, 3, "{:?}: {statuses:?}", database.backend);
        for (status, made_a_session) in &statuses[3..] {
            assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
            assert!(!made_a_session);
        }
    }
}

async fn create_org_only(database: &domain::testing::TestDatabase) {
    crate::support::cli::create_org(&database.url, "Acme", OWNER).await;
}
