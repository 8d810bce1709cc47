//! Calling server functions and pages over HTTP as the isolation tests do, with forms encoded
//! byte by byte, and what no answer may contain.

use reqwest::{Client, header};

use crate::support::process::Server;

/// A script tried in every field that may be shown on a page.
pub const SCRIPT: &str = "<script>alert(1)</script>";
/// An attribute that breaks out of a quoted HTML attribute, tried likewise.
pub const ATTRIBUTE: &str = "\"><img src=x onerror=alert(1)>";

/// An HTTP answer, read whole.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    /// Where a redirect sends the browser: a path when it is on this server.
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let named = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = named(header::CONTENT_TYPE).unwrap_or_default();
        // A redirect to this server's own origin is a path on this site.
        let origin = response.url().origin().ascii_serialization();
        let location = named(header::LOCATION).map(|location| {
            location
                .strip_prefix(&origin)
                .map_or(location.clone(), str::to_owned)
        });
        let bytes = response.bytes().await.unwrap();
        Self {
            status,
            content_type,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// Posts `body` as a form to the server function at `/api/<endpoint>`, as the hydrated app
/// does (asking for JSON).
pub async fn call(
    client: &Client,
    server: &Server,
    endpoint: &str,
    session: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = client
        .post(server.url(&format!("/api/{endpoint}")))
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(id) = session {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    Answer::read(request.send().await.unwrap()).await
}

/// Gets a page or a download, as a browser does.
pub async fn get(client: &Client, server: &Server, path: &str, session: Option<&str>) -> Answer {
    let mut request = client.get(server.url(path));
    if let Some(id) = session {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    Answer::read(request.send().await.unwrap()).await
}

/// Percent-encodes `bytes` as a browser encodes a form's names and values.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        if !body.is_empty() {
            body.push(b'&');
        }
        escape_into(&mut body, name.as_bytes());
        body.push(b'=');
        escape_into(&mut body, value.as_bytes());
    }
    body
}

/// A query string for `fields`, with the leading `?`.
pub fn query(fields: &[(&str, &str)]) -> String {
    format!("?{}", String::from_utf8(form(fields)).unwrap())
}

/// What is wrong with an answer, whatever its status: the server's insides in it (a panic,
/// SQL, a source path, a stack trace), or, in HTML, a tried script or attribute unescaped.
/// (Words that are also plain English or HTML are matched by case: `SELECT `, not
/// `<select`.)
pub fn problems(what: &str, answer: &Answer) -> Vec<String> {
    const INSIDES: [&str; 17] = [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "/src/",
        ".rs",
        "sqlx",
        "SQLSTATE",
        "syntax error",
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "no such table",
        "constraint",
        "DbErr",
        "error returned from database",
        "Query Error",
        "Execution Error",
    ];
    const INSIDES_IN_ANY_CASE: [&str; 4] = ["sqlite", "postgres", "duplicate key", "unique"];
    let mut found = Vec::new();
    let lower = answer.body.to_lowercase();
    for inside in INSIDES {
        if answer.body.contains(inside) {
            found.push(format!("the server's insides ({inside:?})"));
        }
    }
    for inside in INSIDES_IN_ANY_CASE {
        if lower.contains(inside) {
            found.push(format!("the server's insides ({inside:?})"));
        }
    }
    if let Some(location) = &answer.location {
        let local = location.starts_with('/') && !location.starts_with("//");
        if !local || location.contains('\\') {
            found.push(format!("a redirect off this site ({location:?})"));
        }
    }
    if answer.content_type.contains("html") {
        for payload in [SCRIPT, "<img src=x onerror=alert(1)>", "alert(1)</script>"] {
            if answer.body.contains(payload) {
                found.push(format!("{payload:?} unescaped in HTML"));
            }
        }
    }
    found
        .into_iter()
        .map(|problem| {
            format!(
                "{what}: {problem} in the answer ({}): {:.1500}",
                answer.status, answer.body
            )
        })
        .collect()
}

/// Fails on any of [`problems`].
pub fn assert_sound(what: &str, answer: &Answer) {
    let found = problems(what, answer);
    assert!(found.is_empty(), "{}", found.join("\n"));
}
