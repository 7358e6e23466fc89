//! A fault-injection HTTP server for adversarial tests, on a loopback address: every answer is
//! chosen by a test closure ([`Reply`]): scripted responses (wrong digests, oversized
//! manifests, `429` + `Retry-After`, odd content types, lying `Content-Length`s), delays,
//! hangs, resets, trickles, endless streams. [`FaultServer::black_hole`] accepts connections
//! and never reads or answers (connect-then-silence timeouts).
//!
//! It records every request ([`Request`], with its body) *before* answering it, so a client
//! that has its answer always finds its request in [`FaultServer::requests`], and the first
//! byte of every connection ([`FaultServer::first_bytes`]; `0x16` is a TLS handshake, which it
//! hangs up on).
//!
//! It runs on its own thread with its own tokio runtime, so it works from sync and async tests
//! alike and a test's runtime cannot starve it; the handler runs on that runtime's blocking
//! pool, so a slow handler (one running `openssl`) delays only its own connection. HTTP/1.1
//! with keep-alive; request bodies are read by `Content-Length`.
//!
//! Raw TCP rather than hyper: several faults (a `Content-Length` that lies, a connection that
//! hangs after accept, a non-HTTP first byte) are exactly what a correct server library
//! refuses to produce.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// What to do with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A response. `Content-Length` is added from the body unless `headers` has one (which may
    /// lie); a HEAD gets the headers only.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request and never answer (the connection stays open).
    Hang,
    /// Read the request and close the connection without a byte of answer (a reset).
    Close,
    /// Send the status line and headers, then the body one byte per `every`.
    Trickle {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        every: Duration,
    },
    /// A 200 with no `Content-Length` that streams `total` bytes, then closes.
    Stream {
        headers: Vec<(String, String)>,
        total: u64,
    },
    /// Wait, then do the inner reply (a slow server).
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    /// An empty response with this status.
    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A response with these headers and body.
    pub fn with(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        Reply::Respond {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        }
    }

    /// Adds a header (to a response, trickle or stream).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        match &mut self {
            Reply::Respond { headers, .. }
            | Reply::Trickle { headers, .. }
            | Reply::Stream { headers, .. } => headers.push((name.to_owned(), value.to_owned())),
            Reply::Delayed(_, inner) => **inner = (**inner).clone().header(name, value),
            Reply::Hang | Reply::Close => panic!("a hang or close reply has no headers"),
        }
        self
    }

    /// Sets the body (of a response or trickle).
    pub fn body(mut self, new: impl Into<Vec<u8>>) -> Reply {
        match &mut self {
            Reply::Respond { body, .. } | Reply::Trickle { body, .. } => *body = new.into(),
            Reply::Delayed(_, inner) => **inner = (**inner).clone().body(new),
            _ => panic!("only a response or a trickle has a body to set"),
        }
        self
    }

    /// The same reply, after `delay`.
    pub fn delay(self, delay: Duration) -> Reply {
        Reply::Delayed(delay, Box::new(self))
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// What the server recorded.
#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Request>>,
    first_bytes: Mutex<Vec<u8>>,
}

/// A running fault-injection server; stops when dropped (its open connections close).
pub struct FaultServer {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FaultServer {
    /// Starts on `127.0.0.1:0`, answering each request with `handler(request)`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FaultServer {
        Self::start_on(Ipv4Addr::LOCALHOST, handler)
    }

    /// Starts on `ip:0` (another 127.0.0.x address stands for "another host").
    pub fn start_on(
        ip: Ipv4Addr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> FaultServer {
        Self::launch(ip, Some(Arc::new(handler)))
    }

    /// Accepts TCP connections and never reads or sends a byte; they stay open until the
    /// server is dropped, so clients wait instead of seeing a reset.
    pub fn black_hole() -> FaultServer {
        Self::launch(Ipv4Addr::LOCALHOST, None)
    }

    fn launch(ip: Ipv4Addr, handler: Option<Arc<Handler>>) -> FaultServer {
        let listener =
            std::net::TcpListener::bind((IpAddr::V4(ip), 0)).expect("bind the fault server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let log = Arc::new(Log::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let log = log.clone();
            std::thread::Builder::new()
                .name("fault-server".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("fault server runtime");
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener).expect("tokio listener");
                        let accept = async {
                            // Black-hole connections are held here until the server stops.
                            let mut held = Vec::new();
                            loop {
                                let Ok((stream, _)) = listener.accept().await else {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                    continue;
                                };
                                match &handler {
                                    None => held.push(stream),
                                    Some(handler) => {
                                        let (log, handler) = (log.clone(), handler.clone());
                                        tokio::spawn(async move {
                                            let _ = serve(stream, &log, handler).await;
                                        });
                                    }
                                }
                            }
                        };
                        tokio::select! {
                            _ = stopped => {}
                            () = accept => {}
                        }
                    });
                    // Hanging connections and handlers still running are abandoned.
                    runtime.shutdown_background();
                })
                .expect("spawn the fault server thread")
        };
        FaultServer {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, as an image reference's registry.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in arrival order (each recorded before it was answered).
    pub fn requests(&self) -> Vec<Request> {
        self.log.requests.lock().expect("lock").clone()
    }

    /// The first byte of every connection received so far (0x16 is a TLS handshake).
    pub fn first_bytes(&self) -> Vec<u8> {
        self.log.first_bytes.lock().expect("lock").clone()
    }
}

/// Largest request head accepted; beyond it the connection is dropped.
const MAX_HEAD: usize = 64 << 10;

