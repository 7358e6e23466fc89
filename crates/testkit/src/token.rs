//! A tiny Docker-registry token server for Bearer-auth tests (`auth.token` in the registry's
//! config): `GET /token?service=..&scope=repository:NAME:ACTIONS` with Basic credentials
//! answers `{"token": JWT, "access_token": JWT, "expires_in": 300}`.
//!
//! The JWT is what distribution 2.8 accepts: RS256, header `x5c` = a self-signed
//! certificate that is the registry's `rootcertbundle`, claims `iss`, `aud` = service, `exp`,
//! `nbf`, `iat`, `jti` and `access`. It runs on a plain-HTTP loopback port in its own thread
//! and records every request so tests can check what a client sent (and to whom).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use serde_json::{Value, json};

/// `service` in the registry config and the token's `aud`.
pub const SERVICE: &str = "signet-test-registry";
/// `issuer` in the registry config and the token's `iss`.
pub const ISSUER: &str = "signet-test-token-issuer";

/// One request the token server received.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The `Authorization` header as received, if any.
    pub authorization: Option<String>,
    /// Every `scope` parameter, decoded.
    pub scopes: Vec<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// Whether a token was issued (credentials matched).
    pub granted: bool,
    /// The request path (`/token`, or `/exchange` for the ACR exchange).
    pub path: String,
    /// The form fields of a POST.
    pub form: Vec<(String, String)>,
}

/// The ACR-style `/oauth2/exchange` (here `/exchange`, the realm's sibling): a form POST with
/// `grant_type=access_token`, `service`, `tenant` and an Entra `access_token` that `accept`
/// approves, answered with a refresh token; `/token` then grants to the user
/// `00000000-0000-0000-0000-000000000000` with that refresh token as password.
pub struct AcrExchange {
    pub accept: Box<dyn Fn(&str) -> bool + Send + Sync>,
    pub tenant: String,
    pub issued: Vec<String>,
}

/// The user name ACR refresh tokens are presented with.
pub const ACR_NULL_USER: &str = "00000000-0000-0000-0000-000000000000";

/// Signs registry tokens; shared by the server thread and [`crate::oci::Pusher`].
pub struct TokenMinter {
    pkcs8: Vec<u8>,
    cert_der: Vec<u8>,
    cert_pem: String,
}

/// RSA keys take seconds to make: one signing key per test binary.
static SIGNING_KEY: OnceLock<Vec<u8>> = OnceLock::new();

impl TokenMinter {
    fn new() -> TokenMinter {
        let pkcs8 = SIGNING_KEY
            .get_or_init(|| {
                let pair = signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("generate RSA token key");
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().expect("RSA PKCS#8");
                der.as_ref().to_vec()
            })
            .clone();
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .expect("rcgen RSA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("token cert params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "signet test token issuer");
        let cert = params.self_signed(&key).expect("self-sign token cert");
        TokenMinter {
            pkcs8,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
        }
    }

    /// The certificate the registry trusts (`rootcertbundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A signed token for `subject` granting `access` (`[{type, name, actions}]`).
    pub fn mint(&self, subject: &str, access: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [BASE64.encode(&self.cert_der)]});
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now - 10,
            "jti": format!("{now}-{}", rand_u64()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            BASE64URL.encode(serde_json::to_vec(&header).expect("JSON")),
            BASE64URL.encode(serde_json::to_vec(&claims).expect("JSON"))
        );
        let pair = signature::RsaKeyPair::from_pkcs8(&self.pkcs8).expect("parse RSA key");
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .expect("sign token");
        format!("{signing_input}.{}", BASE64URL.encode(sig))
    }

    /// A token with every action on `repo` (or no access at all for `None`, enough for `/v2/`).
    pub fn mint_for_repo(&self, subject: &str, repo: Option<&str>) -> String {
        let access = match repo {
            Some(name) => json!([{"type": "repository", "name": name,
                                  "actions": ["pull", "push", "delete"]}]),
            None => json!([]),
        };
        self.mint(subject, access)
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    u64::from_le_bytes(bytes)
}

