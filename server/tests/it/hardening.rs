//! The browser-facing defences through the real binary: cross-origin writes refused before
//! anything is written, security headers with a per-response CSP nonce on every response, and
//! request bodies over 64 KiB refused with 413 whether or not they announce their length.

use domain::testing::TestDatabase;
use reqwest::{Client, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    PASSWORD,
    client::{client, post, signed_in_email},
    organizations::signed_in_owner,
    process::{Server, run_to_exit},
};

/// The email addresses of Acme's members.
async fn member_emails(database: &TestDatabase) -> Vec<String> {
    domain::accounts::list_members(&database.db, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.email)
        .collect()
}

/// The owner's "add member" server function, sent with these extra headers.
async fn add_member(
    client: &Client,
    server: &Server,
    session: &str,
    email: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(server.url("/api/members/add"))
        .header(header::ACCEPT, "application/json")
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .form(&[("email", email), ("password", PASSWORD), ("role", "member")]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_forged_cross_origin_post_is_refused_before_it_writes_anything() {
    let database = TestDatabase::sqlite().await;
    let (server, client, session) = signed_in_owner(&database).await;
    let own_page = server.url("/admin/members");

    // The owner's valid session cookie, carried by requests another site made the browser send.
    let forged: [(&str, Vec<(&str, &str)>); 6] = [
        ("origin@acme.test", vec![("origin", "https://evil.example")]),
        (
            "referer@acme.test",
            vec![("referer", "https://evil.example/cats.html")],
        ),
        ("null@acme.test", vec![("origin", "null")]),
        (
            "fetch-site@acme.test",
            vec![("sec-fetch-site", "cross-site")],
        ),
        // Another port on the same host is another origin.
        ("port@acme.test", vec![("origin", "http://127.0.0.1:1")]),
        // The Origin decides, whatever the Referer claims.
        (
            "both@acme.test",
            vec![("origin", "https://evil.example"), ("referer", &own_page)],
        ),
    ];
    for (email, headers) in &forged {
        let response = add_member(&client, &server, &session, email, headers).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{headers:?}");
        let text = response.text().await.unwrap();
        assert!(text.contains("came from another website"), "{text}");
    }
    assert_eq!(member_emails(&database).await, ["owner@acme.test"]);

    // Signing out is a write too: a forged one leaves the session signed in.
    let sign_out = client
        .post(server.url("/api/sign_out"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        signed_in_email(&client, &server, &session).await.as_deref(),
        Some("owner@acme.test")
    );

    // The plain form that generates backup codes is refused before its page is rendered.
    let form = client
        .post(server.url("/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .header("origin", "https://evil.example")
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert!(!form.text().await.unwrap().contains("<html"));

    // The same requests from our own pages go through.
    let own_origin = server.base_url.as_str();
    for (email, headers) in [
        ("by-origin@acme.test", vec![("origin", own_origin)]),
        ("by-referer@acme.test", vec![("referer", own_page.as_str())]),
        (
            "by-browser@acme.test",
            vec![("sec-fetch-site", "same-origin"), ("origin", "null")],
        ),
    ] {
        let response = add_member(&client, &server, &session, email, &headers).await;
        assert_eq!(response.status(), StatusCode::OK, "{headers:?}");
    }
    assert_eq!(
        member_emails(&database).await,
        [
            "owner@acme.test",
            "by-origin@acme.test",
            "by-referer@acme.test",
            "by-browser@acme.test"
        ]
    );
}

#[tokio::test]
async fn the_public_origin_and_https_setting_decide_which_origin_is_ours() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start_with(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_SECURE_COOKIES", "true"),
        ("LIFELINE_PUBLIC_ORIGIN", "https://lifeline.example"),
    ])
    .await;
    let client = client();
    let behind_https = server.base_url.replace("http://", "https://");
    for (origin, expected) in [
        ("https://lifeline.example", StatusCode::OK),
        (behind_https.as_str(), StatusCode::OK),
        // Behind HTTPS, the plain-HTTP origin of the same host is another origin.
        (server.base_url.as_str(), StatusCode::FORBIDDEN),
        ("https://evil.example", StatusCode::FORBIDDEN),
    ] {
        let response = client
            .post(server.url("/api/check_status"))
            .header(header::ACCEPT, "application/json")
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{origin}");
        // Over HTTPS every response pins the browser to HTTPS.
        assert_eq!(
            response.headers()[header::STRICT_TRANSPORT_SECURITY],
            "max-age=63072000; includeSubDomains"
        );
    }

    let (ok, stderr) = run_to_exit(&[
        ("DATABASE_URL", &database.url),
        ("LIFELINE_PUBLIC_ORIGIN", "lifeline.example/app"),
    ])
    .await;
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("lifeline: LIFELINE_PUBLIC_ORIGIN must be an origin"),
        "{stderr}"
    );
}

/// Asserts the security headers every response carries over plain HTTP, and returns the CSP
/// nonce.
fn assert_security_headers(response: &reqwest::Response) -> String {
    let headers = response.headers();
    let what = response.url().path().to_owned();
    let policy = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("{what}: no nonce in {policy}"))
        .to_owned();
    assert!(nonce.len() >= 22, "{what}: a nonce of 128 bits: {nonce}");
    assert_eq!(
        policy,
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; connect-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "{what}"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin", "{what}");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{what}");
    // Served over plain HTTP: no HSTS.
    assert!(
        !headers.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "{what}"
    );
    nonce
}

/// Asserts that every inline `<script>` in `html` carries `nonce`, and that there is at least
/// one (the hydration script).
fn assert_inline_scripts_carry(html: &str, nonce: &str) {
    let scripts: Vec<&str> = html
        .split("<script")
        .skip(1)
        .map(|rest| rest.split('>').next().unwrap_or_default())
        .collect();
    assert!(!scripts.is_empty(), "no scripts in {html}");
    for attributes in scripts {
        assert!(
            !attributes.contains("src="),
            "an external script: {attributes}"
        );
        assert!(
            attributes.contains(&format!("nonce=\"{nonce}\"")),
            "<script{attributes}> lacks nonce {nonce}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_pages_use_their_nonce() {
    let database = TestDatabase::sqlite().await;
    let (server, client, session) = signed_in_owner(&database).await;

    let page = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let first = assert_security_headers(&page);
    assert_inline_scripts_carry(&page.text().await.unwrap(), &first);

    let again = client.get(server.url("/")).send().await.unwrap();
    let second = assert_security_headers(&again);
    assert_inline_scripts_carry(&again.text().await.unwrap(), &second);
    assert_ne!(first, second, "a nonce is used once");

    // A page with data loaded on the server, and the page a plain form's post renders.
    let members = client
        .get(server.url("/admin/members"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), StatusCode::OK);
    let nonce = assert_security_headers(&members);
    let html = members.text().await.unwrap();
    assert!(html.contains("owner@acme.test"), "{html}");
    assert_inline_scripts_carry(&html, &nonce);

    let posted = client
        .post(server.url("/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .header("origin", server.base_url.as_str())
        .form(&[("password", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::OK);
    let nonce = assert_security_headers(&posted);
    assert_inline_scripts_carry(&posted.text().await.unwrap(), &nonce);

    let not_found = client
        .get(server.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), StatusCode::NOT_FOUND);
    let nonce = assert_security_headers(&not_found);
    assert_inline_scripts_carry(&not_found.text().await.unwrap(), &nonce);

    let server_function = post(&client, &server, "/api/check_status", None, &[]).await;
    assert_eq!(server_function.status(), StatusCode::OK);
    assert_security_headers(&server_function);

    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_security_headers(&health);

    let refused = client
        .post(server.url("/api/check_status"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&refused);
}

/// Sends a raw HTTP/1.1 POST with `body`, announced by Content-Length or sent in 8 KiB chunks,
/// and returns the response's status code. The body is written while the answer is read: the
/// server may answer 413 and close before reading all of it.
async fn raw_post(server: &Server, path: &str, session: &str, body: String, chunked: bool) -> u16 {
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let length = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nOrigin: http://{address}\r\n\
         Cookie: lifeline_session={session}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n\
         Connection: close\r\n\r\n"
    );
    // The writing half is handed back rather than dropped: dropping it would half-close the
    // connection, and the server gives up on a request whose client hung up.
    let writing = tokio::spawn(async move {
        let sent = async {
            writer.write_all(head.as_bytes()).await?;
            if chunked {
                for chunk in body.as_bytes().chunks(8 * 1024) {
                    writer
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    writer.write_all(chunk).await?;
                    writer.write_all(b"\r\n").await?;
                }
                writer.write_all(b"0\r\n\r\n").await?;
            } else {
                writer.write_all(body.as_bytes()).await?;
            }
            std::io::Result::Ok(())
        }
        .await;
        (writer, sent)
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let status_line = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let read = reader.read(&mut buffer).await.unwrap_or(0);
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some(line) = text.split("\r\n").next().filter(|_| text.contains("\r\n")) {
                return line.to_owned();
            }
            assert!(read > 0, "the connection closed without an answer");
        }
    })
    .await
    .expect("an answer");
    // The writer may have failed once the server closed the connection; that is expected.
    let _ = writing.await;
    status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line}"))
}

/// A form adding `email` as a member, padded with an extra field to `size` bytes.
fn padded_add_member_form(email: &str, size: usize) -> String {
    let form = format!("email={email}&password=correct+horse+battery+staple&role=member&padding=");
    let padding = "x".repeat(size - form.len());
    format!("{form}{padding}")
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_with_or_without_a_length_and_write_nothing() {
    let database = TestDatabase::sqlite().await;
    let (server, _client, session) = signed_in_owner(&database).await;
    let seventy_kb = 70 * 1024;

    for chunked in [false, true] {
        let email = if chunked {
            "chunked@acme.test"
        } else {
            "whole@acme.test"
        };
        let status = raw_post(
            &server,
            "/api/members/add",
            &session,
            padded_add_member_form(email, seventy_kb),
            chunked,
        )
        .await;
        assert_eq!(status, 413, "chunked: {chunked}");
    }
    assert_eq!(member_emails(&database).await, ["owner@acme.test"]);

    // The padding alone does not stop the request: under the limit, the same form adds the
    // member, sent either way.
    for chunked in [false, true] {
        let email = if chunked {
            "chunked@acme.test"
        } else {
            "whole@acme.test"
        };
        let status = raw_post(
            &server,
            "/api/members/add",
            &session,
            padded_add_member_form(email, 60 * 1024),
            chunked,
        )
        .await;
        assert_eq!(status, 200, "chunked: {chunked}");
    }
    assert_eq!(
        member_emails(&database).await,
        ["owner@acme.test", "whole@acme.test", "chunked@acme.test"]
    );
}
