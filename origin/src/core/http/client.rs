//! Who a request comes from, for rate limits and logs.
//!
//! The peer address is the client unless the request provably came through the edge: it
//! carries the edge's shared secret (`ORIGIN_AUTH_TOKEN`, compared in constant time), or the
//! peer is inside a trusted proxy range (`TRUSTED_PROXIES`). Only then does the edge-supplied
//! `CF-Connecting-IP` name the client. `X-Forwarded-For` is never read: anyone can write it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use ipnet::IpNet;

/// The header carrying the edge's shared secret (the edge sets it from the same secret).
pub const ORIGIN_AUTH_HEADER: &str = shared::security::ORIGIN_AUTH_HEADER;
/// The header in which the edge names the visitor's address.
pub const CONNECTING_IP: &str = "cf-connecting-ip";

/// What proves that a request came through the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeTrust {
    /// The shared secret the edge sends, if configured.
    pub token: Option<String>,
    /// Peers whose forwarding headers are believed.
    pub proxies: Vec<IpNet>,
}

impl EdgeTrust {
    /// Whether `request` came through the edge.
    pub fn from_edge(&self, request: &Request) -> bool {
        let token_matches = self.token.as_deref().is_some_and(|token| {
            request
                .headers()
                .get(ORIGIN_AUTH_HEADER)
                .is_some_and(|sent| constant_time_eq(sent.as_bytes(), token.as_bytes()))
        });
        token_matches
            || peer(request).is_some_and(|peer| self.proxies.iter().any(|net| net.contains(&peer)))
    }

    /// The client's address: the edge's `CF-Connecting-IP` when the request came through the
    /// edge, else the peer's.
    pub fn client_ip(&self, request: &Request) -> IpAddr {
        let peer = peer(request).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if !self.from_edge(request) {
            return peer;
        }
        request
            .headers()
            .get(CONNECTING_IP)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(peer)
    }
}

fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())
}

/// Compares secrets without revealing through timing how much of them matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a comma-separated CIDR list (`10.0.0.0/8, 2001:db8::/32`; a bare address is a /32
/// or /128).
pub fn parse_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{item}` is not an address or CIDR range"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(peer: &str, headers: &[(&'static str, &str)]) -> Request {
        let mut request = Request::new(Body::empty());
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("header value"));
        }
        let addr: SocketAddr = format!("{peer}:5000").parse().expect("address");
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    }

    #[test]
    fn forwarding_headers_count_only_from_the_edge() {
        let trust = EdgeTrust {
            token: Some("s3cret".into()),
            proxies: parse_proxies("10.0.0.0/8, 192.0.2.7").expect("valid"),
        };
        let spoofed = request(
            "203.0.113.9",
            &[
                ("cf-connecting-ip", "198.51.100.1"),
                ("x-forwarded-for", "198.51.100.2"),
            ],
        );
        assert_eq!(trust.client_ip(&spoofed).to_string(), "203.0.113.9");
        let wrong_token = request(
            "203.0.113.9",
            &[
                ("cf-connecting-ip", "198.51.100.1"),
                (ORIGIN_AUTH_HEADER, "guess"),
            ],
        );
        assert_eq!(trust.client_ip(&wrong_token).to_string(), "203.0.113.9");
        let with_token = request(
            "203.0.113.9",
            &[
                ("cf-connecting-ip", "198.51.100.1"),
                (ORIGIN_AUTH_HEADER, "s3cret"),
            ],
        );
        assert_eq!(trust.client_ip(&with_token).to_string(), "198.51.100.1");
        let from_proxy = request("10.1.2.3", &[("cf-connecting-ip", "2001:db8::1")]);
        assert_eq!(trust.client_ip(&from_proxy).to_string(), "2001:db8::1");
        let single = request("192.0.2.7", &[("cf-connecting-ip", "not an address")]);
        assert_eq!(trust.client_ip(&single).to_string(), "192.0.2.7");
        assert!(parse_proxies("10.0.0.0/33").is_err());
    }
}
