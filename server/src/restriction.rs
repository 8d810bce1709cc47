//! "Only MFA settings after a sign-in with a backup code", "New set required when codes
//! run low" (an organization's policy switches) and "Required" past a member's deadline
//! (its date and grace period), enforced for every route in one place.
//!
//! A session so limited ([`app::auth::limit_now`]) reaches only the routes in
//! [`STILL_OPEN`]: the public pages and the sign-in steps, signing out, and the member's own
//! account and MFA settings. Every other route (pages, server functions, downloads, the plain
//! forms, and any route added later) is refused by [`refuse_beyond_mfa_settings`], a layer
//! around the whole router, before its handler runs. A backup-code sign-in's limit is lifted
//! by new codes (or a new authenticator, unless a new set is owed because the codes ran low),
//! after the password is typed again (`app::auth`); "Required"'s by whatever makes the
//! member comply, read again on each request.

use app::state::AppState;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::server_fn::{
    ContentType,
    codec::JsonEncoding,
    error::{FromServerFnError, SERVER_FN_ERROR_HEADER, ServerFnUrlError},
};
use tower_sessions::Session;

/// The paths a session limited to MFA settings may still use, with any method. Exact paths:
/// a route not named here is refused, so a new route is covered without anyone thinking of it.
const STILL_OPEN: [&str; 45] = [
    // Public: the home page and its status check, the health checks, the sign-in steps.
    "/",
    "/api/check_status",
    "/healthz",
    "/readyz",
    "/sign-in",
    "/sign-in/password",
    "/sign-in/verify",
    "/sign-in/help",
    "/sign-in/backup-code",
    "/api/sign_in/email",
    "/api/sign_in/password",
    "/api/sign_in/code",
    "/api/sign_in/backup_code",
    "/api/sign_in/backup_code/slot",
    "/api/sign_in/progress",
    "/api/sign_in/help",
    // Signing out.
    "/api/sign_out",
    // "This wasn't me" from a security notice: the link must work in any browser.
    "/not-me",
    "/not-me/reported",
    "/api/not_me/check",
    "/api/not_me/report",
    // The member's own account and MFA settings: the account page, the page after a
    // backup-code sign-in, the authenticator, the password asked for again, backup codes
    // (their page, its plain form, and its server functions).
    "/account",
    "/api/account",
    "/account/recovered",
    "/account/mfa/setup",
    "/api/account/mfa/setup",
    "/api/account/mfa/confirm",
    "/api/account/mfa/disable",
    "/account/mfa/replace",
    "/api/account/mfa/replace",
    "/api/account/mfa/replace/confirm",
    "/account/confirm",
    "/api/account/confirm",
    "/account/backup-codes",
    "/api/account/backup-codes",
    "/api/account/backup-codes/generate",
    // The member's own security notifications, and the count in every page's header.
    "/account/notifications",
    "/api/account/notifications",
    "/api/account/notifications/unread",
    "/api/account/notifications/read",
    "/api/account/notifications/address",
    "/api/account/notifications/address/remove",
    // Confirming a second address, from the link sent to it.
    "/account/notification-address/verify",
    "/account/notification-address/verified",
    "/api/account/notifications/address/verify",
];

/// Where the server functions answer.
const SERVER_FUNCTION_PREFIX: &str = "/api/";

/// Whether a session limited to MFA settings may use `path`.
fn still_open(path: &str) -> bool {
    STILL_OPEN.contains(&path)
}

