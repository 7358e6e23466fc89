//! A revocation responder on `127.0.0.1:0` for the certificates of `support::notary`: it
//! serves CRLs by `GET /<path>` and answers OCSP requests (`POST`, `Content-Type:
//! application/ocsp-request`) by running `openssl ocsp -index ... -reqin ... -respout ...` on
//! each one, so the answers come from an implementation that shares nothing with signet.
//! Every request is recorded (tests assert that signet asked, or that it did not).
//!
//! Built on [`FaultServer`] rather than a long-running `openssl ocsp -port` process: one
//! openssl run per request needs no readiness polling, no port race and no process to reap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tempfile::TempDir;

use crate::fault::{FaultServer, Reply, Request};
use crate::notary::Authority;

/// The status the OCSP responder gives one serial number.
#[derive(Clone, Copy, Debug)]
pub enum CertStatus {
    Good(u64),
    Revoked(u64),
}

impl CertStatus {
    /// The line of openssl's CA database (`index.txt`): status, expiry, revocation time,
    /// serial (hex), file, subject; tab-separated.
    fn index_line(self) -> String {
        match self {
            CertStatus::Good(serial) => format!("V\t351231235959Z\t\t{serial:X}\tunknown\t/CN=x\n"),
            CertStatus::Revoked(serial) => {
                format!(
                    "R\t351231235959Z\t240101000000Z,keyCompromise\t{serial:X}\tunknown\t/CN=x\n"
                )
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// Path (with leading `/`) → DER CRL.
    crls: HashMap<String, Vec<u8>>,
    /// Whether an OCSP responder is configured (its files are in the responder's directory).
    ocsp: bool,
}

/// The running responder; stops on drop.
pub struct Responder {
    server: FaultServer,
    state: Arc<Mutex<State>>,
    dir: Arc<TempDir>,
}

impl Responder {
    pub fn start() -> Responder {
        let dir = Arc::new(
            tempfile::Builder::new()
                .prefix("signet-responder-")
                .tempdir()
                .expect("responder dir"),
        );
        let state = Arc::new(Mutex::new(State::default()));
        let server = {
            let (state, dir) = (state.clone(), dir.clone());
            FaultServer::start(move |request| answer(request, &state, &dir))
        };
        Responder { server, state, dir }
    }

    /// `http://127.0.0.1:PORT<path>`, for certificates to name.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// Serves `der` at `GET <path>`.
    pub fn serve_crl(&self, path: &str, der: Vec<u8>) {
        self.state
            .lock()
            .expect("lock")
            .crls
            .insert(path.to_owned(), der);
    }

    /// Answers OCSP requests on any path, signed by `issuer` (the CA itself, as `openssl ocsp
    /// -rsigner` with the CA certificate does), with these statuses; other serials are
    /// "unknown".
    pub fn answer_ocsp(&self, issuer: &Authority, statuses: &[CertStatus]) {
        let d = self.dir.path();
        std::fs::write(d.join("ca.pem"), &issuer.cert_pem).expect("write OCSP CA");
        std::fs::write(d.join("ca.key"), &issuer.key_pem).expect("write OCSP key");
        let index: String = statuses.iter().map(|s| s.index_line()).collect();
        std::fs::write(d.join("index.txt"), index).expect("write index.txt");
        self.state.lock().expect("lock").ocsp = true;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// The OCSP requests received so far (POSTs with the OCSP content type).
    pub fn ocsp_requests(&self) -> Vec<Request> {
        self.requests().into_iter().filter(is_ocsp).collect()
    }

    /// The `GET`s of `path` received so far.
    pub fn crl_fetches(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    }

    /// What was asked, one `METHOD target` per request, for assertion messages.
    pub fn log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn is_ocsp(request: &Request) -> bool {
    request.method == "POST" && request.header("content-type") == Some("application/ocsp-request")
}

fn answer(request: &Request, state: &Mutex<State>, dir: &TempDir) -> Reply {
    let (crl, ocsp) = {
        let state = state.lock().expect("lock");
        (state.crls.get(&request.path).cloned(), state.ocsp)
    };
    match request.method.as_str() {
        "GET" => match crl {
            Some(der) => Reply::status(200)
                .header("Content-Type", "application/pkix-crl")
                .body(der),
            None => Reply::status(404),
        },
        "POST" if is_ocsp(request) && ocsp => {
            match openssl_ocsp(&request.body, dir.path().into()) {
                Ok(der) => Reply::status(200)
                    .header("Content-Type", "application/ocsp-response")
                    .body(der),
                Err(why) => Reply::status(500).body(why),
            }
        }
        _ => Reply::status(404),
    }
}

/// `openssl ocsp` as a responder for one request, from the files [`Responder::answer_ocsp`]
/// wrote. Each run works in its own directory, so concurrent requests do not collide.
fn openssl_ocsp(request: &[u8], dir: PathBuf) -> Result<Vec<u8>, String> {
    let work = tempfile::tempdir_in(&dir).map_err(|e| e.to_string())?;
    let w = work.path();
    std::fs::write(w.join("req.der"), request).map_err(|e| e.to_string())?;
    let path = |name: &str| dir.join(name).display().to_string();
    let out = Command::new("openssl")
        .args(["ocsp", "-index", &path("index.txt"), "-CA", &path("ca.pem")])
        .args(["-rsigner", &path("ca.pem"), "-rkey", &path("ca.key")])
        .args(["-reqin", "req.der", "-respout", "resp.der", "-ndays", "1"])
        .current_dir(w)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl ocsp failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::read(w.join("resp.der")).map_err(|e| e.to_string())
}
