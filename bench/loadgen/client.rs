//! The HTTPS client: one hyper HTTP/1.1 (or HTTP/2) connection per worker, TLS by
//! tokio-rustls; one review sent and its answer checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::report::Stats;

/// What the API server sends by default, and what the client waits at most.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Target {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub path: String,
    /// Offer only `h2` (ALPN) and speak HTTP/2; otherwise only `http/1.1`.
    pub h2: bool,
}

/// One client connection, or one HTTP/2 stream slot of a shared connection (a clone of its
/// `SendRequest`: each worker keeps one review in flight on it).
pub enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Target {
    pub fn new(addr: SocketAddr, ca_pem: &str, path: &str) -> anyhow::Result<Target> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Offer only http/1.1, as an API server would be answered by a webhook choosing it.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Target {
            addr,
            tls: Arc::new(tls),
            path: path.to_owned(),
            h2: false,
        })
    }

    /// The same server, offering only `h2` (what an API server's Go client negotiates when the
    /// webhook offers it).
    pub fn http2(&self) -> Target {
        let mut tls = (*self.tls).clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Target {
            addr: self.addr,
            tls: Arc::new(tls),
            path: self.path.clone(),
            h2: true,
        }
    }

    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from("localhost")?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        if self.h2 {
            anyhow::ensure!(
                tls.get_ref().1.alpn_protocol() == Some(b"h2"),
                "the server did not choose h2"
            );
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H1(send))
        }
    }

    pub async fn post(&self, send: &mut Conn, body: Bytes) -> anyhow::Result<(StatusCode, Bytes)> {
        let req = Request::post(&self.path)
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let resp = tokio::time::timeout(REVIEW_TIMEOUT, async {
            let resp = match send {
                Conn::H1(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
                Conn::H2(s) => {
                    s.ready().await?;
                    s.send_request(req).await?
                }
            };
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .context("no answer within the webhook timeout")??;
        Ok(resp)
    }
}

/// `Some(allowed)` from a response review (a byte search: the client must stay cheap).
pub fn allowed_of(body: &[u8]) -> Option<bool> {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if has(b"\"allowed\":true") {
        Some(true)
    } else if has(b"\"allowed\":false") {
        Some(false)
    } else {
        None
    }
}

/// The deny message of a response review, shortened for the table.
pub fn message_of(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let m = v["response"]["status"]["message"]
        .as_str()
        .unwrap_or("(no message)");
    let m: String = m.chars().filter(|c| *c != '|' && *c != '\n').collect();
    if m.chars().count() > 240 {
        format!("{}…", m.chars().take(240).collect::<String>())
    } else {
        m
    }
}

/// One review body and the `allowed` it must get (`None`: any answer is fine, e.g. the echo).
#[derive(Clone)]
pub struct Work {
    pub body: Bytes,
    pub expect: Option<bool>,
}

pub async fn connect_all(target: &Target, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    // Batches, so the listen backlog never overflows.
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let made = futures_util::future::join_all(chunk.iter().map(|_| target.connect())).await;
        for c in made {
            conns.push(c?);
        }
    }
    Ok(conns)
}

pub async fn send_one(
    target: &Target,
    send: &mut Conn,
    work: &Work,
    since: Instant,
    stats: &mut Stats,
) {
    let answer = target.post(send, work.body.clone()).await;
    match answer {
        Ok((StatusCode::OK, ref body)) => {
            stats
                .hist
                .saturating_record(since.elapsed().as_nanos() as u64);
            stats.ok += 1;
            let got = allowed_of(body);
            if let Some(expect) = work.expect
                && got != Some(expect)
            {
                stats.wrong += 1;
                if got == Some(true) {
                    stats.wrongly_allowed += 1;
                }
                if stats.wrong_samples.len() < 3 {
                    stats.wrong_samples.push(message_of(body));
                }
            }
        }
        Ok(_) | Err(_) => {
            stats.errors += 1;
            if matches!(&answer, Err(e) if e.is::<tokio::time::error::Elapsed>()) {
                stats.timeouts += 1;
            }
            if let Ok(fresh) = target.connect().await {
                *send = fresh;
            }
        }
    }
}