/// Middleware (inside the session layer): refuses every route but [`STILL_OPEN`] to a
/// session limited to MFA settings. A request without a session (the site's files, the
/// health checks) or whose session is not limited goes on untouched.
pub async fn refuse_beyond_mfa_settings(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Kept small: this frame stays on the stack while the page below renders.
    let refused = Box::pin(refusal_for(
        &state,
        request.uri(),
        request.headers(),
        request.extensions().get(),
    ))
    .await;
    match refused {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// The refusal a request for `uri` gets, if its `session` is limited to MFA settings and its
/// route is not [`STILL_OPEN`].
async fn refusal_for(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    session: Option<&Session>,
) -> Option<Response> {
    let path = uri.path();
    if still_open(path) {
        return None;
    }
    match app::auth::limit_now(state, session?).await {
        Ok(None) => None,
        Ok(Some(limit)) => {
            tracing::info!(path, ?limit, "refused beyond MFA settings");
            Some(refusal(
                path,
                headers,
                app::auth::beyond_mfa_settings(limit),
            ))
        }
        // The session could not be read: nothing may go on unchecked.
        Err(error) => Some(refusal(path, headers, error)),
    }
}

/// How `error` reaches whoever asked for `path` (with `headers`), as its route would have
/// answered it: a server function's error for the hydrated app (the `AppError` as JSON) or
/// for a plain form (a redirect back to the form with the error in the address, as Leptos
/// does); a page or a download gets the message itself.
fn refusal(path: &str, headers: &HeaderMap, error: app::error::AppError) -> Response {
    let status =
        StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let accepts_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if path.starts_with(SERVER_FUNCTION_PREFIX) {
        if !accepts_html {
            return server_function_error(path, status, &error);
        }
        let back = headers
            .get(header::REFERER)
            .and_then(|referer| referer.to_str().ok())
            .and_then(|referer| {
                ServerFnUrlError::new(path, error.clone())
                    .to_url(referer)
                    .ok()
            })
            .and_then(|url| HeaderValue::from_str(url.as_str()).ok());
        if let Some(back) = back {
            return (StatusCode::FOUND, [(header::LOCATION, back)]).into_response();
        }
    }
    let message = error.to_string();
    if accepts_html {
        return (status, axum::response::Html(refusal_page(&message))).into_response();
    }
    (status, message).into_response()
}

/// The answer of a server function at `path` that failed with `error`, as the hydrated app
/// reads it: the error's status, and the error as JSON.
fn server_function_error(path: &str, status: StatusCode, error: &app::error::AppError) -> Response {
    let mut response = Response::new(Body::from(error.ser()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JsonEncoding::CONTENT_TYPE),
    );
    if let Ok(path) = HeaderValue::from_str(path) {
        headers.insert(SERVER_FN_ERROR_HEADER, path);
    }
    response
}

/// A page saying why a page was refused, with the way on: the member's backup codes.
fn refusal_page(message: &str) -> String {
    let message = html_escape::encode_safe(message);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Only your MFA settings · Lifeline</title></head>\
         <body><main><h1>Only your MFA settings for now</h1>\
         <p role=\"alert\">{message}</p>\
         <p><a href=\"/account/backup-codes\">Go to your backup codes</a> · \
         <a href=\"/account\">Your account</a></p></main></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mfa_settings_public_pages_and_sign_out_stay_open() {
        for open in [
            "/",
            "/sign-in/backup-code",
            "/api/sign_out",
            "/account/backup-codes",
            "/api/account/backup-codes/generate",
            "/api/account/mfa/confirm",
        ] {
            assert!(still_open(open), "{open}");
        }
        for closed in [
            "/admin/members",
            "/admin/audit/export",
            "/admin/policy/export",
            "/admin/recovery",
            "/admin/alerts",
            "/admin/webhooks",
            "/api/admin/webhooks",
            "/api/admin/webhooks/add",
            "/api/admin/webhooks/remove",
            "/api/members",
            "/api/admin/policy/save",
            "/account/backup-codes/",
            "/ACCOUNT",
            "/a-route-added-later",
        ] {
            assert!(!still_open(closed), "{closed}");
        }
    }

    #[test]
    fn the_refusal_page_escapes_its_message() {
        let page = refusal_page("<b>\"a\" & 'b'</b>");
        assert!(page.contains("&lt;b&gt;&quot;a&quot; &amp; &#x27;b&#x27;&lt;&#x2F;b&gt;"));
        assert!(!page.contains("<b>"));
    }
}
