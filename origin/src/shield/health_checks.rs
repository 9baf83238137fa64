//! Active health checks: with `UPSTREAM_HEALTH_PATH` set, each upstream is asked `GET <path>`
//! every `UPSTREAM_HEALTH_INTERVAL_MS`; a 2xx or 3xx within the connect and first-byte timeouts
//! keeps it in the running, anything else takes it out until a check passes again.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::connector::{connector, ConnectorError, UpstreamConnector};
use super::upstreams::Upstreams;
use crate::config::ShieldConfig;

/// Starts the checks when `config` names a path; they run until the handle is aborted.
pub fn spawn(
    upstreams: Arc<Upstreams>,
    config: &ShieldConfig,
) -> Result<Option<tokio::task::JoinHandle<()>>, ConnectorError> {
    let Some(path) = config.health_path.clone() else {
        return Ok(None);
    };
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector(config)?);
    let (interval, timeout) = (
        config.health_interval,
        config.connect_timeout + config.first_byte_timeout,
    );
    Ok(Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            for index in 0..upstreams.all().len() {
                let healthy = check(&client, &upstreams, index, &path, timeout).await;
                upstreams.checked(index, healthy);
            }
        }
    })))
}

async fn check(
    client: &Client<UpstreamConnector, Empty<bytes::Bytes>>,
    upstreams: &Upstreams,
    index: usize,
    path: &str,
    timeout: Duration,
) -> bool {
    let upstream = upstreams.get(index);
    let scheme = upstream.base.scheme_str().unwrap_or("http");
    let Ok(uri) = format!("{scheme}://{}{path}", upstream.authority).parse::<Uri>() else {
        return false;
    };
    let Ok(request) = Request::get(uri)
        .header(header::USER_AGENT, "rampart-shield-health-check")
        .body(Empty::new())
    else {
        return false;
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status();
            status.is_success() || status.is_redirection()
        }
        _ => false,
    }
}
