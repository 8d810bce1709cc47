//! Backup verification codes over HTTP, against the real binary: the page that answers the
//! generate form with the codes, and signing in with a code, including bad input.

use domain::{
    accounts,
    audit::{self, Source},
    authz::Authz,
    backup_codes::{self, CodePolicy},
    command::Command,
    secrets::SecretKey,
    testing::TestDatabase,
};
use reqwest::{StatusCode, header};

use crate::support::{
    PASSWORD,
    client::{
        SecondFactor, client, password_step, post, session_cookie, sign_in_with, signed_in_email,
        succeeded,
    },
    organizations::owner_with_codes,
    pages::{
        codes_on_page, get_page, post_generate_form, post_generate_form_replacing, replaces_on_page,
    },
    process::Server,
};

async fn remaining(database: &TestDatabase) -> u32 {
    let owner = accounts::member(&database.db, 1).await.unwrap().unwrap();
    backup_codes::status(
        &database.db,
        &Authz::baseline().await.unwrap(),
        &owner,
        &CodePolicy::default(),
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .unwrap()
    .remaining
}

#[tokio::test]
async fn bad_backup_codes_get_a_clear_422_spend_nothing_and_count_towards_no_lock() {
    let database = TestDatabase::sqlite().await;
    let key = SecretKey::generate();
    let codes = owner_with_codes(&database, &key).await;
    let server = Server::start_with_key(&database.url, &key, &[]).await;
    let client = client();

    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    let ten_kb = "4".repeat(10 * 1024);
    // (input, the message's beginning); all but the blank one are recorded, none can be a
    // code, so none counts towards a lock: sent three times over, they lock nothing.
    let cases = [
        ("", "Enter one of your backup verification codes."),
        ("4821 0937 551a", "A backup verification code is 12 digits"),
        ("48210937551", "A backup verification code is 12 digits"),
        ("4821093755161", "A backup verification code is 12 digits"),
        ("٤٨٢١٠٩٣٧٥٥١٦", "A backup verification code is 12 digits"),
    ];
    for (input, message) in cases.iter().cycle().take(3 * cases.len()).copied() {
        let response = post(
            &client,
            &server,
            "/api/sign_in/backup_code",
            Some(&pending),
            &[("code", input)],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{input:?}"
        );
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["Invalid"]["field"], "code", "{input:?}");
        assert!(
            error["Invalid"]["message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{input:?}: {error}"
        );
    }
    let owner = accounts::member(&database.db, 1).await.unwrap().unwrap();
    let events = audit::latest(&database.db, owner.org_id, 100)
        .await
        .unwrap();
    let malformed: Vec<_> = events
        .iter()
        .filter(|e| e.details["reason"] == "malformed")
        .collect();
    assert_eq!(malformed.len(), 12);
    assert!(events.iter().all(|e| e.action != "backup_code.locked"));
    // Each names where it came from.
    assert!(
        malformed
            .iter()
            .all(|e| e.source.ip.as_deref() == Some("127.0.0.1") && e.source.user_agent.is_none())
    );
    assert_eq!(remaining(&database).await, 10);

    // A right code, typed with en dashes as a word processor writes " - ", still signs in;
    // the code is spent.
    let with_en_dashes = codes[2].replace(' ', "\u{2013}");
    let response = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &with_en_dashes)],
    )
    .await;
    assert!(
        response.status().is_success() || response.status().is_redirection(),
        "{}",
        response.status()
    );
    let signed_in = session_cookie(&response).unwrap().0;
    assert_eq!(
        signed_in_email(&client, &server, &signed_in)
            .await
            .as_deref(),
        Some("owner@acme.test")
    );
    assert_eq!(remaining(&database).await, 9);

    // A new password step: a 10 KB code is refused like any malformed one, and counts no
    // more than one; five codes that were looked at send the member back to the password.
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    let attempts = [
        (ten_kb.as_str(), 422),
        ("x", 422),
        ("0", 422),
        ("1111 2222 3333", 422),
        ("1111 2222 3334", 422),
        ("1111 2222 3335", 422),
        ("1111 2222 3336", 422),
        (codes[2].as_str(), 403),
    ];
    for (attempt, (input, expected)) in attempts.into_iter().enumerate() {
        let response = post(
            &client,
            &server,
            "/api/sign_in/backup_code",
            Some(&pending),
            &[("code", input)],
        )
        .await;
        assert_eq!(response.status().as_u16(), expected, "attempt {attempt}");
    }
    let response = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &codes[3])],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(remaining(&database).await, 9);
    assert!(!server.log().iter().any(|line| line.contains("panicked")));
    // No code reaches the log.
    for code in &codes {
        let digits = code.replace(' ', "");
        assert!(
            !server
                .log()
                .iter()
                .any(|line| line.contains(code.as_str()) || line.contains(&digits))
        );
    }
}

