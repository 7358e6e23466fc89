//! A test stand-in for Azure, over HTTPS on 127.0.0.1 (its own test CA): the Entra ID token
//! endpoint and the Key Vault data-plane endpoints signet uses, written from the public REST
//! API reference, not from signet's client.
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (form): `grant_type=client_credentials`, the right
//!   `client_id`, and either `client_assertion_type=…jwt-bearer` with the expected federated
//!   token (whose `aud` must be `api://AzureADTokenExchange`) or the expected `client_secret`;
//!   `scope` must be the vault's or the registry's `/.default`. Errors are Entra's
//!   `{"error", "error_description"}` with AADSTS codes.
//! - `GET /keys/{name}/versions`, `/keys/{name}/{version}`, the same for `certificates`, and
//!   `GET /secrets/{name}/{version}`, all with `api-version=7.4` (else 400 BadParameter), a
//!   Bearer token issued for the vault scope (else 401 with a Bearer challenge), and the REST
//!   API's `{"error":{"code","message","innererror"}}` shapes: 404 `KeyNotFound`,
//!   `CertificateNotFound`, `SecretNotFound`; 403 `SecretDisabled` on a disabled secret.
//!
//! Controls: add versions (rotate), disable and enable versions, delete objects, fail every
//! vault request with a status, throttle with 429 + `Retry-After`. Every request is recorded.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use super::registry::TestTls;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "5f0c7e8a-1111-4222-8333-944455556666";
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// The audience Entra expects in a federated credential.
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// One request received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
}

#[derive(Clone, Debug)]
struct Version {
    id: String,
    enabled: bool,
    created: i64,
    /// Keys: the JWK. Certificates: `cer` (base64 DER).
    body: Value,
    /// Certificates: the secret's value and content type.
    secret: Option<(String, String)>,
}

#[derive(Default)]
struct State {
    assertion: String,
    client_secret: Option<String>,
    /// token → scope.
    issued: HashMap<String, String>,
    keys: HashMap<String, Vec<Version>>,
    certificates: HashMap<String, Vec<Version>>,
    fail: Option<u16>,
    throttle: Option<u64>,
    seen: Vec<Seen>,
    counter: u64,
    clock: i64,
}

/// The test Azure endpoint; stopped on drop.
pub struct AzureServer {
    pub addr: SocketAddr,
    pub tls: TestTls,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AzureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A federated service-account token as the AKS webhook projects it (unsigned here: the
/// test Entra only reads its audience).
pub fn federated_token(audience: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"aud": [audience], "iss": "https://oidc.test/", "sub": "system:serviceaccount:signet:signet"})
            .to_string(),
    );
    format!("{header}.{claims}.c2ln")
}

