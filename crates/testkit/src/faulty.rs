//! A misbehaving registry: a small HTTP/1.1 server on a loopback address whose every answer is
//! chosen by a test closure ([`Reply`]): hang, trickle, lie about lengths and digests, stream a
//! gigabyte, redirect, throttle. It records what it was sent ([`Seen`]) so tests can assert
//! that, say, no `Authorization` header reached it, or that nothing arrived at all.
//!
//! Raw tokio TCP rather than hyper: several faults (a `Content-Length` that lies, a connection
//! that hangs after accept, a non-HTTP first byte) are exactly what a correct server library
//! refuses to produce.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with a request.
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
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

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
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A running misbehaving server; stops when dropped.
pub struct FaultyServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyServer {
    /// Starts on `127.0.0.1:0`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FaultyServer {
        Self::start_on(Ipv4Addr::LOCALHOST, handler).await
    }

    /// Starts on `ip:0` (another 127.0.0.x address stands for "another host").
    pub async fn start_on(
        ip: Ipv4Addr,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> FaultyServer {
        let listener = TcpListener::bind((IpAddr::V4(ip), 0))
            .await
            .expect("bind the faulty server");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task = {
            let seen = seen.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (seen, connections, handler) =
                        (seen.clone(), connections.clone(), handler.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, &seen, &connections, handler.as_ref()).await;
                    });
                }
            })
        };
        FaultyServer {
            addr,
            seen,
            connections,
            task,
        }
    }

    /// `127.0.0.1:PORT`, as an image reference's registry.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The first byte of every connection received so far (0x16 is a TLS handshake).
    pub fn first_bytes(&self) -> Vec<u8> {
        self.connections.lock().expect("lock").clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    connections: &Mutex<Vec<u8>>,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        // Read one request head (GET/HEAD: no body).
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
                connections.lock().expect("lock").push(chunk[0]);
                first = false;
                if chunk[0] == 0x16 {
                    // A TLS ClientHello: not HTTP, hang up.
                    return Ok(());
                }
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 64 << 10 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or_default().split(' ');
        let method = start.next().unwrap_or_default().to_string();
        let path = start.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let req = Seen {
            method,
            path,
            headers,
        };
        seen.lock().expect("lock").push(req.clone());
        let head_only = req.method == "HEAD";
        match handler(&req) {
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
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Reply::Close => return Ok(()),
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
                return Ok(());
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
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