/// The token server thread; stopped on drop.
pub struct TokenServer {
    port: u16,
    minter: Arc<TokenMinter>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    acr: Arc<Mutex<Option<AcrExchange>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Starts a token server that grants any requested scope to `user`/`password` and
    /// answers 401 to anyone else.
    pub fn start(user: &str, password: &str) -> TokenServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let minter = Arc::new(TokenMinter::new());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acr: Arc<Mutex<Option<AcrExchange>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!(
            "Basic {}",
            BASE64.encode(format!("{user}:{password}").as_bytes())
        );
        let thread = {
            let (minter, requests, stop, user, acr) = (
                minter.clone(),
                requests.clone(),
                stop.clone(),
                user.to_owned(),
                acr.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            // Recorded before the answer is written: a client that has its
                            // answer must find its request in `requests()`.
                            if let Some((record, response)) =
                                serve(&mut stream, &minter, &expected, &user, &acr)
                            {
                                requests.lock().expect("lock").push(record);
                                let _ = stream.write_all(response.as_bytes());
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        TokenServer {
            port,
            minter,
            requests,
            acr,
            stop,
            thread: Some(thread),
        }
    }

    /// Serves the ACR exchange too (see [`AcrExchange`]).
    pub fn enable_acr_exchange(
        &self,
        tenant: &str,
        accept: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) {
        *self.acr.lock().expect("lock") = Some(AcrExchange {
            accept: Box::new(accept),
            tenant: tenant.to_owned(),
            issued: Vec::new(),
        });
    }

    /// `http://127.0.0.1:PORT/token`: the registry's `realm`.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The signer (shared with pushers that mint their own tokens).
    pub fn minter(&self) -> Arc<TokenMinter> {
        self.minter.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request and returns what to record and the response to write.
fn serve(
    stream: &mut TcpStream,
    minter: &TokenMinter,
    expected_auth: &str,
    user: &str,
    acr: &Mutex<Option<AcrExchange>>,
) -> Option<(TokenRequest, String)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let split = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let mut body = head[split + 4..].to_vec();
    let head = String::from_utf8_lossy(&head[..split]).into_owned();
    let header = |wanted: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.trim().to_owned())
    };
    let length: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    while body.len() < length.min(64 * 1024) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let target = head.split("\r\n").next()?.split(' ').nth(1)?.to_owned();
    let path = target.split('?').next().unwrap_or("").to_owned();
    let authorization = header("authorization");
    if path == "/exchange" {
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let mut guard = acr.lock().expect("lock");
        let granted = guard.as_mut().and_then(|x| {
            let ok = field("grant_type") == Some("access_token")
                && field("service") == Some(SERVICE)
                && field("tenant") == Some(x.tenant.as_str())
                && field("access_token").is_some_and(|t| (x.accept)(t));
            ok.then(|| {
                let refresh = format!("acr-refresh-{}", rand_u64());
                x.issued.push(refresh.clone());
                refresh
            })
        });
        drop(guard);
        let (status, body) = match &granted {
            Some(refresh) => ("200 OK", json!({"refresh_token": refresh}).to_string()),
            None => (
                "401 Unauthorized",
                json!({"errors": [{"code": "UNAUTHORIZED"}]}).to_string(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let record = TokenRequest {
            authorization,
            scopes: Vec::new(),
            service: None,
            granted: granted.is_some(),
            path,
            form,
        };
        return Some((record, response));
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "scope" => scopes.extend(value.split(' ').map(str::to_owned)),
            "service" => service = Some(value),
            _ => {}
        }
    }
    let acr_granted = acr.lock().expect("lock").as_ref().is_some_and(|x| {
        x.issued.iter().any(|refresh| {
            authorization.as_deref()
                == Some(&format!(
                    "Basic {}",
                    BASE64.encode(format!("{ACR_NULL_USER}:{refresh}").as_bytes())
                ))
        })
    });
    let granted = authorization.as_deref() == Some(expected_auth) || acr_granted;
    let (status, body) = if granted {
        let access: Vec<Value> = scopes
            .iter()
            .filter_map(|scope| {
                // repository:NAME:ACTIONS, NAME may hold ':' (host:port) so split at the ends.
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(json!({"type": kind, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let token = minter.mint(user, Value::Array(access));
        (
            "200 OK",
            json!({"token": token, "access_token": token, "expires_in": 300}).to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            json!({"errors": [{"code": "UNAUTHORIZED"}]}).to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let record = TokenRequest {
        authorization,
        scopes,
        service,
        granted,
        path,
        form,
    };
    Some((record, response))
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
