//! A whole journey logged at trace level (signing in every way, turning MFA on, adding a
//! member, generating codes) writes no password, code, key or session id to the log.

use std::time::Duration;

use chrono::Utc;
use domain::{mfa, secrets::SecretKey, testing::TestDatabase};
use reqwest::StatusCode;

use super::{GIVE_UP_AFTER, Reply, regenerate};
use crate::support::{
    PASSWORD,
    cli::create_org,
    client::{client_with_timeout, password_step, post, session_cookie, succeeded},
    pages::{get_page, text_after},
    process::Server,
};

/// RFC 4648 base32 (the TOTP setup key) to bytes: the raw secret, to look for it in hex.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut count, mut bytes) = (0u32, 0, Vec::new());
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("a base32 character");
        bits = (bits << 5) | u32::try_from(value).unwrap();
        count += 5;
        if count >= 8 {
            count -= 8;
            bytes.push(u8::try_from((bits >> count) & 0xff).unwrap());
        }
    }
    bytes
}

/// A 12-digit code in every way it may be typed or form-encoded.
fn code_spellings(code: &str) -> Vec<String> {
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let groups = [&digits[0..4], &digits[4..8], &digits[8..12]];
    vec![
        digits.clone(),
        groups.join(" "),
        groups.join("-"),
        groups.join("+"),
        groups.join("%20"),
    ]
}

/// A password as typed and as a form encodes it.
fn password_spellings(password: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        password.replace(' ', "+"),
        password.replace(' ', "%20"),
    ]
}

/// The log lines in which the 6-digit `code` stands as a number of its own: not part of a
/// longer run of digits, nor the fraction of a timestamp or a duration (`.123456`). A 6-digit
/// number may turn up by chance; this keeps that chance far below one in a thousand.
fn lines_with_number<'a>(log: &'a [String], code: &str) -> Vec<&'a String> {
    log.iter()
        .filter(|line| {
            let bytes = line.as_bytes();
            line.match_indices(code).any(|(at, _)| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + code.len()).copied();
                !before.is_some_and(|b| b.is_ascii_digit() || b == b'.')
                    && !after.is_some_and(|b| b.is_ascii_digit())
            })
        })
        .collect()
}

