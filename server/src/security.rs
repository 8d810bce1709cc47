//! Defences for people using Lifeline in a browser: state-changing requests sent from another
//! site are refused before any handler runs (CSRF), and every response carries security
//! headers, with a Content-Security-Policy whose nonce is new for each response and is the one
//! Leptos puts on the inline scripts of the page it renders.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::nonce::Nonce;

use crate::config::{Config, ConfigError};

/// What a refused cross-origin request is told.
const CROSS_ORIGIN_REFUSED: &str = "This request came from another website, so Lifeline refused \
     it and changed nothing. If you meant to do this, go to Lifeline and do it there.";

/// What is wrong with a `LIFELINE_PUBLIC_ORIGIN` that is not an origin.
const PUBLIC_ORIGIN_PROBLEM: &str =
    "must be an origin such as https://lifeline.example.com (scheme, host and port only, no path)";

/// Which origins may change state, and what the headers of every response say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSecurity {
    /// Served over HTTPS (`LIFELINE_SECURE_COOKIES`): the server's own origin is
    /// `https://<Host>`, and responses carry Strict-Transport-Security.
    https: bool,
    /// `LIFELINE_PUBLIC_ORIGIN`: the origin people reach Lifeline at, for a proxy in front that
    /// does not pass the browser's Host on. Normalized (`scheme://host[:port]`, lower case).
    public_origin: Option<String>,
    /// While `cargo leptos watch` runs: the port of its live-reload websocket, which the page
    /// must be allowed to connect to.
    live_reload_port: Option<u32>,
}

impl BrowserSecurity {
    /// Reads `LIFELINE_PUBLIC_ORIGIN` through `lookup` (the process environment in
    /// production) next to the already-read configuration; a bad value names the variable.
    pub fn from_lookup(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let public_origin = lookup("LIFELINE_PUBLIC_ORIGIN")
            .filter(|value| !value.trim().is_empty())
            .map(|value| {
                let value = value.trim();
                parse_origin(value.strip_suffix('/').unwrap_or(value)).ok_or_else(|| ConfigError {
                    variable: "LIFELINE_PUBLIC_ORIGIN",
                    problem: PUBLIC_ORIGIN_PROBLEM.into(),
                })
            })
            .transpose()?;
        Ok(Self {
            https: config.secure_cookies,
            public_origin,
            live_reload_port: None,
        })
    }

    /// Reads `LIFELINE_PUBLIC_ORIGIN` from the process environment.
    pub fn from_env(config: &Config) -> Result<Self, ConfigError> {
        Self::from_lookup(config, |variable| std::env::var(variable).ok())
    }

    /// Lets pages reach the live-reload websocket on `port` (under `cargo leptos watch`).
    pub fn with_live_reload(self, port: Option<u32>) -> Self {
        Self {
            live_reload_port: port,
            ..self
        }
    }

    /// Whether a request may go on to its handler: `Err` with the reason (for the log) when it
    /// is a state-changing request that a browser sent from another origin. `authority` is the
    /// request target's, which names the host in HTTP/2 requests instead of a Host header.
    fn check_origin(
        &self,
        method: &Method,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<(), &'static str> {
        // Reads only: nothing here changes state on GET, so a link from elsewhere is fine.
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            return Ok(());
        }
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());

        // The browser's own word, which no page can set: same-origin, or `none` for something
        // the person did themselves (the address bar, a bookmark). It also covers plain form
        // posts whose Origin a strict referrer policy turned into `null`.
        match text("sec-fetch-site") {
            Some("same-origin" | "none") => return Ok(()),
            // `same-site` is a sibling subdomain or another port: not us either.
            Some("same-site" | "cross-site") => return Err("Sec-Fetch-Site says another site"),
            _ => {}
        }
        let host = text("host").or(authority);
        let allowed = |origin: &str| self.is_own_origin(origin, host);
        if let Some(origin) = text("origin") {
            // `null` is an opaque origin (a sandboxed frame, a data: page, a redirect from
            // elsewhere): nothing that could be our own page.
            return match parse_origin(origin) {
                Some(origin) if allowed(&origin) => Ok(()),
                _ => Err("Origin is another site"),
            };
        }
        if let Some(referer) = text("referer") {
            return match referer_origin(referer) {
                Some(origin) if allowed(&origin) => Ok(()),
                _ => Err("Referer is another site"),
            };
        }
        if headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER) {
            return Err("Origin or Referer is not readable");
        }
        // With neither Origin nor Referer the request did not come from a page: browsers send
        // Origin with every cross-origin POST (and Sec-Fetch-Site besides), so a forged form or
        // fetch always shows where it came from. What sends neither is a program (curl, a
        // script, the test suite) holding its own cookie, which no other site can make a
        // victim's browser do; refusing it would break those clients and stop no attack.
        // The session cookie is also SameSite=Lax, so this check is the second line against
        // other sites, and the first against sibling subdomains, which Lax lets through.
        Ok(())
    }

    /// Whether `origin` (normalized) is this server's: the one the request's `host` names
    /// with our scheme, or the configured public origin.
    fn is_own_origin(&self, origin: &str, host: Option<&str>) -> bool {
        if self.public_origin.as_deref() == Some(origin) {
            return true;
        }
        let scheme = if self.https { "https" } else { "http" };
        host.and_then(|host| parse_origin(&format!("{scheme}://{host}")))
            .is_some_and(|own| own == origin)
    }

    /// The Content-Security-Policy for a response whose inline scripts carry `nonce`.
    fn content_security_policy(&self, nonce: &str) -> String {
        let live_reload = self
            .live_reload_port
            .map(|port| format!(" ws://*:{port}"))
            .unwrap_or_default();
        // 'wasm-unsafe-eval' lets the hydration bundle compile its WebAssembly, and nothing
        // else: no eval of JavaScript. The nonce admits Leptos's inline hydration and data
        // scripts (and any <Style>); the stylesheet and the bundle are same-origin files.
        // `data:` images are allowed; the code downloads are data: links, which are
        // navigations that no fetch directive governs.
        format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; \
             connect-src 'self'{live_reload}; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        )
    }

    /// Sets the security headers on a response whose page (if any) was rendered with `nonce`.
    fn apply_headers(&self, headers: &mut HeaderMap, nonce: &str) {
        // The nonce is URL-safe base64, so the value is always a valid header; should that
        // ever change, fall back to a policy that admits no inline script at all.
        let policy = HeaderValue::from_str(&self.content_security_policy(nonce))
            .unwrap_or_else(|_| HeaderValue::from_static(NO_INLINE_SCRIPT_POLICY));
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // `same-origin` rather than `no-referrer`: other sites still learn nothing, while our
        // own form posts keep their Referer and a real Origin. Under `no-referrer` browsers send
        // `Origin: null` on plain form posts, and Leptos sends a form post made without
        // JavaScript back to the page it came from by its Referer, which would be gone.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // Only over HTTPS: browsers ignore it on http://, and it must not pin a plain-HTTP
        // development server's host to HTTPS.
        if self.https {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            );
        }
    }
}

