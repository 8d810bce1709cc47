//! Bootstrapping accounts on the command line, and sessions over HTTP, through the real binary.

use domain::testing::{TestDatabase, fresh_databases};
use reqwest::{Client, StatusCode};

use crate::support::{
    PASSWORD,
    cli::{cli, create_org},
    client::{client, post, session_cookie, sign_in, signed_in_email},
    process::{Server, run_to_exit},
};

#[tokio::test]
async fn create_org_and_create_user_read_the_password_from_stdin() {
    for database in fresh_databases().await {
        let (ok, stdout, stderr) = cli(
            &database.url,
            &[
                "create-org",
                "--name",
                "Acme",
                "--admin-email",
                "Owner@Acme.test",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await;
        assert!(ok, "{stderr}");
        assert_eq!(
            stdout.trim(),
            "Created organization “Acme” (--org acme) with owner owner@acme.test."
        );
        assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));

        let (ok, stdout, stderr) = cli(
            &database.url,
            &[
                "create-user",
                "--org",
                "acme",
                "--email",
                "m@acme.test",
                "--role",
                "member",
            ],
            &format!("{PASSWORD}\r\n"),
        )
        .await;
        assert!(ok, "{stderr}");
        assert_eq!(stdout.trim(), "Created member m@acme.test in “Acme”.");

        let members = domain::accounts::list_members(&database.db, 1)
            .await
            .unwrap();
        assert_eq!(members.len(), 2, "{:?}", database.backend);
    }
}

#[tokio::test]
async fn the_command_line_refuses_bad_input_in_one_line_and_writes_nothing() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let long = "x".repeat(10 * 1024);
    for (args, stdin, expected) in [
        (
            vec![
                "create-org",
                "--name",
                "Other",
                "--admin-email",
                "owner@acme.test",
            ],
            PASSWORD,
            "email: An account with this email address already exists.",
        ),
        (
            vec![
                "create-org",
                "--name",
                "Acme",
                "--admin-email",
                "new@acme.test",
            ],
            PASSWORD,
            "name: An organization with this name already exists.",
        ),
        (
            vec![
                "create-org",
                "--name",
                "Other",
                "--admin-email",
                "not-an-email",
            ],
            PASSWORD,
            "email: Enter an email address like name@example.com.",
        ),
        (
            vec![
                "create-org",
                "--name",
                "Other",
                "--admin-email",
                "o@other.test",
            ],
            "",
            "password: none given on standard input",
        ),
        (
            vec![
                "create-org",
                "--name",
                "Other",
                "--admin-email",
                "o@other.test",
            ],
            "short",
            "password: Use at least 10 characters.",
        ),
        (
            vec![
                "create-org",
                "--name",
                &long,
                "--admin-email",
                "o@other.test",
            ],
            PASSWORD,
            "name: Use at most 100 characters.",
        ),
        (
            vec!["create-user", "--org", "nope", "--email", "m@acme.test"],
            PASSWORD,
            "There is no organization “nope”.",
        ),
        (
            vec![
                "create-user",
                "--org",
                "acme",
                "--email",
                "m@acme.test",
                "--role",
                "king",
            ],
            PASSWORD,
            "--role: Choose member, auditor, helpdesk, admin or owner.",
        ),
    ] {
        let (ok, _, stderr) = cli(&database.url, &args, &format!("{stdin}\n")).await;
        assert!(!ok, "{args:?} was accepted");
        assert_eq!(
            stderr.trim_end(),
            format!("lifeline: {expected}"),
            "{args:?}"
        );
    }
    assert_eq!(
        domain::accounts::organization_count(&database.db)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        domain::accounts::list_members(&database.db, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn signing_in_rotates_the_session_and_signing_out_deletes_it_on_the_server() {
    for database in fresh_databases().await {
        create_org(&database.url, "Acme", "owner@acme.test").await;
        let server = Server::start(&database.url).await;
        let client = client();

        let step1 = post(
            &client,
            &server,
            "/api/sign_in/email",
            None,
            &[("email", "owner@acme.test")],
        )
        .await;
        assert!(
            step1.status().is_success() || step1.status().is_redirection(),
            "{}",
            step1.status()
        );
        let (before, flags) =
            session_cookie(&step1).expect("a session cookie after the first step");
        assert!(flags.contains("HttpOnly"), "{flags}");
        assert!(flags.contains("SameSite=Lax"), "{flags}");
        assert!(!flags.contains("Secure"), "{flags}");

        let wrong = post(
            &client,
            &server,
            "/api/sign_in/password",
            Some(&before),
            &[("password", "wrong password")],
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

        let step2 = post(
            &client,
            &server,
            "/api/sign_in/password",
            Some(&before),
            &[("password", PASSWORD)],
        )
        .await;
        assert!(
            step2.status().is_success() || step2.status().is_redirection(),
            "{}",
            step2.status()
        );
        let (after, _) = session_cookie(&step2).expect("a new session id at sign-in");
        assert_ne!(before, after, "the session id must change at sign-in");

        assert_eq!(
            signed_in_email(&client, &server, &after).await.as_deref(),
            Some("owner@acme.test")
        );
        assert_eq!(
            signed_in_email(&client, &server, &before).await,
            None,
            "the old id is dead"
        );

        let out = post(&client, &server, "/api/sign_out", Some(&after), &[]).await;
        assert!(out.status().is_success() || out.status().is_redirection());
        assert_eq!(
            signed_in_email(&client, &server, &after).await,
            None,
            "{:?}",
            database.backend
        );
        let (sessions,): (i64,) = {
            use sea_orm::{ConnectionTrait, Statement};
            let row = database
                .db
                .query_one(Statement::from_string(
                    database.db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM session",
                ))
                .await
                .unwrap()
                .unwrap();
            (row.try_get("", "n").unwrap(),)
        };
        assert_eq!(sessions, 0, "sign-out leaves no session in the store");
    }
}

#[tokio::test]
async fn the_secure_cookie_flag_is_set_by_configuration() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SECURE_COOKIES", "true"),
    ])
    .await;
    let client = client();
    let response = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "a@acme.test")],
    )
    .await;
    let (_, flags) = session_cookie(&response).unwrap();
    assert!(flags.contains("Secure"), "{flags}");
}

