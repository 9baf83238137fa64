//! Proxy hygiene: what a request and a response lose and gain on their way through the shield.
//!
//! - Hop-by-hop fields (RFC 9110 §7.6.1: `Connection` and every field it names, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, and the proxy
//!   authentication fields) belong to one connection and are removed in both directions.
//! - `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` (RFC 7239) are
//!   extended when the peer is trusted (the edge's token, or a `TRUSTED_PROXIES` address), and
//!   replaced otherwise, so that a client cannot make the upstream believe another address.
//! - `Via` (RFC 9110 §7.6.3) names the shield in both directions.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::core::http::header_values::joined;

/// This hop in `Via`.
pub const VIA: &str = "1.1 rampart";

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop fields of `headers`, those `Connection` names first.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::try_from(token.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::PROXY_AUTHENTICATE);
}

/// Appends this hop to `Via`.
pub fn add_via(headers: &mut HeaderMap) {
    let via = match joined(headers, &header::VIA) {
        Some(earlier) => format!("{earlier}, {VIA}"),
        None => VIA.to_owned(),
    };
    if let Ok(value) = HeaderValue::from_str(&via) {
        headers.insert(header::VIA, value);
    }
}

/// Who sent the request, as the forwarding fields tell the upstream.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The client's address (the edge's `CF-Connecting-IP` when it came through the edge).
    pub client: IpAddr,
    /// Whether the peer is trusted to have set the forwarding fields it sent.
    pub trusted: bool,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
}

/// Sets the forwarding fields of a request about to go upstream.
pub fn set_forwarded(headers: &mut HeaderMap, hop: Hop<'_>) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let proto = HeaderName::from_static("x-forwarded-proto");
    let forwarded_host = HeaderName::from_static("x-forwarded-host");
    let client = hop.client.to_string();
    let earlier = joined;
    let (chain, forwarded) = if hop.trusted {
        (
            earlier(headers, &xff).map_or_else(|| client.clone(), |e| format!("{e}, {client}")),
            earlier(headers, &header::FORWARDED),
        )
    } else {
        (client.clone(), None)
    };
    let scheme = hop
        .trusted
        .then(|| headers.get(&proto).and_then(|v| v.to_str().ok()))
        .flatten()
        .filter(|scheme| matches!(*scheme, "http" | "https"))
        .unwrap_or("http")
        .to_owned();
    let host = hop
        .trusted
        .then(|| headers.get(&forwarded_host).and_then(|v| v.to_str().ok()))
        .flatten()
        .or(hop.host)
        .map(str::to_owned);
    let element = forwarded_element(hop.client, &scheme, host.as_deref());
    let forwarded = forwarded.map_or_else(|| element.clone(), |e| format!("{e}, {element}"));
    // Replaces `name`'s values; an empty value removes them.
    let mut set = |name: HeaderName, value: &str| {
        headers.remove(&name);
        if let Some(value) = HeaderValue::from_str(value)
            .ok()
            .filter(|_| !value.is_empty())
        {
            headers.insert(name, value);
        }
    };
    set(xff, &chain);
    set(proto, &scheme);
    set(forwarded_host, host.as_deref().unwrap_or_default());
    set(header::FORWARDED, &forwarded);
}

/// One `Forwarded` element: `for="[2001:db8::1]";proto=https;host=example.com`.
fn forwarded_element(client: IpAddr, scheme: &str, host: Option<&str>) -> String {
    let node = match client {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let mut element = format!("for={node};proto={scheme}");
    if let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"')) {
        element.push_str(";host=");
        element.push_str(&quoted_if_needed(host));
    }
    element
}

fn quoted_if_needed(value: &str) -> String {
    let token = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        value.to_owned()
    } else {
        format!("\"{value}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_fields_go_with_those_connection_names() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eDp5"),
            ("accept", "text/html"),
        ]);
        remove_hop_by_hop(&mut map);
        assert_eq!(map.len(), 1, "{map:?}");
        assert!(map.contains_key("accept"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_the_forwarded_address() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let hop = Hop {
            client: "192.0.2.7".parse().expect("ip"),
            trusted: false,
            host: Some("app.example"),
        };
        set_forwarded(&mut map, hop);
        assert_eq!(map["x-forwarded-for"], "192.0.2.7");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["x-forwarded-host"], "app.example");
        assert_eq!(
            map["forwarded"],
            "for=192.0.2.7;proto=http;host=app.example"
        );
    }

    #[test]
    fn a_trusted_peer_extends_the_chain() {
        let mut map = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4;proto=https"),
        ]);
        let hop = Hop {
            client: "2001:db8::1".parse().expect("ip"),
            trusted: true,
            host: Some("app.example:8443"),
        };
        set_forwarded(&mut map, hop);
        assert_eq!(map["x-forwarded-for"], "1.2.3.4, 2001:db8::1");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(
            map["forwarded"],
            "for=1.2.3.4;proto=https, for=\"[2001:db8::1]\";proto=https;host=\"app.example:8443\""
        );
    }

    #[test]
    fn via_names_every_hop() {
        let mut map = headers(&[("via", "1.1 edge")]);
        add_via(&mut map);
        assert_eq!(map["via"], "1.1 edge, 1.1 rampart");
        let mut empty = HeaderMap::new();
        add_via(&mut empty);
        assert_eq!(empty["via"], VIA);
    }
}
