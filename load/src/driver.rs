//! The load generator: sends a scenario's requests to one target, in the open model (a request
//! started every `1/rate` seconds whatever the answers' pace, latency counted from when it was
//! due, so a stalled server is charged for the requests queued behind the stall) or the closed
//! model (N connections, each sending its next request when the last is answered), and records
//! every answer. HTTP/1.1 keep-alive over a pooled hyper client.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::CpuProbe;
use crate::plan::RequestSpec;
use crate::stats::{Ending, Recorder};
use crate::vars::{Template, TemplateError, Vars};

/// The pooled HTTP/1.1 client every run shares.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// How long an idle connection is kept for reuse: below every keep-alive timeout of the
/// servers it talks to (workerd closes an idle connection after 5 s, the origin after 30 s), so
/// that a request is never sent on a connection the server is closing at that moment (it would
/// fail with no response, though nothing went wrong).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// A client keeping every connection it opens alive for reuse.
pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

/// A named base URL requests are sent to (`http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub base: String,
}

/// A scenario request with its templates parsed and checked.
#[derive(Debug, Clone)]
pub struct Prepared {
    method: Method,
    path: Template,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    expect: Option<u16>,
    /// The path as written in the plan, to name failures.
    shown: String,
}

/// Why a request of the plan cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{0:?} is not an HTTP method")]
    Method(String),
    #[error("{0:?} is not a header name")]
    Header(String),
}

impl Prepared {
    /// Parses a plan request against the run's variables.
    pub fn new(spec: &RequestSpec, vars: &Vars) -> Result<Self, PrepareError> {
        let method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| PrepareError::Method(spec.method.clone()))?;
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PrepareError::Header(name.clone()))?;
            headers.push((header, vars.template(value)?));
        }
        Ok(Self {
            method,
            path: vars.template(&spec.path)?,
            headers,
            body: spec
                .body
                .as_deref()
                .map(|body| vars.template(body))
                .transpose()?,
            expect: spec.expect,
            shown: spec.path.clone(),
        })
    }

    fn build(
        &self,
        base: &str,
        vars: &Vars,
        rng: &mut fastrand::Rng,
    ) -> Result<Request<Full<Bytes>>, String> {
        let uri = format!("{base}{}", vars.render(&self.path, rng));
        let body = self
            .body
            .as_ref()
            .map(|body| vars.render(body, rng))
            .unwrap_or_default();
        let mut request = Request::builder().method(self.method.clone()).uri(uri);
        for (name, value) in &self.headers {
            let value =
                HeaderValue::try_from(vars.render(value, rng)).map_err(|e| e.to_string())?;
            request = request.header(name, value);
        }
        request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())
    }
}

/// One run: a scenario's requests against one target, for a warm-up and a measured time.
#[derive(Debug, Clone)]
pub struct Run {
    pub client: Client,
    pub target: Target,
    pub requests: Arc<[Prepared]>,
    pub vars: Arc<Vars>,
    pub timeout: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    /// Names the run in progress lines.
    pub label: String,
    /// The target's processes, whose CPU time per answer is recorded when given.
    pub cpu: Option<CpuProbe>,
}

type Shared = Arc<Mutex<Recorder>>;

/// One round of a run: its clock, and the tasks beside it.
struct Round {
    start: Instant,
    /// Answers before this are warm-up, not recorded.
    measure_from: Instant,
    /// No request is started after this.
    end: Instant,
    progress: tokio::task::JoinHandle<()>,
    /// The target's CPU time when measuring started.
    cpu: Option<tokio::task::JoinHandle<Option<f64>>>,
}

