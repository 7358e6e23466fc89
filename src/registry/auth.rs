//! Registry authentication: credentials (from a docker `config.json` or any
//! [`CredentialSource`]), the Bearer challenge, and the rules for where credentials may go.
//!
//! Credentials belong to one registry host, matched exactly (`host` or `host:port`, no
//! suffix or pattern matching). They are sent (1) to that host, and never across a redirect to
//! another host, scheme or port (reqwest strips `Authorization` then: tested in
//! `tests/it/registry_auth.rs`), and (2) to a token realm only when the realm's host is the
//! registry's own host name or is listed for that registry ([`realm_may_receive_credentials`]).
//! A realm on any other host still gets a token request, anonymously: public images keep
//! working and a hostile registry learns nothing (containerd CVE-2020-15157). Credentials never
//! reach `Debug` output or logs. Imports nothing from signet outside `registry`.

use super::SetupError;
use std::collections::HashMap;

/// Username and password for one registry host. The password never reaches `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

impl Credentials {
    /// A stable, non-secret identity for cache keys: a short SHA-256 of the username and
    /// password. Two different secrets never share a cached token or (once the engine keys its
    /// tag cache by it) a cached resolution.
    pub fn identity(&self) -> String {
        use aws_lc_rs::digest::{SHA256, digest};
        let d = digest(
            &SHA256,
            format!("{}\0{}", self.username, self.password).as_bytes(),
        );
        hex::encode(&d.as_ref()[..12])
    }
}

/// Where credentials for a registry host come from. The static map from `--docker-config` is
/// one; a per-request source (a pod's `imagePullSecrets`) is another, and must then also be
/// part of the decision caches' keys (see `docs/registry.md`).
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// Credentials for exactly this registry host (`host` or `host:port`), if any.
    fn credentials(&self, host: &str) -> Option<Credentials>;
}

impl CredentialSource for HashMap<String, Credentials> {
    fn credentials(&self, host: &str) -> Option<Credentials> {
        self.get(host).cloned()
    }
}

/// Reads the `auths` of a docker `config.json`. `credHelpers` and `credsStore` cannot be
/// run here (no helper binaries in the image); they are reported so the caller can warn.
pub fn docker_config(
    text: &str,
) -> Result<(HashMap<String, Credentials>, Vec<String>), SetupError> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DockerConfig {
        #[serde(default)]
        auths: HashMap<String, AuthEntry>,
        #[serde(default)]
        cred_helpers: HashMap<String, String>,
        #[serde(default)]
        creds_store: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct AuthEntry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    let cfg: DockerConfig = serde_json::from_str(text).map_err(SetupError::DockerConfig)?;
    let mut creds = HashMap::new();
    for (host, entry) in cfg.auths {
        let host = normalise_config_host(&host);
        let c = match (entry.auth, entry.username, entry.password) {
            (Some(auth), _, _) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|source| SetupError::AuthNotBase64 {
                        host: host.clone(),
                        source,
                    })?;
                let raw =
                    String::from_utf8(raw).map_err(|_| SetupError::AuthNotUtf8(host.clone()))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| SetupError::AuthNotUserPassword(host.clone()))?;
                Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }
            }
            (None, Some(username), Some(password)) => Credentials { username, password },
            _ => continue,
        };
        creds.insert(host, c);
    }
    let mut ignored: Vec<String> = cfg.cred_helpers.into_keys().collect();
    if let Some(store) = cfg.creds_store {
        ignored.push(format!("credsStore {store}"));
    }
    Ok((creds, ignored))
}

/// `https://index.docker.io/v1/` and friends become the host signet uses in references, by the
/// same normalisation as image hosts ([`crate::image::normalize_host`]: lower case, no `:443`,
/// Docker Hub's aliases folded). A key that is no valid host is kept as written, lower-cased:
/// it can match no image, and one odd entry must not make the whole file unreadable.
pub(crate) fn normalise_config_host(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let host = lower
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    crate::image::normalize_host(host).unwrap_or_else(|_| host.to_string())
}

