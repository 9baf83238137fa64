//! A programmable HTTP/1.1 origin that misbehaves on purpose, for testing what sits in front of it.
//!
//! It is written on raw `tokio` sockets rather than hyper or axum because it must send bytes no
//! well-behaved server sends: status lines outside 200–599 or not numbers at all, obs-text and
//! obs-fold header lines, bodies on `HEAD`, `204` and `304`, bodies cut short, connections reset
//! mid-body, heads that never come.
//!
//! Each request path (path and query, exactly as received) has a script: a list of [`Reply`]s
//! used in order, the last one repeating. Every request is recorded ([`Recorded`]), and every
//! response carries `X-Origin-Count: <n>`, the number of requests that path has received
//! counting this one, so that a test can tell an origin answer from a cached one.
//!
//! Connections are HTTP/1.1 keep-alive: request bodies framed by `Content-Length` or chunked are
//! read, and pipelined requests are answered in order; `Connection: close` is honoured. A head
//! section over 64 KiB is refused with `431`, a malformed request with `400`; garbage never
//! panics. The accept loop owns every connection task, so dropping the [`TestOrigin`] ends them
//! all, hanging ones included.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The largest request head section read; past it the request gets `431`.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body read; past it the request gets `413`.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The pause between body bytes with [`Framing::Slow`].
const SLOW_BYTE_INTERVAL: Duration = Duration::from_millis(50);

/// The origin: a loopback listener serving scripted replies until dropped.
#[derive(Debug)]
pub struct TestOrigin {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<Mutex<State>>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them too.
    accept: JoinHandle<()>,
}

impl TestOrigin {
    /// Starts the origin on a free loopback port; it serves until dropped.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let state = Arc::new(Mutex::new(State::default()));
        let accept = tokio::spawn(serve(listener, state.clone()));
        Self { url, state, accept }
    }

    /// Replies for `path` (path+query exactly as the origin receives it, e.g. "/a?x=1"), used in
    /// order; once exhausted the LAST one repeats. Replaces earlier scripts for that path; an
    /// empty list makes the path unscripted again.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        let mut state = self.lock();
        if replies.is_empty() {
            state.scripts.remove(path);
        } else {
            state
                .scripts
                .insert(path.to_owned(), Script { replies, next: 0 });
        }
    }

    /// Every request received for `path`, in order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        let state = self.lock();
        state
            .received
            .iter()
            .filter(|r| r.target == path)
            .cloned()
            .collect()
    }

    /// How many requests `path` has received.
    pub fn count(&self, path: &str) -> usize {
        self.lock().count(path)
    }

    /// Every request received, any path (for "the edge never fetched X" checks).
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.lock().received.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `HEAD`, … as sent.
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header fields in order, names as sent, values trimmed (invalid UTF-8 replaced).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// How a reply's body is framed (or broken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`, then the body.
    ContentLength,
    /// `Transfer-Encoding: chunked`, the body in a few chunks.
    Chunked,
    /// No length: the body, then the connection closes.
    Close,
    /// A `Content-Length` larger than the body, the body, then the connection closes.
    Truncated,
    /// `Content-Length`, half the body, then a TCP reset (linger 0 and drop).
    Reset,
    /// `Content-Length`, then the body one byte every 50 ms.
    Slow,
    /// `Content-Length` and the head; the body never comes.
    Hang,
}