#[tokio::test]
async fn members_cannot_open_the_members_list_or_remove_anyone() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let (ok, _, stderr) = cli(
        &database.url,
        &["create-user", "--org", "acme", "--email", "m@acme.test"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(ok, "{stderr}");
    let server = Server::start(&database.url).await;
    let client = client();

    let id = sign_in(&client, &server, "m@acme.test").await;

    let list = post(&client, &server, "/api/members", Some(&id), &[]).await;
    assert_eq!(list.status(), StatusCode::FORBIDDEN);
    let remove = post(
        &client,
        &server,
        "/api/members/remove",
        Some(&id),
        &[("member_id", "1")],
    )
    .await;
    assert_eq!(remove.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        domain::accounts::list_members(&database.db, 1)
            .await
            .unwrap()
            .len(),
        2
    );

    // Without a session, nothing at all.
    let anonymous = post(&client, &server, "/api/members", None, &[]).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_to_every_sign_in_and_account_endpoint_gets_a_clear_4xx_and_writes_nothing() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let server = Server::start(&database.url).await;
    let client = client();

    // A signed-in owner, for the account and members endpoints.
    let owner = sign_in(&client, &server, "owner@acme.test").await;

    let ten_kb = "x".repeat(10 * 1024);
    // (endpoint, form fields, expected status, the field the message belongs to)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "/api/sign_in/email",
            vec![("email", "")],
            422,
            Some("email"),
        ),
        (
            "/api/sign_in/email",
            vec![("email", "not-an-email")],
            422,
            Some("email"),
        ),
        (
            "/api/sign_in/email",
            vec![("email", &ten_kb)],
            422,
            Some("email"),
        ),
        (
            "/api/sign_in/email",
            vec![("email", "<script>@x.test")],
            422,
            Some("email"),
        ),
        ("/api/sign_in/email", vec![], 400, None),
        ("/api/sign_in/password", vec![("password", "x")], 401, None),
        ("/api/sign_in/code", vec![("code", "12a456")], 401, None),
        (
            "/api/account/mfa/confirm",
            vec![("code", "12a456")],
            422,
            Some("code"),
        ),
        (
            "/api/account/mfa/confirm",
            vec![("code", "")],
            422,
            Some("code"),
        ),
        (
            "/api/account/mfa/confirm",
            vec![("code", &ten_kb)],
            422,
            Some("code"),
        ),
        (
            "/api/account/mfa/confirm",
            vec![("code", "١٢٣٤٥٦")],
            422,
            Some("code"),
        ),
        (
            "/api/account/mfa/disable",
            vec![("password", "")],
            422,
            Some("password"),
        ),
        (
            "/api/members/add",
            vec![("email", ""), ("password", PASSWORD), ("role", "member")],
            422,
            Some("email"),
        ),
        (
            "/api/members/add",
            vec![
                ("email", &ten_kb),
                ("password", PASSWORD),
                ("role", "member"),
            ],
            422,
            Some("email"),
        ),
        (
            "/api/members/add",
            vec![
                ("email", "n@acme.test"),
                ("password", ""),
                ("role", "member"),
            ],
            422,
            Some("password"),
        ),
        (
            "/api/members/add",
            vec![
                ("email", "n@acme.test"),
                ("password", &ten_kb),
                ("role", "member"),
            ],
            422,
            Some("password"),
        ),
        (
            "/api/members/add",
            vec![
                ("email", "n@acme.test"),
                ("password", PASSWORD),
                ("role", "emperor"),
            ],
            422,
            Some("role"),
        ),
        (
            "/api/members/add",
            vec![("email", "n@acme.test")],
            400,
            None,
        ),
        ("/api/members/remove", vec![("member_id", "abc")], 400, None),
        ("/api/members/remove", vec![("member_id", "-1")], 403, None),
        (
            "/api/members/remove",
            vec![("member_id", "99999999999999999999")],
            400,
            None,
        ),
    ];
    for (path, form, status, field) in cases {
        let response = post(&client, &server, path, Some(&owner), &form).await;
        assert_eq!(response.status().as_u16(), status, "{path} {form:?}");
        let body = response.text().await.unwrap();
        if let Some(field) = field {
            let error: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(error["Invalid"]["field"], field, "{path}: {body}");
            assert!(!error["Invalid"]["message"].as_str().unwrap().is_empty());
        }
        assert!(
            !body.contains("panicked") && !body.to_lowercase().contains("sql"),
            "{body}"
        );
    }
    // Nothing was written: still one member, MFA still off.
    let members = domain::accounts::list_members(&database.db, 1)
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert!(!members[0].mfa_enabled);
    assert!(!server.log().iter().any(|line| line.contains("panicked")));
}

