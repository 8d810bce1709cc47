//! Pages say only what Lifeline said: a server function's error in a page's address
//! (`?__path=…&__err=…`, how a plain form's failed post comes back without JavaScript) is
//! shown only when this server sent it to this browser, once. A crafted link puts no
//! sentence of an attacker's on any page; a real failed post still shows the server's words.

use app::error::AppError;
use domain::testing::TestDatabase;
use leptos::server_fn::error::ServerFnUrlError;
use reqwest::{Client, StatusCode, header};

use crate::support::{
    client::{client, session_cookie},
    organizations::signed_in_owner,
    process::Server,
    sources::{page_routes, server_functions},
};

/// What an attacker would like a Lifeline page to say.
const ATTACKER_SAYS: &str = "Your account is suspended: call +1 555 0100 to restore it";

/// `page` with `error` in its address as if `/api/<endpoint>` had failed with it.
fn address_with_error(server: &Server, page: &str, endpoint: &str, error: AppError) -> String {
    ServerFnUrlError::new(format!("/api/{endpoint}"), error)
        .to_url(&server.url(page))
        .unwrap()
        .to_string()
}

/// GETs `address` as a browser without JavaScript, with the session `cookie` if any.
async fn get(client: &Client, address: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = client.get(address).header(header::ACCEPT, "text/html");
    if let Some(id) = cookie {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    request.send().await.unwrap()
}

/// Posts `form` to `/api/<endpoint>` as a plain HTML form on `page` does.
async fn post_plain_form(
    client: &Client,
    server: &Server,
    page: &str,
    endpoint: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(server.url(&format!("/api/{endpoint}")))
        .header(header::ACCEPT, "text/html")
        .header(header::REFERER, page)
        .form(form);
    if let Some(id) = cookie {
        request = request.header(header::COOKIE, format!("lifeline_session={id}"));
    }
    request.send().await.unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_crafted_link_puts_no_attackers_sentence_on_any_page() {
    let database = TestDatabase::sqlite().await;
    let (server, client, owner) = signed_in_owner(&database).await;
    let functions = server_functions();
    let mut failures = Vec::new();
    for (i, page) in page_routes().iter().enumerate() {
        // Each page with a different server function's error, as a refusal and as a field's.
        let endpoint = &functions[i % functions.len()].endpoint;
        for error in [
            AppError::Refused(ATTACKER_SAYS.into()),
            AppError::Invalid {
                field: "email".into(),
                message: ATTACKER_SAYS.into(),
            },
        ] {
            let crafted = address_with_error(&server, &page.path, endpoint, error);
            for session in [None, Some(owner.as_str())] {
                let what = format!("{crafted} ({})", session.map_or("visitor", |_| "owner"));
                let answer = get(&client, &crafted, session).await;
                // Sent to the same page without the error, which nothing read.
                if answer.status() != StatusCode::SEE_OTHER || location(&answer) != page.path {
                    failures.push(format!(
                        "{what}: {} {:?}",
                        answer.status(),
                        answer.headers()
                    ));
                }
                if answer.text().await.unwrap().contains(ATTACKER_SAYS) {
                    failures.push(format!("{what}: the attacker's words on the page"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_real_failed_plain_form_post_shows_the_servers_words_once() {
    let database = TestDatabase::sqlite().await;
    let server = Server::start(&database.url).await;
    let client = client();
    let sign_in = server.url("/sign-in");
    let words = "Enter an email address like name@example.com.";

    // A visitor's plain form fails: back to the form, with the error, in a new session.
    let posted = post_plain_form(
        &client,
        &server,
        &sign_in,
        "sign_in/email",
        None,
        &[("email", "not an address")],
    )
    .await;
    assert_eq!(posted.status(), StatusCode::FOUND);
    let back = location(&posted);
    assert!(back.starts_with(&format!("{sign_in}?__path=")), "{back}");
    let (session, _) = session_cookie(&posted).expect("a session remembers the error sent");

    // Someone else given that very address (the attacker's own real error) sees no error.
    let elsewhere = get(&client, &back, None).await;
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert!(!elsewhere.text().await.unwrap().contains(words));

    // The browser it was sent to sees it, once.
    let page = get(&client, &back, Some(&session)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(words), "{html:.3000}");
    let again = get(&client, &back, Some(&session)).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), "/sign-in");

    // Posted again from the page that shows the last error: only the newest comes back.
    let posted = post_plain_form(
        &client,
        &server,
        &back,
        "sign_in/email",
        Some(&session),
        &[("email", "")],
    )
    .await;
    let newest = location(&posted);
    assert_eq!(newest.matches("__err=").count(), 1, "{newest}");
    let html = get(&client, &newest, Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Enter your email address."), "{html:.3000}");
    assert!(!html.contains(words), "{html:.3000}");
}

#[tokio::test]
async fn an_admin_pages_plain_form_still_shows_its_error() {
    let database = TestDatabase::sqlite().await;
    let (server, client, owner) = signed_in_owner(&database).await;
    let members = server.url("/admin/members");
    let posted = post_plain_form(
        &client,
        &server,
        &members,
        "members/add",
        Some(&owner),
        &[
            ("email", "not an address"),
            ("password", "long enough password"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(posted.status(), StatusCode::FOUND);
    let page = get(&client, &location(&posted), Some(&owner)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Enter an email address like name@example.com."),
        "{html:.5000}"
    );
}

#[tokio::test]
async fn a_confirmed_password_goes_to_next_without_the_error_a_link_put_in_it() {
    let database = TestDatabase::sqlite().await;
    let (server, client, owner) = signed_in_owner(&database).await;
    let crafted = address_with_error(
        &server,
        "/admin/members",
        "members/add",
        AppError::Refused(ATTACKER_SAYS.into()),
    );
    let next = crafted.trim_start_matches(&server.url(""));
    let posted = post_plain_form(
        &client,
        &server,
        &server.url("/account/confirm"),
        "account/confirm",
        Some(&owner),
        &[("password", crate::support::PASSWORD), ("next", next)],
    )
    .await;
    assert_eq!(posted.status(), StatusCode::FOUND);
    // Not an error this server sent, so none the page would show.
    assert_eq!(location(&posted), "/admin/members");
    let page = get(&client, &server.url("/admin/members"), Some(&owner)).await;
    assert!(!page.text().await.unwrap().contains(ATTACKER_SAYS));
}

/// Posts the groups page's "Preview" form to the page itself, as a browser does.
async fn preview(
    client: &Client,
    server: &Server,
    owner: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(server.url("/admin/groups"))
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, format!("lifeline_session={owner}"))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_csv_preview_is_the_groups_page_answering_its_post_and_bad_input_is_named() {
    let database = TestDatabase::sqlite().await;
    let (server, client, owner) = signed_in_owner(&database).await;
    let created = crate::support::client::post(
        &client,
        &server,
        "/api/admin/groups/create",
        Some(&owner),
        &[("name", "Engineering")],
    )
    .await;
    assert!(created.status().is_success(), "{}", created.status());
    let html = get(&client, &server.url("/admin/groups"), Some(&owner))
        .await
        .text()
        .await
        .unwrap();
    let group_id = html
        .split("/admin/members?group=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the group's row links to its members")
        .to_owned();

    let answer = preview(
        &client,
        &server,
        &owner,
        &[
            ("group_id", &group_id),
            ("csv", "email\nowner@acme.test\nnobody@acme.test\n"),
        ],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let html = answer.text().await.unwrap();
    assert!(html.contains("csv-preview"), "{html:.5000}");
    assert!(
        html.contains("No member of your organization has this address."),
        "{html:.5000}"
    );
    assert!(html.contains("1 line needs fixing"), "{html:.5000}");
    // The form comes back as posted.
    assert!(html.contains("nobody@acme.test"), "{html:.5000}");

    // A form that cannot be read: a message, nothing previewed.
    let answer = preview(&client, &server, &owner, &[("csv", "email\n")]).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert_eq!(answer.text().await.unwrap(), "The form could not be read.");
    // A group that is not the organization's: the page, with the error where the form is.
    let answer = preview(
        &client,
        &server,
        &owner,
        &[("group_id", "999999"), ("csv", "owner@acme.test\n")],
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains(r#"<p role="alert" class="form-error">That group no longer exists."#),
        "{html:.5000}"
    );
    assert!(!html.contains("csv-preview"), "{html:.5000}");
}
