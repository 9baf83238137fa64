//! Shield mode: the upstream HTTP applications the origin proxies to instead of serving its
//! own, how it picks one, and how long each phase of an upstream exchange may take.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::Uri;
use shared::policy::Policy;

use super::read;
use super::{ConfigError, Problem, Range};

/// `UPSTREAM_URL`: comma-separated `http://` or `https://` base URLs; set, the origin runs as a
/// shield in front of them (as `origin shield --upstream …` does).
pub const ENV_UPSTREAM_URL: &str = "UPSTREAM_URL";
/// `UPSTREAM_BALANCE`: `round-robin` or `least-loaded`.
pub const ENV_UPSTREAM_BALANCE: &str = "UPSTREAM_BALANCE";
/// `UPSTREAM_CONNECT_TIMEOUT_MS`: bound on opening a connection to an upstream.
pub const ENV_UPSTREAM_CONNECT_TIMEOUT_MS: &str = "UPSTREAM_CONNECT_TIMEOUT_MS";
/// `UPSTREAM_FIRST_BYTE_TIMEOUT_MS`: bound on waiting for an upstream's response head.
pub const ENV_UPSTREAM_FIRST_BYTE_TIMEOUT_MS: &str = "UPSTREAM_FIRST_BYTE_TIMEOUT_MS";
/// `UPSTREAM_IDLE_TIMEOUT_MS`: longest silence within an upstream's response body.
pub const ENV_UPSTREAM_IDLE_TIMEOUT_MS: &str = "UPSTREAM_IDLE_TIMEOUT_MS";
/// `UPSTREAM_HEALTH_PATH`: path each upstream is asked every interval; unset, upstreams are
/// judged by the requests they fail alone.
pub const ENV_UPSTREAM_HEALTH_PATH: &str = "UPSTREAM_HEALTH_PATH";
/// `UPSTREAM_HEALTH_INTERVAL_MS`: time between two health checks of one upstream.
pub const ENV_UPSTREAM_HEALTH_INTERVAL_MS: &str = "UPSTREAM_HEALTH_INTERVAL_MS";
/// `UPSTREAM_TLS_CA_FILE`: PEM file of CAs trusted for `https://` upstreams, beside Mozilla's
/// roots.
pub const ENV_UPSTREAM_TLS_CA_FILE: &str = "UPSTREAM_TLS_CA_FILE";
/// `SHIELD_POLICY_FILE`: a policy file (TOML) replacing the shield's own,
/// `shared/shield-policy.toml`, read at start.
pub const ENV_SHIELD_POLICY_FILE: &str = "SHIELD_POLICY_FILE";

/// Every variable this concern reads.
pub const VARIABLES: &[&str] = &[
    ENV_UPSTREAM_URL,
    ENV_UPSTREAM_BALANCE,
    ENV_UPSTREAM_CONNECT_TIMEOUT_MS,
    ENV_UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
    ENV_UPSTREAM_IDLE_TIMEOUT_MS,
    ENV_UPSTREAM_HEALTH_PATH,
    ENV_UPSTREAM_HEALTH_INTERVAL_MS,
    ENV_UPSTREAM_TLS_CA_FILE,
    ENV_SHIELD_POLICY_FILE,
];

/// From 1 ms to 10 minutes.
pub const UPSTREAM_TIMEOUT_MS: Range = Range::new(1, 600_000);
/// From 100 ms to an hour.
pub const UPSTREAM_HEALTH_INTERVAL_MS: Range = Range::new(100, 3_600_000);
/// What `UPSTREAM_URL` accepts.
pub const UPSTREAM_URL: &str = "comma-separated http:// or https:// base URLs without a path, \
     such as http://127.0.0.1:3000,https://app.internal";
/// What `UPSTREAM_HEALTH_PATH` accepts.
pub const UPSTREAM_HEALTH_PATH: &str = "a path starting with /, such as /healthz";
/// The words `UPSTREAM_BALANCE` accepts.
pub const BALANCE_WORDS: &[&str] = &["round-robin", "least-loaded"];

/// How the shield picks an upstream for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Each in turn.
    #[default]
    RoundRobin,
    /// The one with the fewest requests in flight (ties in turn).
    LeastLoaded,
}