impl AzureServer {
    /// Starts the server; it accepts `assertion` as the federated token.
    pub async fn start(assertion: &str) -> AzureServer {
        let tls = TestTls::generate();
        let certs: Vec<_> =
            rustls_pki_types::CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            assertion: assertion.to_string(),
            clock: 1_700_000_000,
            ..State::default()
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, state) = (acceptor.clone(), state.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(handle(req, &state, addr).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    });
                }
            })
        };
        AzureServer {
            addr,
            tls,
            state,
            task,
        }
    }

    /// `https://127.0.0.1:PORT/`: the authority host and the vault URI.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Also accept this client secret.
    pub fn accept_client_secret(&self, secret: &str) {
        self.state.lock().unwrap().client_secret = Some(secret.to_string());
    }

    /// Whether `token` was issued by this Entra for `scope`.
    pub fn issued_for(&self, token: &str, scope: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .issued
            .get(token)
            .map(String::as_str)
            == Some(scope)
    }

    /// Every token issued, with its scope.
    pub fn issued(&self) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        s.issued
            .iter()
            .map(|(t, sc)| (t.clone(), sc.clone()))
            .collect()
    }

    /// A checker for other test servers: was this token issued for `scope`?
    pub fn checker(&self, scope: &'static str) -> impl Fn(&str) -> bool + Send + Sync + 'static {
        let state = self.state.clone();
        move |token| state.lock().unwrap().issued.get(token).map(String::as_str) == Some(scope)
    }

    /// Adds a new version of key `name` (EC P-256/384/521: `crv`, `x`, `y`; RSA: `n`, `e`);
    /// it becomes the newest. Returns the version.
    pub fn add_key_version(&self, name: &str, jwk: Value) -> String {
        let mut s = self.state.lock().unwrap();
        let version = next_version(&mut s);
        let created = tick(&mut s);
        let id = format!("https://{}/keys/{name}/{version}", "VAULT");
        let mut jwk = jwk;
        jwk["kid"] = json!(id);
        jwk["key_ops"] = json!(["verify"]);
        s.keys.entry(name.to_string()).or_default().push(Version {
            id,
            enabled: true,
            created,
            body: jwk,
            secret: None,
        });
        version
    }

    /// Adds a new version of certificate `name`: its DER and its secret (`value`,
    /// `contentType`).
    pub fn add_certificate_version(
        &self,
        name: &str,
        der: &[u8],
        secret_value: &str,
        content_type: &str,
    ) -> String {
        let mut s = self.state.lock().unwrap();
        let version = next_version(&mut s);
        let created = tick(&mut s);
        s.certificates
            .entry(name.to_string())
            .or_default()
            .push(Version {
                id: format!("https://VAULT/certificates/{name}/{version}"),
                enabled: true,
                created,
                body: json!(STANDARD.encode(der)),
                secret: Some((secret_value.to_string(), content_type.to_string())),
            });
        version
    }

    /// Enables or disables one version of a key or certificate.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        let mut s = self.state.lock().unwrap();
        let found = s
            .keys
            .get_mut(name)
            .into_iter()
            .flat_map(|l| l.iter_mut())
            .filter(|v| v.id.ends_with(&format!("/{version}")))
            .map(|v| v.enabled = enabled)
            .count();
        let found_cert = s
            .certificates
            .get_mut(name)
            .into_iter()
            .flat_map(|l| l.iter_mut())
            .filter(|v| v.id.ends_with(&format!("/{version}")))
            .map(|v| v.enabled = enabled)
            .count();
        assert!(found + found_cert > 0, "no version {version} of {name}");
    }

    /// Deletes every version of a key or certificate.
    pub fn delete(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.keys.remove(name);
        s.certificates.remove(name);
    }

    /// Answers every vault request with `status` (`None`: serve normally).
    pub fn fail(&self, status: Option<u16>) {
        self.state.lock().unwrap().fail = status;
    }

    /// Answers every vault request with 429 and this `Retry-After` (`None`: serve normally).
    pub fn throttle(&self, retry_after: Option<u64>) {
        self.state.lock().unwrap().throttle = retry_after;
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn next_version(s: &mut State) -> String {
    s.counter += 1;
    format!("{:032x}", 0xabc0_0000_u64 + s.counter)
}

fn tick(s: &mut State) -> i64 {
    s.clock += 60;
    s.clock
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn vault_error(
    status: StatusCode,
    code: &str,
    message: &str,
    inner: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut error = json!({"code": code, "message": message});
    if let Some(i) = inner {
        error["innererror"] = json!({"code": i});
    }
    reply(status, json!({ "error": error }))
}

fn entra_error(code: &str, description: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": description, "error_codes": [0]}),
    )
}

fn parse_form(s: &str) -> HashMap<String, String> {
    url_pairs(s)
}

fn url_pairs(s: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{s}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    state: &Arc<Mutex<State>>,
    addr: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = parse_form(&String::from_utf8_lossy(&body));
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
        form: form.clone(),
    });
    if path == format!("/{TENANT}/oauth2/v2.0/token") && method == "POST" {
        return token(&mut s, &form);
    }
    if path.contains("/oauth2/") {
        return entra_error("invalid_request", "AADSTS90002: Tenant not found.");
    }
    // Key Vault.
    if method != "GET" {
        return vault_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadParameter",
            "only GET here",
            None,
        );
    }
    let params = url_pairs(&query);
    if params.get("api-version").map(String::as_str) != Some("7.4") {
        return vault_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The specified version is not recognized. Consider using the latest supported version (7.4).",
            None,
        );
    }
    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or_default();
    if s.issued.get(token).map(String::as_str) != Some(VAULT_SCOPE) {
        let mut r = vault_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
            None,
        );
        r.headers_mut().insert(
            "www-authenticate",
            format!("Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\"")
                .parse()
                .unwrap(),
        );
        return r;
    }
    if let Some(secs) = s.throttle {
        let mut r = vault_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttled",
            "Rate limit exceeded.",
            None,
        );
        r.headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
        return r;
    }
    if let Some(status) = s.fail {
        return vault_error(
            StatusCode::from_u16(status).unwrap(),
            "InternalServerError",
            "The service is unavailable.",
            None,
        );
    }
    let vault = format!("https://{addr}");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [collection @ ("keys" | "certificates"), name, "versions"] => {
            let list = if *collection == "keys" {
                &s.keys
            } else {
                &s.certificates
            };
            let Some(versions) = list.get(*name) else {
                return not_found(collection, name);
            };
            let value: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let id = v.id.replace("https://VAULT", &vault);
                    let mut item = json!({"attributes": {"enabled": v.enabled, "created": v.created, "updated": v.created, "recoveryLevel": "Recoverable+Purgeable"}});
                    item[if *collection == "keys" { "kid" } else { "id" }] = json!(id);
                    item
                })
                .collect();
            reply(StatusCode::OK, json!({"value": value, "nextLink": null}))
        }
        [
            collection @ ("keys" | "certificates" | "secrets"),
            name,
            version,
        ] => {
            let list = if *collection == "keys" {
                &s.keys
            } else {
                &s.certificates
            };
            let Some(v) = list
                .get(*name)
                .and_then(|l| l.iter().find(|v| v.id.ends_with(&format!("/{version}"))))
            else {
                return not_found(collection, name);
            };
            let attributes = json!({"enabled": v.enabled, "created": v.created, "updated": v.created, "recoveryLevel": "Recoverable+Purgeable"});
            match *collection {
                "keys" => {
                    let mut key = v.body.clone();
                    key["kid"] = json!(v.id.replace("https://VAULT", &vault));
                    reply(
                        StatusCode::OK,
                        json!({"key": key, "attributes": attributes}),
                    )
                }
                "certificates" => reply(
                    StatusCode::OK,
                    json!({
                        "id": v.id.replace("https://VAULT", &vault),
                        "kid": format!("{vault}/keys/{name}/{version}"),
                        "sid": format!("{vault}/secrets/{name}/{version}"),
                        "cer": v.body,
                        "attributes": attributes,
                        "policy": {"id": format!("{vault}/certificates/{name}/policy")},
                    }),
                ),
                _ => {
                    if !v.enabled {
                        return vault_error(
                            StatusCode::FORBIDDEN,
                            "Forbidden",
                            "Operation get is not allowed on a disabled secret.",
                            Some("SecretDisabled"),
                        );
                    }
                    let (value, content_type) = v.secret.clone().unwrap_or_default();
                    reply(
                        StatusCode::OK,
                        json!({
                            "value": value,
                            "contentType": content_type,
                            "id": format!("{vault}/secrets/{name}/{version}"),
                            "kid": format!("{vault}/keys/{name}/{version}"),
                            "managed": true,
                            "attributes": attributes,
                        }),
                    )
                }
            }
        }
        _ => vault_error(StatusCode::NOT_FOUND, "BadParameter", "Unknown path.", None),
    }
}