/// The policy used if a nonce could not be put in a header: every inline script is blocked.
const NO_INLINE_SCRIPT_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Middleware: refuses with 403 a state-changing request that a browser sent from another
/// origin, before any handler reads it, so that nothing is written.
pub async fn refuse_cross_origin_writes(
    State(security): State<Arc<BrowserSecurity>>,
    request: Request,
    next: Next,
) -> Response {
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str());
    match security.check_origin(request.method(), request.headers(), authority) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            let header_text = |name| {
                request
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("-")
                    .to_owned()
            };
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                origin = header_text(header::ORIGIN),
                referer = header_text(header::REFERER),
                sec_fetch_site = header_text(header::HeaderName::from_static("sec-fetch-site")),
                reason,
                "refused a cross-origin request"
            );
            (StatusCode::FORBIDDEN, CROSS_ORIGIN_REFUSED).into_response()
        }
    }
}

/// Middleware: chooses this response's CSP nonce, leaves it in the request for
/// [`provide_response_nonce`], and sets the security headers on whatever the response is.
pub async fn add_security_headers(
    State(security): State<Arc<BrowserSecurity>>,
    mut request: Request,
    next: Next,
) -> Response {
    // 128 random bits from a cryptographic generator, new for every response.
    let nonce = Nonce::new();
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    security.apply_headers(response.headers_mut(), &nonce);
    response
}

/// Hands Leptos the nonce [`add_security_headers`] chose for this response, in place of one of
/// its own, so that the inline scripts it renders match the CSP header. Call it in the
/// `additional_context` of every Leptos handler that renders a page.
pub fn provide_response_nonce() {
    use leptos::prelude::{provide_context, use_context};

    if let Some(nonce) = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Nonce>().cloned())
    {
        provide_context(nonce);
    }
}

/// `scheme://host[:port]` in lower case with the scheme's default port left out, when `text`
/// is an http or https origin and nothing else (no user, path, query or fragment).
fn parse_origin(text: &str) -> Option<String> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace())
    {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    // A port follows the last colon, unless that colon is inside an IPv6 address's brackets.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority.as_str(), None),
    };
    if host.is_empty() {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(port) if port == default_port => Some(format!("{scheme}://{host}")),
        Some(port) if !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok() => {
            Some(format!("{scheme}://{host}:{port}"))
        }
        Some(_) => None,
    }
}

