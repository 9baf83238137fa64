//! The parts of a request URL that keys and forwarding use: the authority (`host[:port]`) and
//! the target (path and query).

use worker::Url;

/// `host` or `host:port`; `None` for a URL without a host.
pub fn authority(url: &Url) -> Option<String> {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => Some(format!("{host}:{port}")),
        (Some(host), None) => Some(host.to_owned()),
        (None, _) => None,
    }
}

/// The path with its query, if any.
pub fn target(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}