fn lock(recorder: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Run {
    /// Open model: a request due every `1/rate` s; at most `max_in_flight` at once (the rest
    /// are dropped and counted).
    pub async fn open(&self, rate: f64, max_in_flight: usize, recorder: &Shared) {
        let round = self.begin(recorder);
        let (start, measure_from, end) = (round.start, round.measure_from, round.end);
        let period = Duration::from_secs_f64(1.0 / rate);
        let limit = Arc::new(Semaphore::new(max_in_flight));
        let mut tasks = JoinSet::new();
        let mut rng = fastrand::Rng::new();
        for i in 0u64.. {
            let due = start + period.mul_f64(i as f64);
            if due >= end {
                break;
            }
            tokio::time::sleep_until(due).await;
            while tasks.try_join_next().is_some() {}
            let measured = due >= measure_from;
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                if measured {
                    lock(recorder).drop_one();
                }
                continue;
            };
            let (run, recorder) = (self.clone(), recorder.clone());
            let which = (i % self.requests.len() as u64) as usize;
            let request = self.requests[which].build(&self.target.base, &self.vars, &mut rng);
            tasks.spawn(async move {
                let ending = run.send(request, run.requests[which].expect).await;
                drop(permit);
                if measured {
                    let now = Instant::now();
                    let shown = &run.requests[which].shown;
                    lock(&recorder).record(now - measure_from, now - due, &ending, shown);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        self.finish(round, recorder).await;
    }

    /// Closed model: `connections` loops, each sending its next request when answered.
    pub async fn closed(&self, connections: usize, recorder: &Shared) {
        let round = self.begin(recorder);
        let (measure_from, end) = (round.measure_from, round.end);
        let mut tasks = JoinSet::new();
        for first in 0..connections {
            let (run, recorder) = (self.clone(), recorder.clone());
            tasks.spawn(async move {
                let mut rng = fastrand::Rng::new();
                let mut which = first % run.requests.len();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let prepared = &run.requests[which];
                    let request = prepared.build(&run.target.base, &run.vars, &mut rng);
                    let ending = run.send(request, prepared.expect).await;
                    if sent >= measure_from {
                        let now = Instant::now();
                        lock(&recorder).record(
                            now - measure_from,
                            now - sent,
                            &ending,
                            &prepared.shown,
                        );
                    }
                    which = (which + 1) % run.requests.len();
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        self.finish(round, recorder).await;
    }

    /// Starts a round's clock, its progress lines and, when measuring starts, its CPU reading.
    fn begin(&self, recorder: &Shared) -> Round {
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let label = self.label.clone();
        let progress = tokio::spawn(progress(label, recorder.clone(), measure_from, end));
        let cpu = self.cpu.clone().map(|probe| {
            tokio::spawn(async move {
                tokio::time::sleep_until(measure_from).await;
                probe.micros()
            })
        });
        Round {
            start,
            measure_from,
            end,
            progress,
            cpu,
        }
    }

    /// Ends a round: the last progress line, the CPU time spent since measuring started.
    async fn finish(&self, round: Round, recorder: &Shared) {
        // The last second's line is due at the end: let it print.
        let _ = round.progress.await;
        if let Some(start) = round.cpu {
            let before = start.await.ok().flatten();
            let after = self.cpu.as_ref().and_then(CpuProbe::micros);
            lock(recorder).add_cpu(before.zip(after).map(|(before, after)| after - before));
        }
        lock(recorder).end_round(self.duration);
    }

    /// Sends one request and reads its whole body, within the timeout.
    async fn send(
        &self,
        request: Result<Request<Full<Bytes>>, String>,
        expect: Option<u16>,
    ) -> Ending {
        let request = match request {
            Ok(request) => request,
            Err(why) => return Ending::Transport(format!("the request could not be built: {why}")),
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| describe(&e))?;
            let code = response.status().as_u16();
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                frame.map_err(|e| describe(&e))?;
            }
            Ok::<_, String>(code)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Ending::Timeout,
            Ok(Err(why)) => Ending::Transport(why),
            Ok(Ok(code)) => {
                let ok = expect.map_or((200..300).contains(&code), |expected| expected == code);
                Ending::Status { code, ok }
            }
        }
    }
}

/// An error and its causes, on one line: `client error (SendRequest): connection closed
/// before message completed`.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Prints one line per second while a run measures: answers, failures and p99 of that second.
async fn progress(label: String, recorder: Shared, measure_from: Instant, end: Instant) {
    tokio::time::sleep_until(measure_from).await;
    let total = (end - measure_from).as_secs_f64().ceil() as u64;
    for second in 1..=total {
        tokio::time::sleep_until(measure_from + Duration::from_secs(second)).await;
        let latest = lock(&recorder).latest_second(Duration::from_secs(second));
        let (answers, errors, p99) = latest.unwrap_or((0, 0, 0.0));
        eprintln!("  {label:<44} {second:>3}/{total} s {answers:>7} req/s  p99 {p99:>8.2} ms  {errors} failed");
    }
}
