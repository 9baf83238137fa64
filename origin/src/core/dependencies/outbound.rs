//! Outbound HTTP for applications: `GET` requests to URLs that users supply, through a circuit
//! breaker, bounded retries and a timeout per attempt, refusing private and loopback targets
//! (server-side request forgery) unless configuration allows them.
//!
//! Every address a host name resolves to is checked before connecting (the check sits in the
//! client's resolver, so a name cannot resolve to a public address for the check and a private
//! one for the connection), literal addresses are checked too, and so is every redirect.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Url};
use tracing::Instrument;

use crate::core::dependencies::breaker::CircuitBreaker;
use crate::core::dependencies::guarded::{Failure, Guard};
use crate::core::dependencies::retry::Retrier;
use crate::core::observability::telemetry;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// How outbound requests are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSettings {
    /// Bound on each attempt, connecting and reading included.
    pub timeout: Duration,
    /// Whether private, loopback and link-local targets are allowed (tests, internal tools).
    pub allow_private: bool,
    /// Most body bytes read; the rest is not downloaded.
    pub max_bytes: usize,
}

impl Default for OutboundSettings {
    /// 10 s per attempt, public addresses only, 512 KiB of body.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            allow_private: false,
            max_bytes: 512 << 10,
        }
    }
}

/// Why an outbound request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("not an http or https URL")]
    InvalidUrl,
    /// The target is a private, loopback or otherwise internal address.
    #[error("the target address is not public")]
    Forbidden,
    /// The outbound breaker is open.
    #[error("outbound requests are failing: circuit open")]
    CircuitOpen,
    /// An attempt took longer than the timeout.
    #[error("the target did not answer in time")]
    Timeout,
    /// The target could not be reached or broke off.
    #[error("the target could not be reached: {0}")]
    Unreachable(String),
    /// The target answered with a server error.
    #[error("the target answered {0}")]
    ServerError(u16),
}

impl OutboundError {
    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Unreachable(_) | Self::ServerError(502..=504)
        )
    }

    /// Whether the failure counts against the target's health (not the caller's mistake).
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Timeout | Self::Unreachable(_) | Self::ServerError(_)
        )
    }
}

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the last redirect led.
    pub url: Url,
    /// The status of the final response.
    pub status: u16,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Up to `max_bytes` of its body.
    pub body: Bytes,
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves names with the system resolver and drops the addresses that are not allowed.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A resolver or redirect refusal, recognised in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("the target address is not public")]
struct Refused;

/// Whether `url` may be requested: `http(s)`, and a literal address only when allowed.
fn check_url(url: &Url, allow_private: bool) -> Result<(), OutboundError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::InvalidUrl);
    }
    let literal = match url.host() {
        None => return Err(OutboundError::InvalidUrl),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => None,
    };
    match literal {
        Some(ip) if !allow_private && !is_public(ip) => Err(OutboundError::Forbidden),
        _ => Ok(()),
    }
}

/// The guarded client; cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    breaker: CircuitBreaker,
    retrier: Retrier,
    settings: OutboundSettings,
}

impl HttpClient {
    /// A client bounded by `settings`, guarded by `breaker`, retrying through `retrier`.
    pub fn new(settings: OutboundSettings, breaker: CircuitBreaker, retrier: Retrier) -> Self {
        let allow_private = settings.allow_private;
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if check_url(attempt.url(), allow_private).is_err() {
                attempt.error(Refused)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(redirects)
            .timeout(settings.timeout)
            .user_agent(concat!(
                "Rampart/",
                env!("CARGO_PKG_VERSION"),
                " (link preview)"
            ))
            .build()
            .unwrap_or_default();
        Self {
            client,
            breaker,
            retrier,
            settings,
        }
    }

    /// The breaker guarding these requests.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// `GET url`, retried when idempotent retries may help; client errors (`4xx`) are answers,
    /// not failures.
    pub async fn get(&self, url: &str) -> Result<Fetched, OutboundError> {
        let url = Url::parse(url).map_err(|_| OutboundError::InvalidUrl)?;
        check_url(&url, self.settings.allow_private)?;
        self.retrier
            .run(OutboundError::is_retryable, || self.attempt(url.clone()))
            .await
    }

    async fn attempt(&self, url: Url) -> Result<Fetched, OutboundError> {
        let guard = Guard {
            breaker: Some(self.breaker.clone()),
            timeout: self.settings.timeout,
        };
        let span = telemetry::outbound_span("GET", url.as_str());
        let fetch = self.fetch(url);
        let fetched = guard
            .call(fetch, OutboundError::is_failure, |_, _| {})
            .instrument(span.clone())
            .await;
        if let Ok(fetched) = &fetched {
            span.record("http.response.status_code", fetched.status);
        }
        match fetched {
            Ok(fetched) => Ok(fetched),
            Err(Failure::Error(error)) => Err(error),
            Err(Failure::Timeout(_)) => Err(OutboundError::Timeout),
            Err(Failure::CircuitOpen) => Err(OutboundError::CircuitOpen),
        }
    }

    async fn fetch(&self, url: Url) -> Result<Fetched, OutboundError> {
        let mut response = self.client.get(url).send().await.map_err(classify)?;
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            return Err(OutboundError::ServerError(status));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = BytesMut::new();
        while body.len() < self.settings.max_bytes {
            match response.chunk().await.map_err(classify)? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(self.settings.max_bytes);
        Ok(Fetched {
            url: response.url().clone(),
            status,
            content_type,
            body: body.freeze(),
        })
    }
}

/// The outbound error a client error stands for.
fn classify(error: reqwest::Error) -> OutboundError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause.is::<Refused>() {
            return OutboundError::Forbidden;
        }
        source = cause.source();
    }
    if error.is_timeout() {
        OutboundError::Timeout
    } else {
        OutboundError::Unreachable(error.without_url().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = internal.parse().expect("an address");
            assert!(!is_public(ip), "{internal} is internal");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().expect("an address")), "{public}");
        }
    }

    #[test]
    fn urls_must_be_http_and_literal_addresses_public() {
        let check = |url: &str| check_url(&Url::parse(url).expect("a URL"), false);
        assert!(check("https://example.com/page").is_ok());
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(OutboundError::InvalidUrl)
        ));
        assert!(matches!(
            check("http://127.0.0.1:8080/"),
            Err(OutboundError::Forbidden)
        ));
        assert!(matches!(
            check("http://[::1]/"),
            Err(OutboundError::Forbidden)
        ));
        let allowed = Url::parse("http://127.0.0.1/").expect("a URL");
        assert!(check_url(&allowed, true).is_ok());
    }
}