#[tokio::test]
async fn the_generate_form_is_answered_with_the_codes_once_and_never_cached() {
    let database = TestDatabase::sqlite().await;
    let key = SecretKey::generate();
    let old = owner_with_codes(&database, &key).await;
    let server = Server::start_with_key(&database.url, &key, &[]).await;
    let client = client();
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    let response = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &old[0])],
    )
    .await;
    let session = session_cookie(&response).unwrap().0;

    // The plain form's post: the page itself, with ten new codes in it.
    let page = post_generate_form(&client, &server.base_url, &session, "")
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let html = page.text().await.unwrap();
    let fresh = codes_on_page(&html);
    assert_eq!(fresh.len(), 10, "{html}");
    assert!(fresh.iter().all(|code| !old.contains(code)));
    assert_eq!(remaining(&database).await, 10);

    // Fetched again, the page has no codes; the old set is dead and the new one works.
    let again = get_page(&client, &server, &session, "/account/backup-codes").await;
    assert!(again.contains("Generate New Codes"), "{again}");
    assert!(fresh.iter().all(|code| !again.contains(code.as_str())));
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    let refused = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &old[1])],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &fresh[0])],
    )
    .await;
    assert!(accepted.status().is_success() || accepted.status().is_redirection());

    // Without a session, the form's post shows no codes and generates nothing.
    let anonymous = client
        .post(server.url("/account/backup-codes"))
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!anonymous.contains("backup-code\">"));
    assert_eq!(remaining(&database).await, 9);
}

#[tokio::test]
async fn generating_asks_for_the_password_again_once_the_last_sign_in_is_old() {
    let database = TestDatabase::sqlite().await;
    let key = SecretKey::generate();
    let codes = owner_with_codes(&database, &key).await;
    // Every sign-in is "old" at once: the window is zero seconds.
    let server = Server::start_with_key(
        &database.url,
        &key,
        &[("LIFELINE_REAUTHENTICATE_AFTER_SECONDS", "0")],
    )
    .await;
    let client = client();
    let session = sign_in_with(
        &client,
        &server,
        "owner@acme.test",
        SecondFactor::BackupCode(&codes[0]),
    )
    .await;

    // The page and the account panel ask for the password up front.
    let page = get_page(&client, &server, &session, "/account/backup-codes").await;
    assert!(page.contains("name=\"password\""), "{page}");

    // Without it, or with a wrong one, nothing is generated.
    for (password, message) in [
        ("", "Enter your password again to confirm it is you."),
        ("not my password", "That password is not correct."),
    ] {
        let html = post_generate_form(&client, &server.base_url, &session, password)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(message), "{html}");
        assert!(!html.contains("class=\"backup-code\""));
        assert_eq!(remaining(&database).await, 9);
    }
    let json = post(
        &client,
        &server,
        "/api/account/backup-codes/generate",
        Some(&session),
        &[],
    )
    .await;
    assert_eq!(json.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: serde_json::Value = json.json().await.unwrap();
    assert_eq!(error["Invalid"]["field"], "password");

    // With it, the new set.
    let html = post_generate_form(&client, &server.base_url, &session, PASSWORD)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("class=\"backup-code\"").count(), 10, "{html}");
    assert_eq!(remaining(&database).await, 10);
    assert!(!server.log().iter().any(|line| line.contains(PASSWORD)));
}

#[tokio::test]
async fn the_policy_can_ask_for_one_numbered_code_and_then_allow_only_mfa_settings() {
    let database = TestDatabase::sqlite().await;
    let key = SecretKey::generate();
    let codes = owner_with_codes(&database, &key).await;
    let owner = accounts::member(&database.db, 1).await.unwrap().unwrap();
    let policy = domain::org_policy::OrgPolicy {
        code_entry: domain::org_policy::CodeEntry::NumberedCode,
        restrict_after_backup_sign_in: true,
        ..Default::default()
    };
    let authz = Authz::load(&database.db).await.unwrap();
    let source = Source::default();
    let by_owner = Command::new(&database.db, &authz, &owner, &source, chrono::Utc::now());
    domain::org_policy::save(&by_owner, 0, &policy)
        .await
        .unwrap();
    let server = Server::start_with_key(&database.url, &key, &[]).await;
    let client = client();
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;

    // The page asks for one numbered code, the same one on every reload.
    let ask = || {
        post(
            &client,
            &server,
            "/api/sign_in/backup_code/slot",
            Some(&pending),
            &[],
        )
    };
    let slot: u32 = ask().await.json().await.unwrap();
    assert!((1..=10).contains(&slot));
    assert_eq!(ask().await.json::<u32>().await.unwrap(), slot);
    let code = |slot: u32| codes[usize::try_from(slot - 1).unwrap()].as_str();
    let other = if slot == 1 { 2 } else { 1 };
    let refused = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", code(other))],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", code(slot))],
    )
    .await;
    assert!(accepted.status().is_success() || accepted.status().is_redirection());
    let session = session_cookie(&accepted).unwrap().0;
    assert_eq!(remaining(&database).await, 9);

    // Only MFA settings now: the members list is closed until new codes are generated.
    let members = post(&client, &server, "/api/members", Some(&session), &[]).await;
    assert_eq!(members.status(), StatusCode::FORBIDDEN);
    assert!(
        members
            .text()
            .await
            .unwrap()
            .contains("You signed in with a backup code")
    );
    // New codes lift it, with the password typed again (a backup code is not that).
    let page = get_page(&client, &server, &session, "/account/backup-codes").await;
    let replaces = replaces_on_page(&page).unwrap();
    let fresh = post(
        &client,
        &server,
        "/api/account/backup-codes/generate",
        Some(&session),
        &[("password", PASSWORD), ("replaces", &replaces)],
    )
    .await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let members = post(&client, &server, "/api/members", Some(&session), &[]).await;
    assert_eq!(members.status(), StatusCode::OK);
}