/// Shield mode's settings; `upstreams` empty means the origin serves its own application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldConfig {
    /// The upstreams' base URLs (`http://host:port`, `https://host:port`).
    pub upstreams: Vec<Uri>,
    /// How one is picked.
    pub balance: Balance,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
    /// Bound on waiting for the response head once the request is sent.
    pub first_byte_timeout: Duration,
    /// Longest silence between two pieces of a response body.
    pub idle_timeout: Duration,
    /// Path of the active health check, if any.
    pub health_path: Option<String>,
    /// Time between two health checks.
    pub health_interval: Duration,
    /// CAs trusted for `https://` upstreams beside Mozilla's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// The policy replacing the shield's own, read from `SHIELD_POLICY_FILE`.
    pub policy: Option<Policy>,
}

impl Default for ShieldConfig {
    /// No upstream; connect within 2 s, a head within 30 s, no body silence over 60 s (as
    /// nginx's `proxy_read_timeout`), health checks every 5 s once a path is set.
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            balance: Balance::RoundRobin,
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            health_path: None,
            health_interval: Duration::from_secs(5),
            tls_ca_file: None,
            policy: None,
        }
    }
}

impl ShieldConfig {
    /// Reads this concern's variables from `source`; unset ones keep their defaults.
    pub fn from_source(source: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let upstreams = match read::trimmed(source, ENV_UPSTREAM_URL) {
            Some(text) => parse_upstreams(&text)
                .map_err(|_| read::malformed(ENV_UPSTREAM_URL, &text, UPSTREAM_URL))?,
            None => Vec::new(),
        };
        let balance = read::choice(
            source,
            ENV_UPSTREAM_BALANCE,
            BALANCE_WORDS,
            |word| match word {
                "round-robin" => Some(Balance::RoundRobin),
                "least-loaded" => Some(Balance::LeastLoaded),
                _ => None,
            },
        )?;
        let timeout = |variable, default| -> Result<Duration, ConfigError> {
            Ok(read::millis(source, variable, UPSTREAM_TIMEOUT_MS)?.unwrap_or(default))
        };
        let health_path = read::trimmed(source, ENV_UPSTREAM_HEALTH_PATH)
            .map(|path| {
                if path.starts_with('/') && path.parse::<Uri>().is_ok() {
                    Ok(path)
                } else {
                    Err(read::malformed(
                        ENV_UPSTREAM_HEALTH_PATH,
                        &path,
                        UPSTREAM_HEALTH_PATH,
                    ))
                }
            })
            .transpose()?;
        let config = Self {
            upstreams,
            balance: balance.unwrap_or(defaults.balance),
            connect_timeout: timeout(ENV_UPSTREAM_CONNECT_TIMEOUT_MS, defaults.connect_timeout)?,
            first_byte_timeout: timeout(
                ENV_UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
                defaults.first_byte_timeout,
            )?,
            idle_timeout: timeout(ENV_UPSTREAM_IDLE_TIMEOUT_MS, defaults.idle_timeout)?,
            health_path,
            health_interval: read::millis(
                source,
                ENV_UPSTREAM_HEALTH_INTERVAL_MS,
                UPSTREAM_HEALTH_INTERVAL_MS,
            )?
            .unwrap_or(defaults.health_interval),
            tls_ca_file: read::trimmed(source, ENV_UPSTREAM_TLS_CA_FILE).map(PathBuf::from),
            policy: read::trimmed(source, ENV_SHIELD_POLICY_FILE)
                .map(|path| policy_file(Path::new(&path)))
                .transpose()?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Whether the origin runs as a shield.
    pub fn enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Checks every value against what its variable accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for upstream in &self.upstreams {
            let text = upstream.to_string();
            if parse_upstream(&text).is_err() {
                return Err(read::malformed(ENV_UPSTREAM_URL, &text, UPSTREAM_URL));
            }
        }
        for (variable, value) in [
            (ENV_UPSTREAM_CONNECT_TIMEOUT_MS, self.connect_timeout),
            (ENV_UPSTREAM_FIRST_BYTE_TIMEOUT_MS, self.first_byte_timeout),
            (ENV_UPSTREAM_IDLE_TIMEOUT_MS, self.idle_timeout),
        ] {
            UPSTREAM_TIMEOUT_MS.check_millis(variable, value)?;
        }
        if let Some(path) = &self.tls_ca_file {
            if let Err(error) = crate::shield::connector::ca_certificates(path) {
                return Err(ConfigError::new(
                    ENV_UPSTREAM_TLS_CA_FILE,
                    path.display().to_string(),
                    Problem::Unusable {
                        expected: "a readable PEM file of CA certificates",
                        reason: error.to_string(),
                    },
                ));
            }
        }
        UPSTREAM_HEALTH_INTERVAL_MS
            .check_millis(ENV_UPSTREAM_HEALTH_INTERVAL_MS, self.health_interval)
    }
}

/// The policy in the file at `path`.
fn policy_file(path: &Path) -> Result<Policy, ConfigError> {
    let refused = |reason: String| {
        ConfigError::new(
            ENV_SHIELD_POLICY_FILE,
            path.display().to_string(),
            Problem::Unusable {
                expected: "a readable policy file in TOML, as shared/shield-policy.toml",
                reason,
            },
        )
    };
    let text = std::fs::read_to_string(path).map_err(|error| refused(error.to_string()))?;
    Policy::from_toml(&text).map_err(|error| refused(error.to_string()))
}

/// The upstreams of a comma-separated list.
pub fn parse_upstreams(text: &str) -> Result<Vec<Uri>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_upstream)
        .collect()
}