#[tokio::test]
async fn five_wrong_codes_send_the_member_back_to_the_password() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let key = domain::secrets::SecretKey::generate();
    let enrolment = domain::mfa::begin_enrolment(&database.db, &key, 1)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let first = domain::mfa::code_at(&enrolment.setup_key, now).unwrap();
    domain::mfa::confirm_enrolment(
        &database.db,
        &key,
        1,
        &first,
        &domain::audit::Source::default(),
        now,
    )
    .await
    .unwrap();

    let server = Server::start_with_key(&database.url, &key, &[]).await;
    let client = client();
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    let (id, _) = session_cookie(&step1).unwrap();
    let step2 = post(
        &client,
        &server,
        "/api/sign_in/password",
        Some(&id),
        &[("password", PASSWORD)],
    )
    .await;
    let (pending, _) = session_cookie(&step2).expect("the session id changes at the password step");
    assert_ne!(pending, id);

    let next =
        domain::mfa::code_at(&enrolment.setup_key, now + chrono::Duration::seconds(30)).unwrap();
    let wrong = if next == "000000" { "111111" } else { "000000" };
    for attempt in 1..=5 {
        let response = post(
            &client,
            &server,
            "/api/sign_in/code",
            Some(&pending),
            &[("code", wrong)],
        )
        .await;
        let expected = if attempt < 5 { 422 } else { 403 };
        assert_eq!(response.status().as_u16(), expected, "attempt {attempt}");
    }
    // Even the right code is too late now: the password comes first again.
    let right = post(
        &client,
        &server,
        "/api/sign_in/code",
        Some(&pending),
        &[("code", &next)],
    )
    .await;
    assert_eq!(right.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(signed_in_email(&client, &server, &pending).await, None);
}

#[tokio::test]
async fn the_server_refuses_to_start_with_a_key_that_does_not_open_stored_secrets() {
    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let key = domain::secrets::SecretKey::generate();
    domain::mfa::begin_enrolment(&database.db, &key, 1)
        .await
        .unwrap();

    let other = domain::secrets::SecretKey::generate().to_hex();
    let (ok, stderr) = run_to_exit(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SECRET_KEY", &other),
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.starts_with(
            "lifeline: LIFELINE_SECRET_KEY: this key does not open the TOTP or webhook secrets"
        ),
        "{stderr}"
    );
    // A missing key file would be a new key: refused the same way.
    let (ok, stderr) = run_to_exit(&[("DATABASE_URL", &database.url)]).await;
    assert!(!ok);
    assert!(
        stderr.starts_with("lifeline: LIFELINE_SECRET_KEY_FILE: this key does not open"),
        "{stderr}"
    );

    let server = Server::start_with_key(&database.url, &key, &[]).await;
    assert_eq!(
        reqwest::get(server.url("/readyz")).await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn request_bodies_over_64_kib_are_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let database = TestDatabase::sqlite().await;
    let server = Server::start(&database.url).await;
    // Announce 65 KiB and send only the headers: the answer must come from the announced
    // length alone, before any of the body is read. (Sending the body too races the
    // server's close of the connection, and the client may see a reset instead.)
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST /api/sign_in/email HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        65 * 1024
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the body is sent")
        .unwrap();
    let status_line = String::from_utf8_lossy(&answer[..read]);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    let client = Client::new();
    let fits = "x".repeat(60 * 1024);
    let response = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", &fits)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 422);
}
