//! The address each request comes from, worked out once, here: the TCP peer, or, when the
//! peer is a trusted proxy (`LIFELINE_TRUSTED_PROXIES`), the client that the proxies'
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` header names. A layer puts it on the request
//! as [`ClientAddress`]; the throttle and the audit log (`app::auth::request_source`) read it.
//!
//! Anybody can send those headers, so they are believed only from a trusted peer, and only
//! as far as trusted proxies vouch for them: read from the right (each proxy appends the
//! address it received the request from), the first address that is not a trusted proxy is
//! the client. Everything to its left was written by the client itself. A header that cannot
//! be read, or a hop that is `unknown` or obfuscated where the client should be, gives the
//! peer's address: a shared bucket for the throttle is the safe side. So do both headers
//! naming different clients: a proxy that writes one of them passes the other on as the
//! client sent it, and which one the proxy wrote cannot be told.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use app::auth::ClientAddress;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, header},
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

/// `X-Forwarded-For`, the de-facto header most proxies write.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Believes the forwarding headers of peers in `networks` (none when empty).
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self {
            networks: networks.into(),
        }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let named = |name: &HeaderName, hops: fn(&str) -> Option<Vec<Option<IpAddr>>>| {
            headers.contains_key(name).then(|| {
                let hops = joined(headers, name).and_then(|value| hops(&value));
                hops.map_or(peer, |hops| self.client_of(peer, &hops))
            })
        };
        let by_forwarded = named(&header::FORWARDED, forwarded_for);
        let by_x_forwarded_for = named(&X_FORWARDED_FOR, x_forwarded_for);
        match (by_forwarded, by_x_forwarded_for) {
            (Some(client), None) | (None, Some(client)) => client,
            (Some(a), Some(b)) if a == b => a,
            // A proxy writes one of them and passes the other on as the client sent it (as
            // nginx does with `Forwarded`): when they disagree, neither can be believed.
            (Some(_), Some(_)) | (None, None) => peer,
        }
    }

    /// The client behind `hops` (left to right, as a forwarding header lists them) for a
    /// request from `peer`, a trusted proxy.
    fn client_of(&self, peer: IpAddr, hops: &[Option<IpAddr>]) -> IpAddr {
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.map(|address| address.to_canonical()) {
                Some(address) if self.trusts(address) => client = address,
                Some(address) => return address,
                // Nobody can say who is behind an unknown or obfuscated hop.
                None => return peer,
            }
        }
        // Every hop is a trusted proxy: the left-most is the furthest anyone can tell.
        client
    }
}

/// Puts the request's [`ClientAddress`] on it, for the layers and handlers inside.
pub async fn resolve_client_address(
    State(proxies): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(peer) = peer {
        let client = proxies.client_address(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// Every line of header `name`, joined with commas (which is what several lines mean); `None`
/// when one is not visible ASCII.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines = headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().ok())
        .collect::<Option<Vec<_>>>()?;
    Some(lines.join(","))
}

/// The `for=` of each element of a `Forwarded` value, left to right (`None` for an element
/// without one, or with `unknown` or an obfuscated name); `None` when the value is malformed.
fn forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    value
        .split(',')
        .map(|element| {
            let mut node = None;
            for pair in element.split(';').map(str::trim) {
                if pair.is_empty() {
                    continue;
                }
                let (name, value) = pair.split_once('=')?;
                if name.is_empty() || !name.bytes().all(is_token_char) {
                    return None;
                }
                if name.eq_ignore_ascii_case("for") {
                    // One `for` per element: a second one makes it ambiguous.
                    if node.is_some() {
                        return None;
                    }
                    node = Some(node_address(unquoted(value)?)?);
                }
            }
            Some(node.flatten())
        })
        .collect()
}

/// The addresses of an `X-Forwarded-For` value, left to right; `None` when it is malformed.
fn x_forwarded_for(value: &str) -> Option<Vec<Option<IpAddr>>> {
    value
        .split(',')
        .map(|hop| node_address(hop.trim()))
        .collect()
}

/// The text of a token or a quoted string (a node never needs an escape, so one is refused).
fn unquoted(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            (!inner.contains(['"', '\\'])).then_some(inner)
        }
        None => (!value.is_empty() && value.bytes().all(is_token_char)).then_some(value),
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711` (or a bare
/// IPv6 address, as `X-Forwarded-For` has them). `Some(None)` for `unknown` and obfuscated
/// names (`_hidden`), `None` for anything else.
fn node_address(node: &str) -> Option<Option<IpAddr>> {
    if node.eq_ignore_ascii_case("unknown") || node.starts_with('_') {
        return Some(None);
    }
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(Some(address));
    }
    let (host, port) = match node.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (IpAddr::V6(host.parse().ok()?), port)
        }
        None => {
            let (host, port) = node.split_once(':')?;
            (IpAddr::V4(host.parse().ok()?), Some(port))
        }
    };
    let port_is_valid = port.is_none_or(|port| {
        let number =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        let obfuscated = port.len() > 1 && port.starts_with('_') && port.bytes().all(is_token_char);
        number || obfuscated
    });
    port_is_valid.then_some(Some(host))
}