/// One scripted response. Start from [`Reply::ok`] or [`Reply::status`] and chain builders.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code (default 200); it also decides whether the response has a body.
    pub status: u16,
    /// Replaces the status line entirely (e.g. `b"HTTP/1.1 999 Weird"`, `b"HTTP/1.1 abc"`).
    pub raw_status_line: Option<Vec<u8>>,
    /// Header fields, sent as given, in order, duplicates allowed.
    pub headers: Vec<(String, String)>,
    /// Extra header lines sent as raw bytes (obs-text, obs-fold, very long, no colon…).
    pub raw_headers: Vec<Vec<u8>>,
    /// The body.
    pub body: Vec<u8>,
    /// Interim 1xx responses sent before the final one (e.g. 100, 103).
    pub interim: Vec<u16>,
    /// How the body is framed.
    pub framing: Framing,
    /// A wait before anything is sent.
    pub delay_head: Duration,
    /// A wait between the head and the body.
    pub delay_body: Duration,
    /// Sends the body (and its framing) even for `HEAD`, 1xx, `204` and `304`.
    pub body_on_bodyless: bool,
}

impl Default for Reply {
    fn default() -> Self {
        Self {
            status: 200,
            raw_status_line: None,
            headers: Vec::new(),
            raw_headers: Vec::new(),
            body: Vec::new(),
            interim: Vec::new(),
            framing: Framing::ContentLength,
            delay_head: Duration::ZERO,
            delay_body: Duration::ZERO,
            body_on_bodyless: false,
        }
    }
}

impl Reply {
    /// `200` with `body`, framed by `Content-Length`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self::default().body(body)
    }

    /// `code` with an empty body.
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            ..Self::default()
        }
    }

    /// Appends a header field.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends a raw header line (without its CRLF).
    #[must_use]
    pub fn raw_header(mut self, line: impl Into<Vec<u8>>) -> Self {
        self.raw_headers.push(line.into());
        self
    }

    /// Replaces the status line (without its CRLF).
    #[must_use]
    pub fn raw_status_line(mut self, line: impl Into<Vec<u8>>) -> Self {
        self.raw_status_line = Some(line.into());
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends an interim response with `code` before the final one (call again for more).
    #[must_use]
    pub fn interim(mut self, code: u16) -> Self {
        self.interim.push(code);
        self
    }

    /// Sets how the body is framed.
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Waits `delay` before sending anything.
    #[must_use]
    pub fn delay_head(mut self, delay: Duration) -> Self {
        self.delay_head = delay;
        self
    }

    /// Waits `delay` between the head and the body.
    #[must_use]
    pub fn delay_body(mut self, delay: Duration) -> Self {
        self.delay_body = delay;
        self
    }

    /// Sends the body even where none belongs (`HEAD`, 1xx, `204`, `304`).
    #[must_use]
    pub fn body_on_bodyless(mut self) -> Self {
        self.body_on_bodyless = true;
        self
    }

    /// Whether the reply sets header `name` itself, as a field or a raw line.
    fn sets(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
            || self.raw_headers.iter().any(|line| {
                line.len() > name.len()
                    && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                    && line[name.len()] == b':'
            })
    }
}

/// Scripts and the record of requests, shared by the connection tasks.
#[derive(Debug, Default)]
struct State {
    scripts: HashMap<String, Script>,
    received: Vec<Recorded>,
}

impl State {
    fn count(&self, path: &str) -> usize {
        self.received.iter().filter(|r| r.target == path).count()
    }

    /// Records `request` and picks its reply, with the path's request count.
    fn receive(&mut self, request: Recorded) -> (Reply, usize) {
        let target = request.target.clone();
        self.received.push(request);
        let scripted = self.scripts.get_mut(&target).and_then(Script::next);
        let reply = scripted.unwrap_or_else(|| unscripted(&target));
        (reply, self.count(&target))
    }
}

#[derive(Debug)]
struct Script {
    replies: Vec<Reply>,
    next: usize,
}

impl Script {
    fn next(&mut self) -> Option<Reply> {
        let reply = self.replies.get(self.next).or(self.replies.last()).cloned();
        self.next = self.next.saturating_add(1);
        reply
    }
}