/// A `WWW-Authenticate: Bearer` challenge whose realm passed [`parse_bearer`]'s checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bearer {
    pub realm: reqwest::Url,
    pub service: Option<String>,
}

/// Why a 401 challenge cannot be answered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChallengeError {
    /// No challenge, or a scheme other than Bearer (Basic: the credentials sent, if any, were
    /// refused).
    #[error("{0} authentication is required")]
    NotBearer(String),
    /// A Bearer challenge signet will not follow.
    #[error("{0}")]
    Unusable(&'static str),
}

/// Parses a Bearer challenge. The realm must be an absolute `https` URL (or `http` where
/// `allow_http` says so: the registry or the realm's host is a configured insecure host), with
/// no user information.
pub(crate) fn parse_bearer(
    headers: &reqwest::header::HeaderMap,
    allow_http: impl Fn(&reqwest::Url) -> bool,
) -> Result<Bearer, ChallengeError> {
    let value = headers
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ChallengeError::NotBearer("some".into()))?
        .trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        let scheme: String = scheme
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(20)
            .collect();
        return Err(ChallengeError::NotBearer(scheme));
    }
    let mut realm = None;
    let mut service = None;
    for part in split_params(rest) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    let unusable = ChallengeError::Unusable;
    let realm = realm.ok_or(unusable("a Bearer challenge without a realm"))?;
    let url =
        reqwest::Url::parse(&realm).map_err(|_| unusable("a Bearer realm that is not a URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http(&url) => {}
        _ => return Err(unusable("a Bearer realm that is not https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(unusable("a Bearer realm with user information"));
    }
    Ok(Bearer {
        realm: url,
        service,
    })
}

/// Whether the token realm may receive the registry's credentials: its host is the registry's
/// host name (any port: same name, same operator), or one listed for the registry in
/// `realm_hosts`, or Docker Hub's own token service.
pub(crate) fn realm_may_receive_credentials(
    registry: &str,
    realm: &reqwest::Url,
    realm_hosts: &HashMap<String, Vec<String>>,
) -> bool {
    let Some(realm_host) = realm.host_str() else {
        return false;
    };
    let registry_name = host_name(registry);
    if realm_host.eq_ignore_ascii_case(registry_name) {
        return true;
    }
    if registry == "docker.io" && realm_host == "auth.docker.io" {
        return true;
    }
    realm_hosts
        .get(registry)
        .is_some_and(|hosts| hosts.iter().any(|h| h.eq_ignore_ascii_case(realm_host)))
}

/// `host:port` → `host`; `[::1]:5000` → `[::1]`.
fn host_name(host_port: &str) -> &str {
    if host_port.starts_with('[') {
        return host_port
            .split_once(']')
            .map_or(host_port, |(h, _)| &host_port[..h.len() + 1]);
    }
    host_port.split(':').next().unwrap_or(host_port)
}

/// Splits `a="x,y",b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

    fn challenge(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_challenge_parsing() {
        let h = challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a,b:pull""#,
        );
        let b = parse_bearer(&h, |_| false).unwrap();
        assert_eq!(b.realm.as_str(), "https://auth.example.com/token");
        assert_eq!(b.service.as_deref(), Some("registry.example.com"));
        for bad in [
            "Basic realm=\"x\"",
            "Bearer realm=\"file:///etc/passwd\"",
            "Bearer realm=\"http://auth.example.com/token\"",
            "Bearer realm=\"https://user:pw@auth.example.com/token\"",
            "Bearer service=\"x\"",
            "Bearer realm=\"not a url\"",
        ] {
            assert!(parse_bearer(&challenge(bad), |_| false).is_err(), "{bad}");
        }
        assert!(
            parse_bearer(&challenge("bearer realm=\"http://a/token\""), |_| true).is_ok(),
            "http realms for plain-HTTP registries"
        );
        assert!(parse_bearer(&HeaderMap::new(), |_| false).is_err());
    }

    proptest::proptest! {
        /// A hostile `WWW-Authenticate` never panics the parser, and whatever it accepts is an
        /// http(s) realm without user information.
        #[test]
        fn challenge_parser_takes_any_input(v in "(Bearer |bearer |Basic )?[ -~]{0,200}") {
            if let Ok(value) = v.parse() {
                let mut h = HeaderMap::new();
                h.insert(WWW_AUTHENTICATE, value);
                if let Ok(b) = parse_bearer(&h, |_| true) {
                    proptest::prop_assert!(matches!(b.realm.scheme(), "http" | "https"));
                    proptest::prop_assert!(b.realm.username().is_empty());
                }
            }
        }
    }

    #[test]
    fn credentials_go_only_to_the_registrys_own_realm() {
        let none = HashMap::new();
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(realm_may_receive_credentials(
            "r.example.com",
            &u("https://r.example.com/token"),
            &none
        ));
        assert!(realm_may_receive_credentials(
            "r.example.com:5000",
            &u("https://r.example.com:5001/t"),
            &none
        ));
        assert!(realm_may_receive_credentials(
            "docker.io",
            &u("https://auth.docker.io/token"),
            &none
        ));
        assert!(!realm_may_receive_credentials(
            "r.example.com",
            &u("https://evil.com/token"),
            &none
        ));
        assert!(!realm_may_receive_credentials(
            "r.example.com",
            &u("https://r.example.com.evil.com/t"),
            &none
        ));
        assert!(!realm_may_receive_credentials(
            "127.0.0.1:5000",
            &u("https://127.0.0.2:5000/t"),
            &none
        ));
        assert!(!realm_may_receive_credentials(
            "evil.com",
            &u("https://auth.docker.io/token"),
            &none
        ));
        let listed = HashMap::from([(
            "registry.gitlab.com".to_string(),
            vec!["gitlab.com".to_string()],
        )]);
        assert!(realm_may_receive_credentials(
            "registry.gitlab.com",
            &u("https://gitlab.com/jwt/auth"),
            &listed
        ));
        assert!(!realm_may_receive_credentials(
            "other.com",
            &u("https://gitlab.com/jwt/auth"),
            &listed
        ));
        assert_eq!(host_name("[::1]:5000"), "[::1]");
    }

    /// Keys are normalised like image hosts, so credentials are found whatever the spelling
    /// of the key or of the image.
    #[test]
    fn docker_config_keys_are_normalised_like_image_hosts() {
        let text = r#"{"auths":{
            "https://Index.Docker.IO/v1/":{"username":"hub","password":"p"},
            "REGISTRY.example.com:443":{"username":"r","password":"p"},
            "https://LocalHost:5000/":{"username":"l","password":"p"}}}"#;
        let (creds, _) = docker_config(text).unwrap();
        assert_eq!(creds["docker.io"].username, "hub");
        assert_eq!(creds["registry.example.com"].username, "r");
        assert_eq!(creds["localhost:5000"].username, "l");
        assert_eq!(
            normalise_config_host("registry.hub.docker.com"),
            "docker.io"
        );
        assert_eq!(
            normalise_config_host("https://registry-1.docker.io/v2/"),
            "docker.io"
        );
    }

    #[test]
    fn docker_config_auths() {
        let text = r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"r.example.com:5000":{"username":"u","password":"p"}},"credHelpers":{"gcr.io":"gcloud"}}"#;
        let (creds, ignored) = docker_config(text).unwrap();
        assert_eq!(creds["docker.io"].username, "user");
        assert_eq!(creds["docker.io"].password, "pass");
        assert_eq!(creds["r.example.com:5000"].username, "u");
        assert_eq!(ignored, vec!["gcr.io".to_string()]);
        assert!(!format!("{:?}", creds["docker.io"]).contains("pass"));
        assert!(docker_config("{").is_err());
        assert_ne!(
            creds["docker.io"].identity(),
            creds["r.example.com:5000"].identity()
        );
        assert!(!creds["docker.io"].identity().contains("pass"));
    }
}
