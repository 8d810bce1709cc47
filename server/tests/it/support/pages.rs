//! Pages as a browser without JavaScript gets them: a page fetched with the session cookie,
//! the plain "Generate New Codes" form posted, and what the tests read off a page.

use reqwest::{Client, header};

use crate::support::process::Server;

/// GETs the page at `path` as the signed-in `session`; returns its HTML.
pub async fn get_page(client: &Client, server: &Server, session: &str, path: &str) -> String {
    client
        .get(server.url(path))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Posts the plain "Generate New Codes" form (no JavaScript: the answer is the page) to the
/// server at `base_url` as the signed-in `session`, with `password` in its password field;
/// an error when no answer came, because the server died with the request in flight.
pub async fn post_generate_form(
    client: &Client,
    base_url: &str,
    session: &str,
    password: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base_url}/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .form(&[("password", password)])
        .send()
        .await
}

/// The backup codes on a page that answers the "Generate New Codes" form, slot 1 first.
pub fn codes_on_page(html: &str) -> Vec<String> {
    html.split("<code class=\"backup-code\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_owned)
        .collect()
}

/// The text between `start` and the next `<` on a page.
pub fn text_after<'a>(html: &'a str, start: &str) -> Option<&'a str> {
    let at = html.find(start)? + start.len();
    html[at..].split('<').next()
}