/// `/health` answers `ok` (the harness's readiness probe); anything else is cacheable.
fn unscripted(target: &str) -> Reply {
    if target.split('?').next() == Some("/health") {
        Reply::ok("ok")
    } else {
        Reply::ok("default").header("Cache-Control", "max-age=60")
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    // Dropped with this task: its connection tasks are aborted with it.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(connection(stream, state.clone()));
            }
            // Out of descriptors and the like: wait instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// What happens to a connection after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
}

/// A request refused before it was recorded.
enum Refusal {
    /// Answer with this status, then close.
    Status(u16),
    /// The peer went away or the socket failed.
    Gone,
}

struct Request {
    recorded: Recorded,
    head: bool,
    close: bool,
}

async fn connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buffer).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(Refusal::Gone) => return,
            Err(Refusal::Status(code)) => {
                let refusal = format!(
                    "HTTP/1.1 {code} {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    reason(code)
                );
                let _ = stream.write_all(refusal.as_bytes()).await;
                let _ = stream.shutdown().await;
                // Closing with unread bytes would reset the connection, and the peer could lose
                // the refusal: read what it still sends, briefly.
                let mut sink = [0u8; 16 * 1024];
                let drain =
                    async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
                let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
                return;
            }
        };
        let (head, close) = (request.head, request.close);
        let (reply, count) = state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .receive(request.recorded);
        match respond(&mut stream, &reply, head, close, count).await {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) => {
                let _ = stream.shutdown().await;
                return;
            }
            Ok(Next::Reset) => {
                let _ = stream.set_zero_linger();
                return;
            }
            Err(_) => return,
        }
    }
}

/// Reads one request; `Ok(None)` when the peer closed between requests.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<Option<Request>, Refusal> {
    let end = loop {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        let blank = buffer
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        buffer.drain(..blank);
        if let Some(end) = head_end(buffer) {
            break end;
        }
        if buffer.len() > MAX_HEAD {
            return Err(Refusal::Status(431));
        }
        if read_more(stream, buffer).await? == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(Refusal::Gone)
            };
        }
    };
    if end > MAX_HEAD {
        return Err(Refusal::Status(431));
    }
    let head: Vec<u8> = buffer.drain(..end).collect();
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines().map(|line| line.trim_end_matches('\r'));
    let request_line: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let [method, target, version] = request_line[..] else {
        return Err(Refusal::Status(400));
    };
    if method.is_empty() || (!target.starts_with('/') && target != "*") {
        return Err(Refusal::Status(400));
    }
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(Refusal::Status(400));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Refusal::Status(400));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Refusal::Status(400));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut recorded = Recorded {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: Vec::new(),
    };
    let tokens = |name: &str| {
        recorded
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let connection = tokens("connection");
    let close = connection.iter().any(|t| t == "close")
        || (version == "HTTP/1.0" && !connection.iter().any(|t| t == "keep-alive"));
    let chunked = tokens("transfer-encoding").last().map(String::as_str) == Some("chunked");
    let lengths = tokens("content-length");
    let length = match lengths.first() {
        None => 0,
        Some(first) if lengths.iter().all(|l| l == first) => {
            first.parse::<usize>().map_err(|_| Refusal::Status(400))?
        }
        Some(_) => return Err(Refusal::Status(400)),
    };
    let expects_continue = tokens("expect").iter().any(|t| t == "100-continue");
    if expects_continue && (chunked || length > 0) && length <= MAX_BODY {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
    }
    recorded.body = if chunked {
        read_chunked(stream, buffer).await?
    } else if length > MAX_BODY {
        return Err(Refusal::Status(413));
    } else {
        fill(stream, buffer, length).await?;
        buffer.drain(..length).collect()
    };
    Ok(Some(Request {
        head: method == "HEAD",
        close,
        recorded,
    }))
}

/// Where the head section ends (after its empty line), if it is all in `buffer`.
fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(2)
        .enumerate()
        .find_map(|(i, pair)| match pair {
            b"\n\n" => Some(i + 2),
            b"\n\r" if buffer.get(i + 2) == Some(&b'\n') => Some(i + 3),
            _ => None,
        })
}

