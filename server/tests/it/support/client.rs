//! A browser-like HTTP client and the requests tests make with it: server functions posted
//! as forms with the session cookie, the sign-in steps (email, password, authenticator code,
//! backup code), who a session is signed in as, and the policy form.

use std::time::Duration;

use reqwest::{Client, ClientBuilder, StatusCode, header};

use crate::support::{PASSWORD, process::Server};

/// A client that shows redirects instead of following them. It keeps no cookies: each
/// request carries the session the test names, or none.
pub fn client() -> Client {
    builder().build().unwrap()
}

/// [`client`], giving up on a request after `limit`: a server killed with the request in
/// flight never answers it.
pub fn client_with_timeout(limit: Duration) -> Client {
    builder().timeout(limit).build().unwrap()
}

fn builder() -> ClientBuilder {
    Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// Whether an answer did what was asked: a success, or a redirect to the next page.
pub fn succeeded(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

/// The value of the session cookie a response sets, and the whole header.
pub fn session_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("lifeline_session="))
        .map(|value| {
            let id = value["lifeline_session=".len()..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            (id, value.to_owned())
        })
}

/// Posts `form` to `path` as the hydrated app calls a server function (asking for JSON),
/// with the session `cookie` if there is one.
pub async fn post(
    client: &Client,
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    try_post(client, &server.base_url, path, cookie, form)
        .await
        .unwrap()
}

/// [`post`] to the server at `base_url` (a task racing a kill cannot borrow the [`Server`]);
/// an error when no answer came, because the server died with the request in flight.
pub async fn try_post(
    client: &Client,
    base_url: &str,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    try_post_with_headers(client, base_url, path, cookie, form, &[]).await
}

/// [`post`] with these extra headers (`X-Forwarded-For`, as a proxy would add it).
pub async fn post_with_headers(
    client: &Client,
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    try_post_with_headers(client, &server.base_url, path, cookie, form, headers)
        .await
        .unwrap()
}

async fn try_post_with_headers(
    client: &Client,
    base_url: &str,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let mut request = client
        .post(format!("{base_url}{path}"))
        .header(header::ACCEPT, "application/json")
        .form(form);
    if let Some(id) = cookie {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await
}

/// Signs in with email and [`PASSWORD`] over HTTP; returns the signed-in session id (for a
/// member with MFA on, the session that owes the second factor).
pub async fn sign_in(client: &Client, server: &Server, email: &str) -> String {
    password_step(client, server, email, PASSWORD).await
}

/// The email and password steps over HTTP; returns the session id they leave: signed in,
/// or owing a second factor when MFA is on.
pub async fn password_step(
    client: &Client,
    server: &Server,
    email: &str,
    password: &str,
) -> String {
    let step1 = post(
        client,
        server,
        "/api/sign_in/email",
        None,
        &[("email", email)],
    )
    .await;
    let (id, _) = session_cookie(&step1).expect("a session after the first step");
    let step2 = post(
        client,
        server,
        "/api/sign_in/password",
        Some(&id),
        &[("password", password)],
    )
    .await;
    assert!(succeeded(step2.status()), "{email}: {}", step2.status());
    session_cookie(&step2)
        .expect("a new session id after the password")
        .0
}

/// The second factor a member gives after the password.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A 6-digit code from the authenticator app.
    AuthenticatorCode(&'a str),
    /// A backup verification code, in any spelling.
    BackupCode(&'a str),
}

/// Sends the second factor for the sign-in waiting in session `pending`.
pub async fn second_factor_step(
    client: &Client,
    server: &Server,
    pending: &str,
    factor: SecondFactor<'_>,
) -> reqwest::Response {
    let (path, code) = match factor {
        SecondFactor::AuthenticatorCode(code) => ("/api/sign_in/code", code),
        SecondFactor::BackupCode(code) => ("/api/sign_in/backup_code", code),
    };
    post(client, server, path, Some(pending), &[("code", code)]).await
}

/// Signs `email` in with [`PASSWORD`] and `factor`; returns the signed-in session id.
pub async fn sign_in_with(
    client: &Client,
    server: &Server,
    email: &str,
    factor: SecondFactor<'_>,
) -> String {
    let pending = password_step(client, server, email, PASSWORD).await;
    let response = second_factor_step(client, server, &pending, factor).await;
    assert!(
        succeeded(response.status()),
        "{email}: {}",
        response.status()
    );
    session_cookie(&response).unwrap().0
}

/// The email of the member the session `cookie` is signed in as, if any.
pub async fn signed_in_email(client: &Client, server: &Server, cookie: &str) -> Option<String> {
    let response = post(client, server, "/api/account", Some(cookie), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let account: serde_json::Value = response.json().await.unwrap();
    account
        .get("email")
        .and_then(|e| e.as_str())
        .map(str::to_owned)
}

/// The policy form's fields, each as `fields[name]`, with one replaced.
pub fn policy_fields(replace: (&str, &str)) -> Vec<(String, String)> {
    [
        ("backup_codes", "not_allowed"),
        ("codes_per_set", "10"),
        ("max_set_age_days", "0"),
        ("low_codes_threshold", "3"),
        ("lockout_attempts", "5"),
        ("lockout_minutes", "15"),
        ("code_entry", "any"),
    ]
    .into_iter()
    .map(|(name, value)| {
        let value = if name == replace.0 { replace.1 } else { value };
        (format!("fields[{name}]"), value.to_owned())
    })
    .collect()
}

/// Posts the policy form (its fields and `expected_version`) as the signed-in `session`.
pub async fn save_policy(
    client: &Client,
    server: &Server,
    session: String,
    form: Vec<(String, String)>,
) -> reqwest::Response {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post(
        client,
        server,
        "/api/admin/policy/save",
        Some(&session),
        &form,
    )
    .await
}
