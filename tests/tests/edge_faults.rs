//! The edge in workerd in front of an origin that breaks HTTP/1.1 on purpose ([`TestOrigin`]).
//!
//! Each fault has a path of its own. For every one the edge must answer within its origin
//! timeout plus 2 s, with a sensible status (the origin's when it is valid, 502 for a malformed
//! response, 504 when the head never comes; a body cut short may end in a broken answer), and a
//! second request must not be served a wrong stored copy. Each group of faults runs against its
//! own origin and edge (`wrangler dev` takes seconds to start) and collects every failure before
//! it fails, so one run shows them all; every group ends by checking that the isolate still
//! serves and that the log shows no panic or hang.

use std::fmt;
use std::time::{Duration, Instant};

use rampart_tests::test_origin::{Framing, Reply, TestOrigin};
use rampart_tests::{cache_status, Edge};
use reqwest::Method;

/// The edge's `ORIGIN_TIMEOUT_MS` in these tests.
const ORIGIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Every answer, body included, must be complete by then.
const DEADLINE: Duration = ORIGIN_TIMEOUT.saturating_add(Duration::from_secs(2));
/// The client gives up later than the deadline, so that a late answer is measured, not lost.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);
/// A cacheable response.
const CACHEABLE: (&str, &str) = ("Cache-Control", "max-age=60");
/// Bodies large enough for the edge to stream them rather than buffer them (over 4 MiB).
const LARGE: usize = 5 << 20;
/// What the log must never contain (compared in lower case).
const FORBIDDEN_IN_LOG: &[&str] = &[
    "panicked",
    "previous wasm instance",
    "hung",
    "promise will never complete",
];

/// One answer of the edge, as the client saw it.
#[derive(Debug, Default)]
struct Outcome {
    /// 0 when no response head arrived.
    status: u16,
    cache: String,
    body: Vec<u8>,
    /// A transport error, or a body that broke off.
    error: Option<String>,
    elapsed: Duration,
}

impl Outcome {
    /// Whether the answer came from a stored copy.
    fn served_stored(&self) -> bool {
        self.cache.contains("hit") || self.cache.contains("fwd=stale")
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.body[..self.body.len().min(80)];
        write!(
            f,
            "status {} after {} ms, Cache-Status {:?}, body {:?} ({} bytes)",
            self.status,
            self.elapsed.as_millis(),
            self.cache,
            String::from_utf8_lossy(shown),
            self.body.len()
        )?;
        match &self.error {
            Some(error) => write!(f, ", error: {error}"),
            None => Ok(()),
        }
    }
}

/// A fault scripted on one path, and what the edge may answer to it.
struct Fault {
    path: String,
    replies: Vec<Reply>,
    /// Statuses the edge may answer with.
    allowed: Vec<u16>,
    /// The answer may break off (the origin never sends a whole body).
    may_break: bool,
    /// The origin's answer may be stored and served again.
    storable: bool,
}

impl Fault {
    /// `reply` on `path`: by default the edge passes the origin's status and body through, and
    /// may store them.
    fn new(path: &str, reply: Reply) -> Self {
        Self {
            path: path.to_owned(),
            allowed: vec![reply.status],
            replies: vec![reply],
            may_break: false,
            storable: true,
        }
    }

    /// A malformed answer: 502, and nothing stored.
    fn refused(path: &str, reply: Reply) -> Self {
        Self::new(path, reply).allow(&[502]).not_storable()
    }

    /// An odd but readable answer: passed through (and then whole) or refused with 502.
    fn tolerated(path: &str, reply: Reply) -> Self {
        let status = reply.status;
        Self::new(path, reply).allow(&[status, 502])
    }

    /// A body the origin never finishes: any answer that ends in time, and nothing stored.
    fn broken(path: &str, reply: Reply) -> Self {
        let fault = Self::new(path, reply).allow(&[200, 502, 504]);
        fault.may_break().not_storable()
    }

    fn allow(mut self, statuses: &[u16]) -> Self {
        self.allowed = statuses.to_vec();
        self
    }