fn not_found(collection: &str, name: &str) -> Response<Full<Bytes>> {
    let (code, noun) = match collection {
        "keys" => ("KeyNotFound", "key"),
        "certificates" => ("CertificateNotFound", "certificate"),
        _ => ("SecretNotFound", "secret"),
    };
    vault_error(
        StatusCode::NOT_FOUND,
        code,
        &format!("A {noun} with (name/id) {name} was not found in this key vault."),
        None,
    )
}

fn token(s: &mut State, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("grant_type") != Some("client_credentials") {
        return entra_error(
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if get("client_id") != Some(CLIENT_ID) {
        return entra_error(
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    match (
        get("client_assertion_type"),
        get("client_assertion"),
        get("client_secret"),
    ) {
        (Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), Some(assertion), None) => {
            let aud = assertion
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|c| c.get("aud").cloned());
            let aud_ok = match aud {
                Some(Value::Array(a)) => a.iter().any(|x| x == EXCHANGE_AUDIENCE),
                Some(Value::String(a)) => a == EXCHANGE_AUDIENCE,
                _ => false,
            };
            if !aud_ok {
                return entra_error(
                    "invalid_client",
                    "AADSTS700212: No matching federated identity record found for presented assertion audience.",
                );
            }
            if assertion != s.assertion {
                return entra_error(
                    "invalid_client",
                    "AADSTS700213: No matching federated identity record found for presented assertion subject.",
                );
            }
        }
        (None, None, Some(secret)) if s.client_secret.as_deref() == Some(secret) => {}
        (None, None, Some(_)) => {
            return entra_error(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        _ => {
            return entra_error(
                "invalid_request",
                "AADSTS900144: The request body must contain client_assertion or client_secret.",
            );
        }
    }
    let scope = get("scope").unwrap_or_default();
    if scope != VAULT_SCOPE && scope != ACR_SCOPE {
        return entra_error(
            "invalid_scope",
            "AADSTS70011: The provided request must include a 'scope' input parameter with a valid resource.",
        );
    }
    s.counter += 1;
    let token = format!(
        "eyJ0eXAiOiJKV1QifQ.{}.{}",
        URL_SAFE_NO_PAD.encode(scope),
        s.counter
    );
    s.issued.insert(token.clone(), scope.to_string());
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}
