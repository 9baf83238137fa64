//! What every case uses: the cache under test (the edge or the shield) and the origins, a
//! client, and small assertions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rampart_tests::test_origin::{Reply, TestOrigin};

/// One case's outcome: `Err` says what went wrong.
pub(crate) type Outcome = Result<(), String>;
pub(crate) type Case = fn(Arc<Ctx>) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What every case uses.
pub(crate) struct Ctx {
    /// The base URL of the cache under test.
    pub(crate) cache: String,
    pub(crate) origin: TestOrigin,
    /// A second origin the cache must never reach.
    pub(crate) elsewhere: TestOrigin,
    pub(crate) client: reqwest::Client,
}

/// A response as a case sees it.
#[derive(Debug)]
pub(crate) struct Got {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    pub(crate) fn cache_status(&self) -> String {
        self.header("cache-status").unwrap_or_default()
    }
}

impl Ctx {
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Got, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.client.request(method, format!("{}{path}", self.cache));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{path}: request failed: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|e| {
            let status_line = headers.get("cache-status").and_then(|v| v.to_str().ok());
            format!("{path}: {status}, Cache-Status {status_line:?}: body failed: {e:?}")
        })?;
        Ok(Got {
            status,
            headers,
            body,
        })
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Got, String> {
        self.send("GET", path, headers, None).await
    }

    /// How many requests the origin has had for `path`.
    pub(crate) fn count(&self, path: &str) -> usize {
        self.origin.count(path)
    }
}

pub(crate) fn http_date(offset_seconds: i64) -> String {
    let now = SystemTime::now();
    let time = if offset_seconds >= 0 {
        now + Duration::from_secs(offset_seconds as u64)
    } else {
        now - Duration::from_secs(offset_seconds.unsigned_abs())
    };
    httpdate::fmt_http_date(time)
}

pub(crate) fn expect(condition: bool, what: impl Into<String>) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(what.into())
    }
}

pub(crate) fn expect_eq<T: PartialEq + std::fmt::Debug>(
    actual: T,
    expected: T,
    what: &str,
) -> Outcome {
    expect(
        actual == expected,
        format!("{what}: expected {expected:?}, got {actual:?}"),
    )
}

/// Two GETs of a scripted path; the origin's request count after them.
pub(crate) async fn fetched_twice(
    c: &Ctx,
    path: &str,
    reply: Reply,
    pause: Duration,
) -> Result<usize, String> {
    c.origin.script(path, vec![reply]);
    c.get(path, &[]).await?;
    tokio::time::sleep(pause).await;
    c.get(path, &[]).await?;
    Ok(c.count(path))
}

pub(crate) async fn reused(c: &Ctx, path: &str, reply: Reply) -> Outcome {
    let count = fetched_twice(c, path, reply, Duration::ZERO).await?;
    expect_eq(count, 1, "origin requests (the second GET should be a hit)")
}

pub(crate) async fn not_reused(c: &Ctx, path: &str, reply: Reply) -> Outcome {
    let count = fetched_twice(c, path, reply, Duration::ZERO).await?;
    expect_eq(
        count,
        2,
        "origin requests (the second GET must not be a hit)",
    )
}