/// One upstream base URL: `http://host[:port]` or `https://host[:port]`, with no path beyond
/// `/`, no query and no credentials.
pub fn parse_upstream(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.parse().map_err(|_| format!("{text}: not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "{text}: only http:// and https:// upstreams are spoken"
        ));
    }
    let authority = uri.authority().ok_or_else(|| format!("{text}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{text}: credentials in the URL"));
    }
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if path != "/" {
        return Err(format!("{text}: a base URL has no path or query"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_http_or_https_base_urls() {
        let parsed = parse_upstreams("http://127.0.0.1:3000, https://app.internal").expect("ok");
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[1].authority().map(|a| a.as_str()),
            Some("app.internal")
        );
        for bad in [
            "ftp://a.example",
            "http://a.example/api",
            "http://user:pw@a.example",
            "http://a.example/?x=1",
            "not a url",
            "127.0.0.1:3000",
        ] {
            assert!(parse_upstream(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_are_read_and_checked() {
        let source = |name: &str| match name {
            ENV_UPSTREAM_URL => Some("http://127.0.0.1:3000,http://127.0.0.1:3001".to_owned()),
            ENV_UPSTREAM_BALANCE => Some("least-loaded".to_owned()),
            ENV_UPSTREAM_HEALTH_PATH => Some("/healthz".to_owned()),
            ENV_UPSTREAM_FIRST_BYTE_TIMEOUT_MS => Some("1500".to_owned()),
            _ => None,
        };
        let config = ShieldConfig::from_source(&source).expect("valid");
        assert!(config.enabled());
        assert_eq!(config.balance, Balance::LeastLoaded);
        assert_eq!(config.first_byte_timeout, Duration::from_millis(1500));
        assert_eq!(config.health_path.as_deref(), Some("/healthz"));

        let refused = |name: &'static str, value: &'static str| {
            let source = move |asked: &str| (asked == name).then(|| value.to_owned());
            ShieldConfig::from_source(&source)
                .expect_err(value)
                .variable
        };
        assert_eq!(refused(ENV_UPSTREAM_URL, "ws://x"), ENV_UPSTREAM_URL);
        assert_eq!(
            refused(ENV_UPSTREAM_TLS_CA_FILE, "/nonexistent/ca.pem"),
            ENV_UPSTREAM_TLS_CA_FILE
        );
        assert_eq!(
            refused(ENV_UPSTREAM_BALANCE, "random"),
            ENV_UPSTREAM_BALANCE
        );
        assert_eq!(
            refused(ENV_UPSTREAM_HEALTH_PATH, "healthz"),
            ENV_UPSTREAM_HEALTH_PATH
        );
        assert_eq!(
            refused(ENV_UPSTREAM_IDLE_TIMEOUT_MS, "0"),
            ENV_UPSTREAM_IDLE_TIMEOUT_MS
        );
        assert!(!ShieldConfig::default().enabled());
    }
}