/// RFC 9110's `tchar`.
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5";

    fn client_behind_proxy(pairs: &[(&str, &str)]) -> IpAddr {
        proxies(&["10.0.0.0/8", "::1/128"]).client_address(ip(PROXY), &headers(pairs))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let claims = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        assert_eq!(
            proxies(&[]).client_address(ip("203.0.113.9"), &claims),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_address(ip("203.0.113.9"), &claims),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_address_that_is_not_a_proxy() {
        for (pairs, client) in [
            (vec![("x-forwarded-for", "198.51.100.7")], "198.51.100.7"),
            // The client wrote the left-most one itself.
            (
                vec![("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.9")],
                "198.51.100.7",
            ),
            (
                vec![
                    ("x-forwarded-for", "1.2.3.4"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                "198.51.100.7",
            ),
            (
                vec![("x-forwarded-for", "198.51.100.7:4711")],
                "198.51.100.7",
            ),
            (vec![("x-forwarded-for", "2001:db8::7")], "2001:db8::7"),
            (
                vec![("x-forwarded-for", "[2001:db8::7]:4711")],
                "2001:db8::7",
            ),
            (vec![("forwarded", "for=198.51.100.7")], "198.51.100.7"),
            (
                vec![(
                    "forwarded",
                    r#"for=1.2.3.4, For="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.5, for=10.0.0.9"#,
                )],
                "2001:db8:cafe::17",
            ),
            // Both headers, naming one client (a proxy that writes both).
            (
                vec![
                    ("forwarded", "for=198.51.100.7"),
                    ("x-forwarded-for", "203.0.113.1, 198.51.100.7"),
                ],
                "198.51.100.7",
            ),
            // An IPv4 address written as IPv6 is the IPv4 address.
            (
                vec![("x-forwarded-for", "::ffff:198.51.100.7")],
                "198.51.100.7",
            ),
            // Only proxies: the left-most is as far as anyone can tell.
            (vec![("x-forwarded-for", "10.1.1.1, 10.0.0.9")], "10.1.1.1"),
            // No header: the proxy itself.
            (vec![], PROXY),
            // An unknown hop left of the client does not matter.
            (
                vec![("forwarded", "for=unknown, for=198.51.100.7")],
                "198.51.100.7",
            ),
        ] {
            assert_eq!(client_behind_proxy(&pairs), ip(client), "{pairs:?}");
        }
    }

    #[test]
    fn a_header_that_cannot_be_read_gives_the_peer() {
        for pairs in [
            vec![("x-forwarded-for", "")],
            vec![("x-forwarded-for", "198.51.100.7,,1.2.3.4")],
            vec![("x-forwarded-for", "not an address")],
            vec![("x-forwarded-for", "198.51.100.7:port")],
            vec![("x-forwarded-for", "198.51.100.700")],
            vec![("forwarded", "198.51.100.7")],
            vec![("forwarded", "for=")],
            vec![("forwarded", "for=[2001:db8::1]")],
            vec![("forwarded", r#"for="198.51.100.7"#)],
            vec![("forwarded", r#"for="198.51\.100.7""#)],
            vec![("forwarded", "for=198.51.100.7;for=192.0.2.1")],
            vec![("forwarded", "for=example.com")],
            // A malformed Forwarded is not made up for by X-Forwarded-For.
            vec![
                ("forwarded", "nonsense"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            // The two headers disagree: one of them is the client's own.
            vec![
                ("forwarded", "for=192.0.2.1"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            // The client's hop is unknown, obfuscated or missing.
            vec![("forwarded", "for=198.51.100.7, for=unknown")],
            vec![("forwarded", "for=198.51.100.7, for=_hidden")],
            vec![("forwarded", "for=198.51.100.7, by=10.0.0.9")],
            vec![("x-forwarded-for", "unknown")],
        ] {
            assert_eq!(client_behind_proxy(&pairs), ip(PROXY), "{pairs:?}");
        }
    }

    #[test]
    fn nodes_are_read_as_rfc_7239_writes_them() {
        for (node, address) in [
            ("192.0.2.43", Some(Some("192.0.2.43"))),
            ("192.0.2.43:47011", Some(Some("192.0.2.43"))),
            ("192.0.2.43:_ob", Some(Some("192.0.2.43"))),
            ("[2001:db8:cafe::17]", Some(Some("2001:db8:cafe::17"))),
            ("[2001:db8:cafe::17]:4711", Some(Some("2001:db8:cafe::17"))),
            ("unknown", Some(None)),
            ("_gazonk", Some(None)),
            ("[192.0.2.43]", None),
            ("[2001:db8:cafe::17]4711", None),
            ("192.0.2.43:", None),
            ("192.0.2.43:123456", None),
            ("", None),
        ] {
            assert_eq!(node_address(node), address.map(|a| a.map(ip)), "{node:?}");
        }
    }
}