/// How a generate form reaches the server: the plain form a page posts (with or without
/// JavaScript, the form is the same), and the server function behind it.
#[derive(Debug, Clone, Copy)]
enum GenerateRoute {
    PageForm,
    ServerFunction,
}

impl GenerateRoute {
    const ALL: [Self; 2] = [Self::PageForm, Self::ServerFunction];

    /// Posts the form drawn with `replaces`; the new codes if a set was made, else the
    /// answer's text.
    async fn post(
        self,
        client: &reqwest::Client,
        server: &Server,
        session: &str,
        replaces: &str,
    ) -> Result<Vec<String>, String> {
        let response = match self {
            Self::PageForm => {
                post_generate_form_replacing(client, &server.base_url, session, "", replaces)
                    .await
                    .unwrap()
            }
            Self::ServerFunction => {
                post(
                    client,
                    server,
                    "/api/account/backup-codes/generate",
                    Some(session),
                    &[("replaces", replaces)],
                )
                .await
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap();
        let codes = match self {
            Self::PageForm => codes_on_page(&text),
            Self::ServerFunction => serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|json| serde_json::from_value(json["codes"].clone()).ok())
                .unwrap_or_default(),
        };
        if codes.is_empty() {
            Err(format!("{status} {text}"))
        } else {
            Ok(codes)
        }
    }
}

/// Issue 19, item 3: a generate form posted again (a browser's "resend", Back and submit, a
/// second tab, or the same post 200 times at once) makes one set. Every other post is told
/// the codes were already shown and writes nothing, and the set shown is the one that works.
/// A new set on purpose comes from the form as the page draws it now. Each route, on every
/// database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resent_generate_form_never_replaces_the_set_just_shown() {
    const BURST: usize = 200;
    const ALREADY_SHOWN: &str = "These codes were already shown";
    for database in domain::testing::fresh_databases().await {
        let key = SecretKey::generate();
        let old = owner_with_codes(&database, &key).await;
        // A short hash queue: the posts past it are turned away as busy, unread.
        let server =
            Server::start_with_key(&database.url, &key, &[("LIFELINE_HASH_QUEUE", "8")]).await;
        let client = client();
        let session = sign_in_with(
            &client,
            &server,
            "owner@acme.test",
            SecondFactor::BackupCode(&old[0]),
        )
        .await;
        for route in GenerateRoute::ALL {
            let page = get_page(&client, &server, &session, "/account/backup-codes").await;
            let replaces = replaces_on_page(&page).expect("the generate form names its set");
            let posts = (0..BURST).map(|_| route.post(&client, &server, &session, &replaces));
            let answers = futures::future::join_all(posts).await;
            let shown: Vec<&Vec<String>> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
            assert_eq!(
                shown.len(),
                1,
                "{route:?}: one set from {BURST} posts of one form"
            );
            for refused in answers.iter().filter_map(|a| a.as_ref().err()) {
                assert!(
                    refused.contains(ALREADY_SHOWN) || refused.to_lowercase().contains("busy"),
                    "{route:?}: {refused}"
                );
            }
            // Posted once more later, as a resend is: refused, with the offer of a new set.
            let resend = route.post(&client, &server, &session, &replaces).await;
            let refusal = resend.expect_err("a resend makes no set");
            assert!(refusal.contains(ALREADY_SHOWN), "{route:?}: {refusal}");
            if let GenerateRoute::PageForm = route {
                assert!(refusal.contains("Generate New Codes"), "{refusal}");
                assert_ne!(
                    replaces_on_page(&refusal).as_deref(),
                    Some(replaces.as_str())
                );
            }
            // The codes shown are the ones in force.
            assert_eq!(remaining(&database).await, 10, "{route:?}");
            let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
            let accepted = post(
                &client,
                &server,
                "/api/sign_in/backup_code",
                Some(&pending),
                &[("code", &shown[0][3])],
            )
            .await;
            assert!(
                succeeded(accepted.status()),
                "{route:?}: {}",
                accepted.status()
            );
        }
    }
}