async fn serve(mut stream: TcpStream, log: &Log, handler: Arc<Handler>) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            if first {
                log.first_bytes.lock().expect("lock").push(chunk[0]);
                first = false;
                if chunk[0] == 0x16 {
                    // A TLS ClientHello: not HTTP, hang up.
                    return Ok(());
                }
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_HEAD {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or_default().split(' ');
        let method = start.next().unwrap_or_default().to_string();
        let path = start.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 16 << 10];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let request = Request {
            method,
            path,
            headers,
            body,
        };
        // Recorded before the handler runs and before a byte of answer: whoever got an answer
        // finds the request.
        log.requests.lock().expect("lock").push(request.clone());
        let head_only = request.method == "HEAD";
        let reply = {
            let handler = handler.clone();
            match tokio::task::spawn_blocking(move || handler(&request)).await {
                Ok(reply) => reply,
                // The handler panicked: a 500 says so to the client, the panic to the log.
                Err(_) => Reply::status(500),
            }
        };
        if !answer(&mut stream, reply, head_only).await? {
            return Ok(());
        }
    }
}

/// Writes one reply; `false` when the connection is done.
async fn answer(
    stream: &mut TcpStream,
    mut reply: Reply,
    head_only: bool,
) -> std::io::Result<bool> {
    while let Reply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            {
                out.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            for (k, v) in &headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            if !head_only {
                stream.write_all(&body).await?;
            }
            stream.flush().await?;
            Ok(true)
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(false)
        }
        Reply::Close => Ok(false),
        Reply::Trickle {
            headers,
            body,
            every,
        } => {
            let mut out = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len());
            for (k, v) in &headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            for b in body {
                stream.write_all(&[b]).await?;
                stream.flush().await?;
                tokio::time::sleep(every).await;
            }
            Ok(true)
        }
        Reply::Stream { headers, total } => {
            let mut out = "HTTP/1.1 200 OK\r\nConnection: close\r\n".to_string();
            for (k, v) in &headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            let chunk = vec![b'a'; 64 << 10];
            let mut sent = 0u64;
            while sent < total {
                let n = chunk.len().min((total - sent) as usize);
                stream.write_all(&chunk[..n]).await?;
                sent += n as u64;
            }
            Ok(false)
        }
        Reply::Delayed(..) => unreachable!("delays are unwrapped above"),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The resident set size of this test process, in bytes (from `/proc/self/status`).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Instant;

    /// One raw HTTP exchange; returns what came back before the server closed or `wait`.
    fn exchange(addr: &str, request: &[u8], wait: Duration) -> Vec<u8> {
        let mut s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"done") {
                        return out;
                    }
                }
            }
        }
    }

    #[test]
    fn a_request_is_recorded_with_its_body_before_its_answer_arrives() {
        let server = FaultServer::start(|r| {
            Reply::with(201, &[("X-Seen", r.method.as_str())], "done").header("X-Path", &r.path)
        });
        let got = exchange(
            &server.addr(),
            b"POST /ocsp?x=1 HTTP/1.1\r\nHost: h\r\nContent-Type: application/ocsp-request\r\nContent-Length: 5\r\n\r\nhello",
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
        assert!(
            text.contains("X-Seen: POST\r\nX-Path: /ocsp?x=1\r\n"),
            "{text}"
        );
        // No wait, no retry: the answer is there, so is the request.
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].body, b"hello");
        assert_eq!(seen[0].path_only(), "/ocsp");
        assert_eq!(
            seen[0].header("CONTENT-TYPE"),
            Some("application/ocsp-request")
        );
    }

    #[test]
    fn keep_alive_serves_several_requests_on_one_connection_and_head_gets_no_body() {
        let server = FaultServer::start(|_| Reply::with(200, &[], "abc"));
        let mut s = StdStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !out.ends_with(b"abc") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("Content-Length: 3\r\n").count(), 2, "{text}");
        assert_eq!(text.matches("abc").count(), 1, "HEAD has no body: {text}");
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn a_delayed_reply_waits_and_a_hang_never_answers() {
        let server = FaultServer::start(|r| match r.path.as_str() {
            "/slow" => Reply::with(200, &[], "done").delay(Duration::from_millis(300)),
            _ => Reply::Hang,
        });
        let started = Instant::now();
        let got = exchange(
            &server.addr(),
            b"GET /slow HTTP/1.1\r\n\r\n",
            Duration::from_secs(5),
        );
        assert!(got.ends_with(b"done"));
        assert!(started.elapsed() >= Duration::from_millis(300));
        let got = exchange(
            &server.addr(),
            b"GET /hang HTTP/1.1\r\n\r\n",
            Duration::from_millis(300),
        );
        assert!(got.is_empty());
        assert_eq!(server.requests().len(), 2, "a hung request is recorded too");
    }

    #[test]
    fn a_black_hole_holds_connections_and_reads_nothing() {
        let hole = FaultServer::black_hole();
        let got = exchange(
            &hole.addr(),
            b"GET / HTTP/1.1\r\n\r\n",
            Duration::from_millis(300),
        );
        assert!(got.is_empty());
        assert!(hole.requests().is_empty());
        assert!(hole.first_bytes().is_empty());
    }

    #[test]
    fn a_tls_handshake_is_noted_and_hung_up_on() {
        let server = FaultServer::start(|_| Reply::status(200));
        let got = exchange(
            &server.addr(),
            &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5],
            Duration::from_secs(5),
        );
        assert!(got.is_empty());
        assert_eq!(server.first_bytes(), [0x16]);
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn it_works_from_a_current_thread_runtime_that_waits_on_it() {
        // The test's own runtime has one thread, blocked here in a reqwest call: the server
        // must not need it.
        let server = FaultServer::start(|_| Reply::with(429, &[("Retry-After", "1")], ""));
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(server.url("/v2/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(server.requests()[0].path, "/v2/");
    }
}