/// The origin of a Referer URL: its scheme and authority.
fn referer_origin(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    parse_origin(&format!("{scheme}://{}", &rest[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(https: bool, public_origin: Option<&str>) -> BrowserSecurity {
        BrowserSecurity {
            https,
            public_origin: public_origin.map(str::to_owned),
            live_reload_port: None,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn origins_are_normalized_and_anything_else_is_not_an_origin() {
        for (text, expected) in [
            ("http://127.0.0.1:3000", Some("http://127.0.0.1:3000")),
            ("HTTPS://Lifeline.Example", Some("https://lifeline.example")),
            (
                "https://lifeline.example:443",
                Some("https://lifeline.example"),
            ),
            (
                "http://lifeline.example:80",
                Some("http://lifeline.example"),
            ),
            (
                "http://lifeline.example:443",
                Some("http://lifeline.example:443"),
            ),
            ("http://[::1]:3000", Some("http://[::1]:3000")),
            ("http://[::1]", Some("http://[::1]")),
            ("null", None),
            ("ftp://lifeline.example", None),
            ("https://lifeline.example/path", None),
            ("https://user@lifeline.example", None),
            ("https://", None),
            ("https://lifeline.example:", None),
            ("https://lifeline.example:99999", None),
            ("https://:3000", None),
        ] {
            assert_eq!(parse_origin(text).as_deref(), expected, "{text}");
        }
        assert_eq!(
            referer_origin("http://127.0.0.1:3000/admin/members?q=a#x").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            referer_origin("https://evil.example?http://127.0.0.1:3000/").as_deref(),
            Some("https://evil.example")
        );
    }

    #[test]
    fn state_changing_requests_from_elsewhere_are_refused_and_reads_are_not() {
        let http = security(false, None);
        let host = ("host", "127.0.0.1:3000");
        let post = Method::POST;
        // (headers, allowed?)
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[host, ("origin", "http://127.0.0.1:3000")], true),
            (&[host, ("origin", "https://evil.example")], false),
            (&[host, ("origin", "https://127.0.0.1:3000")], false),
            (&[host, ("origin", "http://127.0.0.1:3001")], false),
            (&[host, ("origin", "null")], false),
            (&[host, ("referer", "http://127.0.0.1:3000/admin")], true),
            (&[host, ("referer", "https://evil.example/x")], false),
            (&[host, ("referer", "not a url")], false),
            (&[host, ("sec-fetch-site", "cross-site")], false),
            (&[host, ("sec-fetch-site", "same-site")], false),
            (
                &[host, ("sec-fetch-site", "same-origin"), ("origin", "null")],
                true,
            ),
            // A right Origin does not outweigh the browser saying the page was elsewhere.
            (
                &[
                    host,
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "http://127.0.0.1:3000"),
                ],
                false,
            ),
            // A non-browser client: neither Origin nor Referer.
            (&[host], true),
        ];
        for (pairs, allowed) in cases {
            let headers = headers(pairs);
            assert_eq!(
                http.check_origin(&post, &headers, None).is_ok(),
                *allowed,
                "{pairs:?}"
            );
            for method in [Method::PUT, Method::PATCH, Method::DELETE] {
                assert_eq!(http.check_origin(&method, &headers, None).is_ok(), *allowed);
            }
            assert!(http.check_origin(&Method::GET, &headers, None).is_ok());
        }
        // HTTP/2 names the host in the request target, not in a Host header.
        let no_host = headers(&[("origin", "http://127.0.0.1:3000")]);
        assert!(
            http.check_origin(&post, &no_host, Some("127.0.0.1:3000"))
                .is_ok()
        );
        assert!(http.check_origin(&post, &no_host, None).is_err());
    }

    #[test]
    fn behind_https_and_a_proxy_the_configured_origins_are_ours() {
        let https = security(true, Some("https://lifeline.example"));
        let post = Method::POST;
        let from = |origin| headers(&[("host", "lifeline.example"), ("origin", origin)]);
        assert!(
            https
                .check_origin(&post, &from("https://lifeline.example"), None)
                .is_ok()
        );
        assert!(
            https
                .check_origin(&post, &from("http://lifeline.example"), None)
                .is_err()
        );
        let proxied = headers(&[
            ("host", "127.0.0.1:3000"),
            ("origin", "https://lifeline.example"),
        ]);
        assert!(https.check_origin(&post, &proxied, None).is_ok());
    }

    #[test]
    fn the_public_origin_is_validated_and_named_when_wrong() {
        let config = Config::from_lookup(|_| None).unwrap();
        let read = |value: &'static str| {
            BrowserSecurity::from_lookup(&config, move |variable| {
                (variable == "LIFELINE_PUBLIC_ORIGIN").then(|| value.to_owned())
            })
        };
        assert_eq!(
            read("https://Lifeline.Example/").unwrap().public_origin,
            Some("https://lifeline.example".to_owned())
        );
        assert_eq!(read("  ").unwrap().public_origin, None);
        for bad in ["lifeline.example", "https://lifeline.example/app", "ws://x"] {
            let error = read(bad).unwrap_err();
            assert!(
                error.to_string().starts_with("LIFELINE_PUBLIC_ORIGIN "),
                "{error}"
            );
        }
    }

    #[test]
    fn headers_carry_the_nonce_and_hsts_only_over_https() {
        let mut plain = HeaderMap::new();
        security(false, None).apply_headers(&mut plain, "abc_-123");
        let policy = plain[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("script-src 'self' 'nonce-abc_-123' 'wasm-unsafe-eval'"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(plain[header::X_FRAME_OPTIONS], "DENY");
        assert!(!plain.contains_key(header::STRICT_TRANSPORT_SECURITY));

        let mut secure = HeaderMap::new();
        security(true, None).apply_headers(&mut secure, "n");
        assert_eq!(
            secure[header::STRICT_TRANSPORT_SECURITY],
            "max-age=63072000; includeSubDomains"
        );
    }
}
