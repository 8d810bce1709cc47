//! Pages show only the errors Lifeline sent: a server function's error in a page's address
//! (`?__path=…&__err=…`) is shown only when this server put it there for this browser.
//!
//! A plain form's post (no JavaScript) to a server function that fails is answered, by
//! Leptos, with a redirect back to the form's page with the error in the address; every page
//! reads it from there and shows it in its alert banner. Anyone can write such an address,
//! so a link could otherwise make Lifeline's page say an attacker's sentence. This layer
//! remembers in the session the one error each such redirect carries, and a page request
//! whose address carries an error goes on only when it is that error, which it uses up
//! (shown once). Any other is dropped from the address before anything reads it: a `GET` is
//! sent to the same address without it, so the browser's address no longer has it either.

use axum::{
    extract::Request,
    http::{HeaderValue, Method, Uri, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use app::{FORM_ERROR, FORM_ERROR_PATH, without_form_error};

/// The session key of the last error sent in an address, until a page shows it.
const SENT_ERROR: &str = "form_error.sent";

/// A server function's error as an address carries it: which function, and its encoded
/// error, exactly as written in the address (decoded from its percent-encoding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ErrorInAddress {
    path: String,
    error: String,
}

impl ErrorInAddress {
    /// The error in `query` (an address's query string), when it has either parameter. A
    /// parameter given twice, or only one of the two, is no error this server sent.
    fn in_query(query: &str) -> Option<Result<Self, Unrecognized>> {
        let mut path = Vec::new();
        let mut error = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                FORM_ERROR_PATH => path.push(value.into_owned()),
                FORM_ERROR => error.push(value.into_owned()),
                _ => {}
            }
        }
        if path.is_empty() && error.is_empty() {
            return None;
        }
        Some(
            match (
                <[String; 1]>::try_from(path),
                <[String; 1]>::try_from(error),
            ) {
                (Ok([path]), Ok([error])) => Ok(Self { path, error }),
                _ => Err(Unrecognized),
            },
        )
    }

    /// The newest error in `query`: the last of each parameter. (Leptos adds a failed
    /// post's error to the address of the page it came from, which may still carry the one
    /// before.)
    fn newest_in_query(query: &str) -> Option<Self> {
        let (mut path, mut error) = (None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                FORM_ERROR_PATH => path = Some(value.into_owned()),
                FORM_ERROR => error = Some(value.into_owned()),
                _ => {}
            }
        }
        Some(Self {
            path: path?,
            error: error?,
        })
    }

    /// `self` as an address's query parameters.
    fn to_query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair(FORM_ERROR_PATH, &self.path)
            .append_pair(FORM_ERROR, &self.error)
            .finish()
    }
}

/// A redirect's `location` (a path, or an absolute address) with its newest error as the
/// only one, and that error; `None` when it carries none.
fn location_with_newest_error(location: &str) -> Option<(String, ErrorInAddress)> {
    let (base, rest) = location.split_once('?')?;
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    let newest = ErrorInAddress::newest_in_query(query)?;
    let others = without_form_error(query);
    let mut location = format!("{base}?");
    if !others.is_empty() {
        location.push_str(&others);
        location.push('&');
    }
    location.push_str(&newest.to_query());
    if let Some(fragment) = fragment {
        location.push('#');
        location.push_str(fragment);
    }
    Some((location, newest))
}

/// An address with error parameters that do not make one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unrecognized;

