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
/// server at `base_url` as the signed-in `session`, with `password` in its password field,
/// as a browser does: the form as the page draws it now (its `replaces` field), then posted;
/// an error when no answer came, because the server died with the request in flight.
pub async fn post_generate_form(
    client: &Client,
    base_url: &str,
    session: &str,
    password: &str,
) -> reqwest::Result<reqwest::Response> {
    let page = client
        .get(format!("{base_url}/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .send()
        .await?
        .text()
        .await?;
    let replaces = replaces_on_page(&page).unwrap_or_default();
    post_generate_form_replacing(client, base_url, session, password, &replaces).await
}

/// Posts the "Generate New Codes" form with the `replaces` field it was drawn with: what a
/// browser sends when it posts a form again ("resend", Back and submit, a second tab).
pub async fn post_generate_form_replacing(
    client: &Client,
    base_url: &str,
    session: &str,
    password: &str,
    replaces: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base_url}/account/backup-codes"))
        .header(header::COOKIE, format!("lifeline_session={session}"))
        .header(header::ACCEPT, "text/html")
        .form(&[("password", password), ("replaces", replaces)])
        .send()
        .await
}

/// The generate form's `replaces` field on a page: the set it was drawn to replace.
pub fn replaces_on_page(html: &str) -> Option<String> {
    let field = html.find("name=\"replaces\"")?;
    let tag_start = html[..field].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let value = tag.split("value=\"").nth(1)?;
    value.split('"').next().map(str::to_owned)
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