#[tokio::test]
async fn a_whole_journey_logged_at_trace_level_writes_no_password_code_key_or_session_id() {
    const NEW_MEMBER_PASSWORD: &str = "initial password 4417 for a newcomer";
    const WRONG_PASSWORD: &str = "wrong password guessed 2931";
    const WRONG_BACKUP_CODE: &str = "2718 2818 2845";

    let database = TestDatabase::sqlite().await;
    create_org(&database.url, "Acme", "owner@acme.test").await;
    let key = SecretKey::generate();
    let server = Server::start_with_key(&database.url, &key, &[("LIFELINE_LOG", "trace")]).await;
    let client = client_with_timeout(GIVE_UP_AFTER);
    // (what it is, the text that must not be logged)
    let mut secrets: Vec<(String, String)> = vec![("the server's secret key".into(), key.to_hex())];
    for (what, password) in [
        ("the owner's password", PASSWORD),
        ("the new member's initial password", NEW_MEMBER_PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
    ] {
        for spelling in password_spellings(password) {
            secrets.push((what.into(), spelling));
        }
    }
    let mut totp_codes = Vec::new();
    let mut sessions = Vec::new();

    // Signing in with the password; the session id changes at each step.
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    sessions.push(session_cookie(&step1).unwrap().0);
    let owner = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    sessions.push(owner.clone());

    // Turning on MFA with the setup key the page shows.
    let setup = get_page(&client, &server, &owner, "/account/mfa/setup").await;
    let setup_key = text_after(&setup, "<code class=\"setup-key\">")
        .unwrap_or_else(|| panic!("the setup key on the page: {setup}"))
        .to_owned();
    let compact = setup_key.replace(' ', "");
    assert!(compact.len() >= 16, "{setup_key}");
    let raw = base32_decode(&compact);
    for spelling in [setup_key.clone(), compact.clone(), compact.to_lowercase()] {
        secrets.push(("the TOTP setup key".into(), spelling));
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    for spelling in [hex.clone(), hex.to_uppercase(), format!("{raw:?}")] {
        secrets.push(("the raw TOTP secret".into(), spelling));
    }
    let enrolled_at = Utc::now();
    let first = mfa::code_at(&compact, enrolled_at).unwrap();
    totp_codes.push(first.clone());
    let confirmed = post(
        &client,
        &server,
        "/api/account/mfa/confirm",
        Some(&owner),
        &[("code", &first)],
    )
    .await;
    assert!(succeeded(confirmed.status()), "{}", confirmed.status());

    // The owner adds a member with an initial password.
    let added = post(
        &client,
        &server,
        "/api/members/add",
        Some(&owner),
        &[
            ("email", "newcomer@acme.test"),
            ("password", NEW_MEMBER_PASSWORD),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(added.status(), StatusCode::OK);

    // A personal access token for the API, and a sign-in code issued through it.
    let made = post(
        &client,
        &server,
        "/api/admin/api-tokens/create",
        Some(&owner),
        &[
            ("name", "Log hygiene"),
            ("scopes[0]", "sign_in_codes:issue"),
            ("lifetime_days", "1"),
        ],
    )
    .await;
    assert_eq!(made.status(), StatusCode::OK);
    let made: serde_json::Value = made.json().await.unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    let issued = client
        .post(server.url("/api/v1/members/2/sign-in-code"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    let issued: serde_json::Value = issued.json().await.unwrap();
    for spelling in code_spellings(issued["code"].as_str().unwrap()) {
        secrets.push(("a sign-in code issued through the API".into(), spelling));
    }
    secrets.push(("an API token".into(), token.clone()));
    secrets.push((
        "an API token's secret part".into(),
        token.trim_start_matches("lifeline_pat_").to_owned(),
    ));

    // Generating backup codes.
    let Reply::Done(codes) =
        regenerate(client.clone(), server.base_url.clone(), owner.clone()).await
    else {
        panic!("generating backup codes failed");
    };
    for code in codes.iter().map(String::as_str).chain([WRONG_BACKUP_CODE]) {
        for spelling in code_spellings(code) {
            secrets.push(("a backup code".into(), spelling));
        }
    }
    let out = post(&client, &server, "/api/sign_out", Some(&owner), &[]).await;
    assert!(succeeded(out.status()));

    // A wrong password, then the right one, a wrong authenticator code, then the right one.
    let step1 = post(
        &client,
        &server,
        "/api/sign_in/email",
        None,
        &[("email", "owner@acme.test")],
    )
    .await;
    let first_step = session_cookie(&step1).unwrap().0;
    sessions.push(first_step.clone());
    let wrong = post(
        &client,
        &server,
        "/api/sign_in/password",
        Some(&first_step),
        &[("password", WRONG_PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = post(
        &client,
        &server,
        "/api/sign_in/password",
        Some(&first_step),
        &[("password", PASSWORD)],
    )
    .await;
    let pending = session_cookie(&right).unwrap().0;
    sessions.push(pending.clone());
    // The code of ten minutes later: a real code of this authenticator, but not now.
    let next = mfa::code_at(&compact, enrolled_at + chrono::Duration::seconds(30)).unwrap();
    let mut later = mfa::code_at(&compact, enrolled_at + chrono::Duration::minutes(10)).unwrap();
    if later == next {
        later = if next == "000000" { "111111" } else { "000000" }.into();
    }
    totp_codes.extend([later.clone(), next.clone()]);
    let refused = post(
        &client,
        &server,
        "/api/sign_in/code",
        Some(&pending),
        &[("code", &later)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/code",
        Some(&pending),
        &[("code", &next)],
    )
    .await;
    assert!(succeeded(accepted.status()), "{}", accepted.status());
    let signed_in = session_cookie(&accepted).unwrap().0;
    sessions.push(signed_in.clone());
    post(&client, &server, "/api/sign_out", Some(&signed_in), &[]).await;

    // A wrong backup code, then a right one typed with dashes.
    let pending = password_step(&client, &server, "owner@acme.test", PASSWORD).await;
    sessions.push(pending.clone());
    let refused = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", WRONG_BACKUP_CODE)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let dashed = codes[0].replace(' ', "-");
    let accepted = post(
        &client,
        &server,
        "/api/sign_in/backup_code",
        Some(&pending),
        &[("code", &dashed)],
    )
    .await;
    assert!(succeeded(accepted.status()), "{}", accepted.status());
    sessions.push(session_cookie(&accepted).unwrap().0);

    // The newcomer signs in with the initial password.
    let newcomer = password_step(&client, &server, "newcomer@acme.test", NEW_MEMBER_PASSWORD).await;
    sessions.push(newcomer);

    for session in sessions {
        secrets.push(("a session id".into(), session));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();

    // The log really is at trace level: absence below means something.
    let level = |level: &str| {
        log.iter()
            .filter(|line| line.contains(&format!(" {level} ")))
            .count()
    };
    assert!(
        level("TRACE") > 0 && level("DEBUG") > 0,
        "no trace-level lines in the log: {log:#?}"
    );
    assert!(
        log.iter().any(|line| line.contains("tower_http")),
        "the request traces are in the log"
    );

    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        if let Some(line) = log.iter().find(|line| line.contains(secret.as_str())) {
            leaks.push(format!("{what} ({secret}) in: {line}"));
        }
    }
    for code in &totp_codes {
        if let Some(line) = lines_with_number(&log, code).first() {
            leaks.push(format!("an authenticator code ({code}) in: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the server log ({} lines):\n{}",
        log.len(),
        leaks.join("\n")
    );
    eprintln!(
        "trace log: {} lines ({} TRACE, {} DEBUG), {} secrets and {} authenticator codes \
         looked for",
        log.len(),
        level("TRACE"),
        level("DEBUG"),
        secrets.len(),
        totp_codes.len()
    );
}