/// Decodes a chunked body (RFC 9112 §7.1), trailers read and dropped.
async fn read_chunked(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>, Refusal> {
    let mut body = Vec::new();
    loop {
        let line = read_line(stream, buffer).await?;
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or(Refusal::Status(400))?;
        if size == 0 {
            while !read_line(stream, buffer).await?.is_empty() {}
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(Refusal::Status(413));
        }
        fill(stream, buffer, size).await?;
        body.extend(buffer.drain(..size));
        read_line(stream, buffer).await?;
    }
}

/// One line without its line ending.
async fn read_line(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>, Refusal> {
    loop {
        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        if buffer.len() > MAX_HEAD {
            return Err(Refusal::Status(431));
        }
        if read_more(stream, buffer).await? == 0 {
            return Err(Refusal::Gone);
        }
    }
}

/// Reads until `buffer` holds at least `length` bytes.
async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>, length: usize) -> Result<(), Refusal> {
    while buffer.len() < length {
        if read_more(stream, buffer).await? == 0 {
            return Err(Refusal::Gone);
        }
    }
    Ok(())
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<usize, Refusal> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await.map_err(|_| Refusal::Gone)?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Sends `reply` to a request (`head`: it was a HEAD; `close`: it asked to close).
async fn respond(
    stream: &mut TcpStream,
    reply: &Reply,
    head: bool,
    close: bool,
    count: usize,
) -> std::io::Result<Next> {
    if !reply.delay_head.is_zero() {
        tokio::time::sleep(reply.delay_head).await;
    }
    let mut out = Vec::new();
    for code in &reply.interim {
        out.extend(format!("HTTP/1.1 {code} {}\r\n\r\n", reason(*code)).as_bytes());
    }
    match &reply.raw_status_line {
        Some(line) => out.extend(line),
        None => {
            out.extend(format!("HTTP/1.1 {} {}", reply.status, reason(reply.status)).as_bytes())
        }
    }
    out.extend(b"\r\n");
    for (name, value) in &reply.headers {
        out.extend(format!("{name}: {value}\r\n").as_bytes());
    }
    for line in &reply.raw_headers {
        out.extend(line);
        out.extend(b"\r\n");
    }
    if !reply.sets("date") {
        let date = httpdate::fmt_http_date(SystemTime::now());
        out.extend(format!("Date: {date}\r\n").as_bytes());
    }
    out.extend(format!("X-Origin-Count: {count}\r\n").as_bytes());
    // RFC 9112 §6.3: 1xx, 204 and 304 responses never have a body, nor does any answer to HEAD
    // (though HEAD gets the framing a GET would).
    let bodyless = matches!(reply.status, 100..=199 | 204 | 304) && !reply.body_on_bodyless;
    let send_body = !bodyless && (!head || reply.body_on_bodyless);
    let framing = reply.framing;
    let closes = close
        || matches!(
            framing,
            Framing::Close | Framing::Truncated | Framing::Reset
        )
        || reply
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.contains("close"));
    if !bodyless {
        let length = match framing {
            Framing::Chunked | Framing::Close => None,
            Framing::Truncated => Some(reply.body.len() * 2 + 16),
            _ => Some(reply.body.len()),
        };
        if framing == Framing::Chunked && !reply.sets("transfer-encoding") {
            out.extend(b"Transfer-Encoding: chunked\r\n");
        }
        if let Some(length) = length.filter(|_| !reply.sets("content-length")) {
            out.extend(format!("Content-Length: {length}\r\n").as_bytes());
        }
    }
    if closes && !reply.sets("connection") {
        out.extend(b"Connection: close\r\n");
    }
    out.extend(b"\r\n");
    stream.write_all(&out).await?;
    let next = if closes { Next::Close } else { Next::KeepAlive };
    if !send_body {
        return Ok(next);
    }
    if !reply.delay_body.is_zero() {
        tokio::time::sleep(reply.delay_body).await;
    }
    let body = &reply.body;
    match framing {
        Framing::ContentLength | Framing::Close | Framing::Truncated => {
            stream.write_all(body).await?;
        }
        Framing::Chunked => {
            // A few chunks, so that a client has to put them together.
            for chunk in body.chunks(body.len().div_ceil(3).max(1)) {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Framing::Reset => {
            stream.write_all(&body[..body.len() / 2]).await?;
            stream.flush().await?;
            // Let the bytes leave before the reset discards what is still queued.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(Next::Reset);
        }
        Framing::Slow => {
            for byte in body {
                stream.write_all(&[*byte]).await?;
                tokio::time::sleep(SLOW_BYTE_INTERVAL).await;
            }
        }
        Framing::Hang => std::future::pending::<()>().await,
    }
    stream.flush().await?;
    Ok(next)
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `raw` on a new connection and reads until the origin closes it.
    async fn exchange(origin: &TestOrigin, raw: &[u8]) -> Vec<u8> {
        let address = origin.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(raw).await.expect("send");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the origin closes in time")
            .expect("read");
        answer
    }

    async fn get(origin: &TestOrigin, target: &str) -> String {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&exchange(origin, request.as_bytes()).await).into_owned()
    }

    #[tokio::test]
    async fn scripted_replies_are_used_in_order_then_the_last_repeats() {
        let origin = TestOrigin::start().await;
        origin.script(
            "/a?x=1",
            vec![Reply::ok("one"), Reply::status(404).body("two")],
        );
        let answers = [
            get(&origin, "/a?x=1").await,
            get(&origin, "/a?x=1").await,
            get(&origin, "/a?x=1").await,
        ];
        assert!(
            answers[0].starts_with("HTTP/1.1 200 OK\r\n"),
            "{}",
            answers[0]
        );
        assert!(answers[0].ends_with("\r\n\r\none"), "{}", answers[0]);
        assert!(answers[0].contains("Content-Length: 3\r\n"));
        assert!(answers[0].contains("Date: "));
        for (n, answer) in answers.iter().enumerate().skip(1) {
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
            assert!(answer.ends_with("two"), "{answer}");
            assert!(answer.contains(&format!("X-Origin-Count: {}\r\n", n + 1)));
        }
        let unscripted = get(&origin, "/elsewhere").await;
        assert!(unscripted.contains("Cache-Control: max-age=60\r\n"));
        assert!(unscripted.ends_with("default"), "{unscripted}");
        assert!(get(&origin, "/health").await.ends_with("\r\n\r\nok"));
        assert_eq!(origin.count("/a?x=1"), 3);
        assert_eq!(origin.count("/a"), 0, "paths are matched with their query");
        assert_eq!(origin.all_requests().len(), 5);
        let first = &origin.requests("/a?x=1")[0];
        assert_eq!(
            (first.method.as_str(), first.target.as_str()),
            ("GET", "/a?x=1")
        );
        assert_eq!(first.header("HOST").as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn keep_alive_answers_pipelined_requests_with_bodies() {
        let origin = TestOrigin::start().await;
        origin.script("/p", vec![Reply::ok("posted")]);
        let answer = exchange(
            &origin,
            b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
              POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nwo\r\n3\r\nrld\r\n0\r\nT: 1\r\n\r\n\
              GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
        let bodies: Vec<_> = origin.requests("/p").into_iter().map(|r| r.body).collect();
        assert_eq!(bodies, [b"hello".to_vec(), b"world".to_vec()]);
    }

    #[tokio::test]
    async fn interim_responses_precede_the_final_one() {
        let origin = TestOrigin::start().await;
        origin.script("/i", vec![Reply::ok("done").interim(100).interim(103)]);
        let answer = get(&origin, "/i").await;
        assert!(
            answer.starts_with(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n"
            ),
            "{answer}"
        );
        assert!(answer.ends_with("done"));
    }

    #[tokio::test]
    async fn raw_status_lines_and_header_lines_are_sent_as_given() {
        let origin = TestOrigin::start().await;
        let reply = Reply::ok("x")
            .raw_status_line("HTTP/1.1 abc")
            .raw_header(b"X-Obs: caf\xe9".to_vec())
            .header("Date", "yesterday");
        origin.script("/raw", vec![reply]);
        let answer = exchange(&origin, b"GET /raw HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert!(answer.starts_with(b"HTTP/1.1 abc\r\nDate: yesterday\r\nX-Obs: caf\xe9\r\n"));
        assert_eq!(String::from_utf8_lossy(&answer).matches("Date:").count(), 1);
    }

    #[tokio::test]
    async fn bodyless_answers_and_framings_follow_the_script() {
        let origin = TestOrigin::start().await;
        origin.script("/h", vec![Reply::ok("hello")]);
        let head = exchange(&origin, b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        let head = String::from_utf8_lossy(&head);
        assert!(head.contains("Content-Length: 5\r\n") && head.ends_with("\r\n\r\n"));
        origin.script("/204", vec![Reply::status(204).body("stray")]);
        let no_content = get(&origin, "/204").await;
        assert!(!no_content.contains("Content-Length") && no_content.ends_with("\r\n\r\n"));
        origin.script(
            "/204",
            vec![Reply::status(204).body("stray").body_on_bodyless()],
        );
        let stray = get(&origin, "/204").await;
        assert!(stray.contains("Content-Length: 5\r\n") && stray.ends_with("\r\n\r\nstray"));
        origin.script("/c", vec![Reply::ok("abcdefg").framing(Framing::Chunked)]);
        assert!(get(&origin, "/c")
            .await
            .ends_with("3\r\nabc\r\n3\r\ndef\r\n1\r\ng\r\n0\r\n\r\n"));
        origin.script("/t", vec![Reply::ok("abcd").framing(Framing::Truncated)]);
        let truncated = get(&origin, "/t").await;
        assert!(truncated.contains("Content-Length: 24\r\nConnection: close\r\n\r\nabcd"));
        origin.script("/close", vec![Reply::ok("abcd").framing(Framing::Close)]);
        let closed = get(&origin, "/close").await;
        assert!(!closed.contains("Content-Length") && closed.ends_with("\r\n\r\nabcd"));
    }

    #[tokio::test]
    async fn garbage_and_oversized_heads_are_refused() {
        let origin = TestOrigin::start().await;
        let garbage = exchange(&origin, b"\x00\xff\x16garbage\r\n\r\n").await;
        assert!(garbage.starts_with(b"HTTP/1.1 400 "));
        let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        huge.extend(vec![b'a'; MAX_HEAD + 1]);
        huge.extend(b"\r\n\r\n");
        assert!(exchange(&origin, &huge).await.starts_with(b"HTTP/1.1 431 "));
        let chunk =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n";
        assert!(exchange(&origin, chunk).await.starts_with(b"HTTP/1.1 400 "));
        assert!(origin.all_requests().is_empty());
    }

    #[tokio::test]
    async fn dropping_the_origin_ends_hanging_connections() {
        let origin = TestOrigin::start().await;
        origin.script("/hang", vec![Reply::ok("never").framing(Framing::Hang)]);
        let address = origin.url.trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /hang HTTP/1.1\r\n\r\n")
            .await
            .expect("send");
        let mut head = Vec::new();
        while head_end(&head).is_none() {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.expect("read the head");
            assert!(n > 0, "the head arrives before the origin is dropped");
            head.extend_from_slice(&chunk[..n]);
        }
        drop(origin);
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest))
            .await
            .expect("the connection ends when the origin is dropped");
        assert!(ended.is_err() || rest.is_empty(), "{rest:?}");
    }
}