/// `uri`'s path and query, without the error parameters: a path on this site (`/` for one
/// that a browser could read as another site's, like `//evil.example`).
fn address_without_error(uri: &Uri) -> String {
    let path = uri.path();
    let path = if path.starts_with("//") || path.contains('\\') {
        "/"
    } else {
        path
    };
    let query = uri.query().map(without_form_error).unwrap_or_default();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Whether `session` holds `shown` as the last error sent; if so it is used up.
async fn sent_here(session: &Session, shown: &ErrorInAddress) -> bool {
    match session.get::<ErrorInAddress>(SENT_ERROR).await {
        Ok(Some(sent)) if sent == *shown => {
            if let Err(error) = session.remove_value(SENT_ERROR).await {
                tracing::warn!(%error, "forgetting a form error once shown");
            }
            true
        }
        Ok(_) => false,
        Err(error) => {
            tracing::warn!(%error, "reading the form error sent");
            false
        }
    }
}

/// Middleware (inside the session layer): lets an error in a request's address through only
/// when this server sent it to this session, and remembers each error a response sends in
/// an address. See the module's documentation.
pub async fn only_errors_lifeline_sent(request: Request, next: Next) -> Response {
    // Kept small: this frame stays on the stack while the page below renders.
    let session = request.extensions().get::<Session>().cloned();
    match admit(request, session.as_ref()).await {
        Ok(request) => remember_sent(session.as_ref(), next.run(request).await).await,
        Err(elsewhere) => elsewhere,
    }
}

/// `request` as it may go on (without an error in its address that this server did not
/// send to `session`), or the redirect that drops that error from the browser's address.
async fn admit(mut request: Request, session: Option<&Session>) -> Result<Request, Response> {
    let Some(in_address) = request.uri().query().and_then(ErrorInAddress::in_query) else {
        return Ok(request);
    };
    let ours = match (&in_address, session) {
        (Ok(shown), Some(session)) => sent_here(session, shown).await,
        _ => false,
    };
    if ours {
        return Ok(request);
    }
    let clean = address_without_error(request.uri());
    tracing::info!(
        path = request.uri().path(),
        "dropped an error from an address"
    );
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(Redirect::to(&clean).into_response());
    }
    // Another method cannot be sent elsewhere unchanged: it goes on without them.
    match clean.parse::<Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            Ok(request)
        }
        Err(_) => Err(Redirect::to(request.uri().path()).into_response()),
    }
}

/// `response`, with the newest error its redirect carries (if any) as the only one, which
/// `session` remembers as sent.
async fn remember_sent(session: Option<&Session>, mut response: Response) -> Response {
    let sent = response
        .headers()
        .get(header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(location_with_newest_error);
    if let (Some(session), Some((location, sent))) = (session, sent) {
        match HeaderValue::from_str(&location) {
            Ok(location) => {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Err(error) => tracing::warn!(%error, "an error's address"),
        }
        if let Err(error) = session.insert(SENT_ERROR, sent).await {
            tracing::warn!(%error, "remembering a form error sent");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_read_from_an_address_however_its_names_are_encoded() {
        let error = |query: &str| ErrorInAddress::in_query(query).map(|found| found.ok());
        assert_eq!(error("q=a&after=3"), None);
        assert_eq!(
            error("q=a&__path=%2Fapi%2Fmembers%2Fadd&__err=eyJ9"),
            Some(Some(ErrorInAddress {
                path: "/api/members/add".into(),
                error: "eyJ9".into()
            }))
        );
        assert_eq!(
            error("%5F%5Fpath=/api/x&%5f_err=abc"),
            Some(Some(ErrorInAddress {
                path: "/api/x".into(),
                error: "abc".into()
            }))
        );
        // Half an error, or one given twice, is none this server sent.
        assert_eq!(error("__err=abc"), Some(None));
        assert_eq!(error("__path=/api/x&__err=a&__err=b"), Some(None));
    }

    #[test]
    fn dropping_the_error_keeps_every_other_parameter_as_written() {
        let uri: Uri = "/admin/members?q=a%20b&__path=%2Fapi&%5F%5Ferr=x&after=3"
            .parse()
            .unwrap();
        assert_eq!(
            address_without_error(&uri),
            "/admin/members?q=a%20b&after=3"
        );
        let uri: Uri = "/account?__err=x&__path=y".parse().unwrap();
        assert_eq!(address_without_error(&uri), "/account");
    }

    #[test]
    fn a_redirect_keeps_only_its_newest_error() {
        let (location, newest) = location_with_newest_error(
            "http://127.0.0.1:3000/admin/members?q=a&__path=%2Fapi%2Fold&__err=b2xk\
             &__path=%2Fapi%2Fmembers&__err=eyJ9",
        )
        .unwrap();
        assert_eq!(
            newest,
            ErrorInAddress {
                path: "/api/members".into(),
                error: "eyJ9".into()
            }
        );
        assert_eq!(
            location,
            "http://127.0.0.1:3000/admin/members?q=a&__path=%2Fapi%2Fmembers&__err=eyJ9"
        );
        assert_eq!(
            ErrorInAddress::in_query(location.split_once('?').unwrap().1),
            Some(Ok(newest))
        );
        assert!(location_with_newest_error("/account").is_none());
        assert!(location_with_newest_error("/account?saved=3").is_none());
    }

    #[test]
    fn an_address_without_its_error_stays_on_this_site() {
        for (address, clean) in [
            ("//evil.example/x?__err=a", "/"),
            (
                "/admin/audit?__err=a&from=2026-01-01",
                "/admin/audit?from=2026-01-01",
            ),
        ] {
            let uri: Uri = address.parse().unwrap();
            assert_eq!(address_without_error(&uri), clean, "{address}");
        }
    }
}