    fn may_break(mut self) -> Self {
        self.may_break = true;
        self
    }

    fn not_storable(mut self) -> Self {
        self.storable = false;
        self
    }

    /// The origin's own answer: status and the body a client must get with it.
    fn origin_answer(&self) -> (u16, &[u8]) {
        let first = &self.replies[0];
        match first.status {
            100..=199 | 204 | 304 => (first.status, &[]),
            status => (status, &first.body),
        }
    }
}

/// An origin, an edge in front of it, and the failures seen so far.
struct Bench {
    origin: TestOrigin,
    edge: Edge,
    client: reqwest::Client,
    failures: Vec<String>,
}

impl Bench {
    async fn start() -> Self {
        let origin = TestOrigin::start().await;
        let timeout = ORIGIN_TIMEOUT.as_millis().to_string();
        let edge = Edge::start_with_vars(&origin.url, &[("ORIGIN_TIMEOUT_MS", &timeout)]).await;
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self {
            origin,
            edge,
            client,
            failures: Vec::new(),
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Outcome {
        let started = Instant::now();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.edge.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut outcome = Outcome::default();
        match request.send().await {
            Err(error) => outcome.error = Some(describe(&error)),
            Ok(mut response) => {
                outcome.status = response.status().as_u16();
                outcome.cache = cache_status(&response);
                loop {
                    match response.chunk().await {
                        Ok(Some(bytes)) => outcome.body.extend_from_slice(&bytes),
                        Ok(None) => break,
                        Err(error) => {
                            outcome.error = Some(describe(&error));
                            break;
                        }
                    }
                }
            }
        }
        outcome.elapsed = started.elapsed();
        outcome
    }

    async fn get(&self, path: &str) -> Outcome {
        self.send(Method::GET, path, &[]).await
    }

    /// Records a failure unless `ok`.
    fn check(&mut self, ok: bool, path: &str, expected: impl fmt::Display, outcome: &Outcome) {
        if !ok {
            let failure = format!("{path}: expected {expected}; got {outcome}");
            eprintln!("FAILED {failure}");
            self.failures.push(failure);
        }
    }

    fn in_time(&mut self, path: &str, outcome: &Outcome) {
        let ok = outcome.elapsed <= DEADLINE;
        self.check(
            ok,
            path,
            format_args!("an answer within {DEADLINE:?}"),
            outcome,
        );
    }

    /// Scripts `fault`, requests it twice, and checks both answers.
    async fn run(&mut self, fault: Fault) -> (Outcome, Outcome) {
        self.origin.script(&fault.path, fault.replies.clone());
        let first = self.get(&fault.path).await;
        self.check_answer(&fault, &first);
        let second = self.get(&fault.path).await;
        if fault.replies.len() == 1 {
            // The same fault again: the same rules.
            self.check_answer(&fault, &second);
        } else {
            self.in_time(&fault.path, &second);
        }
        let (status, body) = fault.origin_answer();
        if second.served_stored() {
            let right = fault.storable
                && first.error.is_none()
                && second.status == status
                && second.body == body;
            self.check(
                right,
                &fault.path,
                "no stored copy, or the origin's complete answer",
                &second,
            );
        }
        (first, second)
    }

    fn check_answer(&mut self, fault: &Fault, outcome: &Outcome) {
        let path = &fault.path;
        self.in_time(path, outcome);
        if outcome.status == 0 {
            self.check(fault.may_break, path, "a response from the edge", outcome);
            return;
        }
        let allowed = &fault.allowed;
        let ok = allowed.contains(&outcome.status);
        self.check(ok, path, format_args!("a status in {allowed:?}"), outcome);
        let (status, body) = fault.origin_answer();
        if outcome.error.is_some() {
            self.check(fault.may_break, path, "a complete body", outcome);
        } else if outcome.status == status {
            let expected = format_args!("the origin's body {:?}", preview(body));
            self.check(outcome.body == body, path, expected, outcome);
        }
    }

    /// A request to a fresh path after the fault on `after`: it gets its own answer (or 502),
    /// never bytes another response left on a kept-alive connection, and none are stored.
    async fn check_no_desync(&mut self, after: &str) {
        let next = format!("{after}-next");
        let own = format!("the answer of {next}");
        self.origin.script(&next, vec![cacheable(own.clone())]);
        for _ in 0..2 {
            let outcome = self.get(&next).await;
            self.in_time(&next, &outcome);
            let ok =
                (outcome.status == 200 && outcome.body == own.as_bytes()) || outcome.status == 502;
            let expected = format_args!("200 {own:?} or 502, never another response's bytes");
            self.check(ok, &next, expected, &outcome);
        }
    }

    /// 100 sequential GETs to a normal cacheable path all succeed, the log shows no panic or
    /// hang, and every failure collected so far is reported.
    async fn finish(mut self, group: &str) {
        let path = format!("/fault/survival/{group}");
        self.origin.script(
            &path,
            vec![Reply::ok("still serving").header(CACHEABLE.0, CACHEABLE.1)],
        );
        let mut broken = Vec::new();
        for _ in 0..100 {
            let outcome = self.get(&path).await;
            let ok = outcome.status == 200
                && outcome.error.is_none()
                && outcome.body == b"still serving"
                && outcome.elapsed <= DEADLINE;
            if !ok {
                broken.push(outcome);
            }
        }
        if let Some(first) = broken.first() {
            let expected = format_args!("100 of 100 GETs answered 200 ({} were not)", broken.len());
            self.check(false, &path, expected, first);
        }
        let log = self.edge.log();
        let lower = log.to_lowercase();
        for word in FORBIDDEN_IN_LOG {
            if lower.contains(word) {
                let failure = format!("the edge's log contains {word:?}");
                eprintln!("FAILED {failure}");
                self.failures.push(failure);
            }
        }
        if !self.failures.is_empty() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "{} failure(s) in group {group}:\n  {}\n\nthe end of the edge's log:\n{}",
                self.failures.len(),
                self.failures.join("\n  "),
                tail.join("\n")
            );
        }
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        format!("timed out after {CLIENT_TIMEOUT:?}: {error}")
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
    if body.len() > 40 {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text
    }
}

fn cacheable(body: impl Into<Vec<u8>>) -> Reply {
    Reply::ok(body).header(CACHEABLE.0, CACHEABLE.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_pass_through_or_become_502() {
    let mut bench = Bench::start().await;
    let valid = [
        200, 201, 202, 203, 206, 299, 300, 301, 302, 303, 307, 308, 399, 400, 401, 403, 404, 405,
        410, 418, 429, 451, 499, 500, 501, 502, 503, 504, 599,
    ];
    for code in valid {
        let reply = Reply::status(code)
            .header(CACHEABLE.0, CACHEABLE.1)
            .body(format!("status {code}"));
        bench
            .run(Fault::new(&format!("/fault/status/{code}"), reply))
            .await;
    }
    // A 1xx as the only answer: the final response never comes.
    for code in [100, 101, 103, 199] {
        let reply = Reply::status(code)
            .header(CACHEABLE.0, CACHEABLE.1)
            .body("never");
        let fault = Fault::new(&format!("/fault/status/{code}"), reply);
        bench.run(fault.allow(&[502, 504]).not_storable()).await;
    }
    for code in [600, 999] {
        let reply = Reply::status(code)
            .header(CACHEABLE.0, CACHEABLE.1)
            .body("out of range");
        bench
            .run(Fault::refused(&format!("/fault/status/{code}"), reply))
            .await;
    }
    let raw_lines: [(&str, &[u8]); 5] = [
        ("abc", b"HTTP/1.1 abc"),
        ("two-digits", b"HTTP/1.1 20"),
        ("999-weird", b"HTTP/1.1 999 Weird"),
        ("no-version", b"200 OK"),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\xff\xfe garbage"),
    ];
    for (name, line) in raw_lines {
        let reply = cacheable("after a bad status line").raw_status_line(line);
        bench
            .run(Fault::refused(&format!("/fault/status-line/{name}"), reply))
            .await;
    }
    // An HTTP version that is not 1.x: workerd reads the status past it; 200 or 502 will do.
    let reply = cacheable("after HTTP/2 200").raw_status_line("HTTP/2 200");
    bench
        .run(Fault::tolerated("/fault/status-line/http-2", reply))
        .await;
    bench.finish("status").await;
}

/// workerd's `fetch` hands a Worker the first interim head (100, 103) as if it were the final
/// response, so the final one never reaches the edge: it answers `502`
/// (`ORIGIN_INVALID_RESPONSE`) at once, stores nothing, and the connection is not reused for
/// another request's answer. Where the runtime relays the final response, 200 is passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_before_the_final_one_end_cleanly() {
    let mut bench = Bench::start().await;
    let cases: [(&str, &[u16]); 3] = [
        ("100", &[100]),
        ("103", &[103]),
        ("100-103-103", &[100, 103, 103]),
    ];
    for (name, codes) in cases {
        let reply = codes
            .iter()
            .fold(cacheable(format!("after {name}")), |r, code| {
                r.interim(*code)
            });
        let path = format!("/fault/interim/{name}");
        bench.run(Fault::tolerated(&path, reply)).await;
        // A client that takes the interim head for the final one leaves the real answer unread.
        bench.check_no_desync(&path).await;
    }
    bench.finish("interim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodyless_answers_and_head_requests_store_nothing_wrong() {
    let mut bench = Bench::start().await;
    bench
        .run(Fault::new(
            "/fault/bodyless/204",
            Reply::status(204).header(CACHEABLE.0, CACHEABLE.1),
        ))
        .await;
    let not_modified = Reply::status(304)
        .header(CACHEABLE.0, CACHEABLE.1)
        .header("ETag", "\"v1\"");
    let fault = Fault::new("/fault/bodyless/304-unconditional", not_modified);
    bench.run(fault.allow(&[304, 502]).not_storable()).await;

    // Bodies where none belongs; `Connection: close` keeps the stray bytes from being read as
    // the next response on the connection (that case has a test of its own).
    let stray = |code| {
        Reply::status(code)
            .header(CACHEABLE.0, CACHEABLE.1)
            .header("Connection", "close")
            .body("stray body")
            .body_on_bodyless()
    };
    let path = "/fault/bodyless/204-with-body";
    bench.run(Fault::new(path, stray(204))).await;
    bench.check_no_desync(path).await;
    let path = "/fault/bodyless/304-with-body";
    let fault = Fault::new(path, stray(304));
    bench.run(fault.allow(&[304, 502]).not_storable()).await;
    bench.check_no_desync(path).await;

    // 304 to a conditional GET while nothing is stored: an unconditional GET afterwards gets
    // the full body, never a stored 304.
    let path = "/fault/bodyless/304-conditional";
    let etag = ("ETag", "\"v1\"");
    bench.origin.script(
        path,
        vec![
            Reply::status(304)
                .header(CACHEABLE.0, CACHEABLE.1)
                .header(etag.0, etag.1),
            cacheable("full v1").header(etag.0, etag.1),
        ],
    );
    let first = bench
        .send(Method::GET, path, &[("If-None-Match", etag.1)])
        .await;
    bench.in_time(path, &first);
    let ok = matches!(first.status, 200 | 304) && first.error.is_none();
    bench.check(ok, path, "304 or 200 to a conditional GET", &first);
    let second = bench.get(path).await;
    let ok = second.status == 200 && second.body == b"full v1" && second.error.is_none();
    let expected = "200 \"full v1\" to an unconditional GET (never a stored 304)";
    bench.check(ok, path, expected, &second);

    // HEAD to a cacheable and to a non-cacheable path: the GET after it gets the whole body.
    for (name, cache_control) in [("cacheable", "max-age=60"), ("no-store", "no-store")] {
        let path = format!("/fault/head/{name}");
        let body = format!("head {name}");
        let reply = Reply::ok(body.clone()).header("Cache-Control", cache_control);
        bench.origin.script(&path, vec![reply]);
        let head = bench.send(Method::HEAD, &path, &[]).await;
        bench.in_time(&path, &head);
        let ok = head.status == 200 && head.body.is_empty() && head.error.is_none();
        bench.check(ok, &path, "200 without a body to HEAD", &head);
        let get = bench.get(&path).await;
        let ok = get.status == 200 && get.body == body.as_bytes() && get.error.is_none();
        let expected = format!("200 {body:?} to the GET after a HEAD (never an empty copy)");
        bench.check(ok, &path, expected, &get);
        if cache_control == "no-store" {
            bench.check(!get.served_stored(), &path, "no stored copy", &get);
        }
    }

    // HEAD to a path the edge has stored: answered from the copy, and the copy stays whole.
    let path = "/fault/head/stored";
    bench.origin.script(path, vec![cacheable("stored body")]);
    let get = bench.get(path).await;
    let ok = get.status == 200 && get.body == b"stored body";
    bench.check(ok, path, "200 \"stored body\"", &get);
    let head = bench.send(Method::HEAD, path, &[]).await;
    bench.in_time(path, &head);
    let ok = head.status == 200 && head.body.is_empty() && head.served_stored();
    let expected = "200 without a body, from the stored copy";
    bench.check(ok, path, expected, &head);
    let count = bench.origin.count(path);
    bench.check(
        count == 1,
        path,
        format_args!("1 origin request, not {count}"),
        &head,
    );
    let again = bench.get(path).await;
    let ok = again.status == 200 && again.body == b"stored body";
    bench.check(ok, path, "200 \"stored body\" after the HEAD", &again);

    // HEAD answered with a body (and Connection: close).
    let path = "/fault/head/with-body";
    let reply = cacheable("a body sent to HEAD")
        .header("Connection", "close")
        .body_on_bodyless();
    bench.origin.script(path, vec![reply]);
    let head = bench.send(Method::HEAD, path, &[]).await;
    bench.in_time(path, &head);
    let ok = head.status == 200 && head.body.is_empty();
    bench.check(ok, path, "200 without a body to HEAD", &head);
    let get = bench.get(path).await;
    let ok = get.status == 200 && get.body == b"a body sent to HEAD";
    bench.check(ok, path, "the whole body to the GET after it", &get);

    bench.finish("bodyless").await;
}

/// Stray bytes after a bodyless answer on a kept-alive connection that form a complete,
/// cacheable response: the next request must never get them, nor may they be stored. workerd's
/// HTTP client currently reads a 204's stray body as the answer to the next request on that
/// connection (response desync), which the Worker cannot tell from a real answer; hence ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "workerd reads a 204's stray body as the next response; the Worker cannot see it"]
async fn stray_bytes_after_a_bodyless_answer_never_answer_another_request() {
    let mut bench = Bench::start().await;
    let smuggled =
        "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 8\r\n\r\nsmuggled";
    let cases = [
        (
            "204",
            Method::GET,
            Reply::status(204).body(smuggled).body_on_bodyless(),
        ),
        ("head", Method::HEAD, Reply::ok(smuggled).body_on_bodyless()),
    ];
    for (name, method, reply) in cases {
        let path = format!("/fault/smuggling/{name}");
        bench.origin.script(&path, vec![reply]);
        let first = bench.send(method, &path, &[]).await;
        bench.in_time(&path, &first);
        let ok = matches!(first.status, 200 | 204) && first.body.is_empty();
        bench.check(ok, &path, "its status without a body", &first);
        bench.check_no_desync(&path).await;
    }
    bench.finish("smuggling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_header_bytes_are_passed_or_refused_cleanly() {
    let mut bench = Bench::start().await;
    let path = |name: &str| format!("/fault/headers/{name}");
    let big = "v".repeat(16 * 1024);
    let many_big = (0..8).fold(cacheable("128 KiB of headers"), |reply, n| {
        reply.header(&format!("X-Big-{n}"), &big)
    });
    let obs_text = cacheable("obs-text")
        .raw_header(b"X-Obs-Text: caf\xe9 \xff\x80".to_vec())
        .header("X-Utf8", "café ✓");
    let types = cacheable("two content types")
        .header("Content-Type", "text/plain")
        .header("Content-Type", "text/html");
    let twice = |name: &str, value: &str| cacheable(name).header(name, value);
    let lengths = |first: &str, second: &str| {
        cacheable("conflicting lengths")
            .header("Content-Length", first)
            .header("Content-Length", second)
            // The bytes past a wrong length must not be read as the next response.
            .header("Connection", "close")
    };
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.1).
    let chunked_and_length = cacheable("chunked with a length")
        .framing(Framing::Chunked)
        .header("Content-Length", "3")
        .header("Connection", "close");
    let line = |body: &str, raw: &[u8]| cacheable(body).raw_header(raw.to_vec());
    let faults = [
        Fault::new(&path("obs-text"), obs_text),
        Fault::new(&path("content-type-twice"), types),
        Fault::new(
            &path("no-store-in-a-second-cache-control"),
            twice("Cache-Control", "no-store"),
        )
        .not_storable(),
        Fault::new(
            &path("private-in-a-second-cache-control"),
            twice("Cache-Control", "private"),
        )
        .not_storable(),
        // RFC 9112 §6.3: differing lengths are an unrecoverable error; equal ones may be read.
        Fault::refused(&path("content-length-conflicting"), lengths("5", "19")),
        Fault::tolerated(&path("content-length-twice-equal"), lengths("19", "19")),
        Fault::tolerated(&path("chunked-and-content-length"), chunked_and_length),
        Fault::tolerated(
            &path("16k-value"),
            cacheable("16 KiB").header("X-Big", &big),
        ),
        Fault::tolerated(&path("128k-section"), many_big),
        Fault::tolerated(&path("obs-fold"), line("obs-fold", b"X-Folded: a\r\n b")),
        Fault::tolerated(&path("no-colon"), line("no colon", b"no colon here")),
        Fault::tolerated(
            &path("space-before-colon"),
            line("space", b"X-Space : value"),
        ),
        Fault::tolerated(&path("nul-byte"), line("NUL", b"X-Nul: a\x00b")),
        Fault::tolerated(&path("bare-lf"), line("bare LF", b"X-A: 1\nX-B: 2")),
    ];
    for fault in faults {
        bench.run(fault).await;
    }
    bench.finish("headers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bodies_are_never_stored() {
    let mut bench = Bench::start().await;
    let small = b"0123456789abcdef".repeat(4);
    let large: Vec<u8> = (0..LARGE).map(|i| b'a' + (i % 26) as u8).collect();
    let path = |name: &str| format!("/fault/framing/{name}");
    // A chunked body whose chunks are broken, delimited by the connection's end.
    let bad_chunks = |body: &[u8]| {
        cacheable(body)
            .header("Transfer-Encoding", "chunked")
            .framing(Framing::Close)
    };
    let cut = |body: &[u8], framing| cacheable(body).framing(framing);
    let faults = [
        Fault::new(
            &path("close-delimited"),
            cut(b"until it closes", Framing::Close),
        ),
        Fault::new(&path("slow"), cut(b"twenty slow bytes...", Framing::Slow)),
        Fault::broken(&path("truncated"), cut(&small, Framing::Truncated)),
        Fault::broken(&path("truncated-large"), cut(&large, Framing::Truncated)),
        Fault::broken(&path("reset"), cut(&small, Framing::Reset)),
        Fault::broken(&path("reset-large"), cut(&large, Framing::Reset)),
        Fault::broken(
            &path("bad-chunk-size"),
            bad_chunks(b"zz\r\nnot hex\r\n0\r\n\r\n"),
        )
        .allow(&[200, 502]),
        Fault::broken(&path("chunked-cut-short"), bad_chunks(b"10\r\nonly a few"))
            .allow(&[200, 502]),
    ];
    for fault in faults {
        bench.run(fault).await;
    }

    // Chunked with max-age: stored (in the background, the length being unknown), and the hit
    // has the right body.
    let path = "/fault/framing/chunked";
    let body = "chunk one, chunk two, chunk three";
    let (first, _) = bench
        .run(Fault::new(path, cacheable(body).framing(Framing::Chunked)))
        .await;
    let mut hit = None;
    for _ in 0..10 {
        let outcome = bench.get(path).await;
        if outcome.served_stored() {
            hit = Some(outcome);
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    match hit {
        Some(hit) => {
            let ok = hit.status == 200 && hit.body == body.as_bytes();
            bench.check(ok, path, format_args!("a hit with {body:?}"), &hit);
        }
        None => bench.check(false, path, "a hit within 3 s of the first answer", &first),
    }
    bench.finish("framing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_origins_are_cut_off_at_the_timeout() {
    let mut bench = Bench::start().await;
    // The head never comes: 504 around the deadline; the next request reaches the origin.
    let path = "/fault/timeout/head-never-sent";
    let silent = cacheable("too late").delay_head(Duration::from_secs(30));
    let mut fault = Fault::new(path, silent).allow(&[504]).not_storable();
    fault.replies.push(Reply::ok("after the silence"));
    let (first, second) = bench.run(fault).await;
    let around = first.elapsed >= ORIGIN_TIMEOUT - Duration::from_millis(500);
    bench.check(around, path, "504 no earlier than the timeout", &first);
    let ok = second.status == 200 && second.body == b"after the silence";
    bench.check(ok, path, "the origin's next answer", &second);

    let slow_head = cacheable("a second late").delay_head(Duration::from_secs(1));
    bench
        .run(Fault::new("/fault/timeout/slow-head", slow_head))
        .await;
    let stalled = cacheable("a body that never comes").framing(Framing::Hang);
    let fault = Fault::broken("/fault/timeout/body-never-sent", stalled);
    bench.run(fault).await;
    bench.finish("timeouts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_isolate_survives_a_mix_of_faults_and_logs_them() {
    let mut bench = Bench::start().await;
    let small = b"0123456789abcdef".repeat(4);
    let garbage = cacheable("x").raw_status_line(b"\x00\xffgarbage".to_vec());
    let silent = cacheable("x").delay_head(Duration::from_secs(30));
    let faults = [
        Fault::refused("/fault/mix/garbage", garbage),
        Fault::refused("/fault/mix/999", Reply::status(999).body("x")),
        Fault::broken(
            "/fault/mix/truncated",
            cacheable(small.clone()).framing(Framing::Truncated),
        ),
        Fault::broken("/fault/mix/reset", cacheable(small).framing(Framing::Reset)),
        Fault::new("/fault/mix/silent", silent)
            .allow(&[504])
            .not_storable(),
    ];
    let paths: Vec<String> = faults.iter().map(|f| f.path.clone()).collect();
    for fault in faults {
        bench.run(fault).await;
    }
    // Each failure is logged with the request id the origin received (`x-request-id`), or at
    // least the path: today's lines read
    // `rampart-edge: request <x-request-id>: origin fetch failed: <cause>`.
    let expected: Vec<(String, String)> = paths
        .iter()
        .flat_map(|path| {
            let requests = bench.origin.requests(path);
            requests.into_iter().map(move |request| {
                let id = request.header("x-request-id").unwrap_or_default();
                (path.clone(), id)
            })
        })
        .collect();
    let unnamed = |log: &str| -> Vec<String> {
        expected
            .iter()
            .filter(|(path, id)| {
                !(log.contains(path.as_str()) || (!id.is_empty() && log.contains(id.as_str())))
            })
            .map(|(path, id)| format!("{path}: the edge's log names neither the path nor {id:?}"))
            .collect()
    };
    // wrangler copies the Worker's console to its log a moment later.
    let mut missing = unnamed(&bench.edge.log());
    for _ in 0..20 {
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        missing = unnamed(&bench.edge.log());
    }
    for failure in missing {
        eprintln!("FAILED {failure}");
        bench.failures.push(failure);
    }
    bench.finish("mix").await;
}
