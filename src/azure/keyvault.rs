//! The Key Vault data-plane REST API (api-version 7.4), read-only: a key's JWK, a
//! certificate's DER (`cer`) and, for whole chains, the certificate's secret (PEM or
//! PKCS#12, as Notation's Azure plugin and Ratify read it). Without a version, the newest
//! enabled version is used (by `created`, among versions whose `nbf`/`exp` hold now).
//!
//! Vault URIs come from policies (operators' configuration), never from a pod spec, and must
//! be `https://` on a Key Vault domain ([`super::VAULT_SUFFIXES`]) or on a host listed with
//! `--azure-vault-host`: only those hosts ever receive the vault token. Object names and
//! versions are checked against Key Vault's own character sets, so nothing in them can change
//! the request path. Private keys in a certificate's secret are never kept.
//!
//! Must not import `policy`, `verify`, `decision` or `registry`: the Key Vault policy source calls
//! this adapter.

use std::sync::Arc;

use base64::Engine;
use reqwest::StatusCode;

use super::jwk::Jwk;
use super::{AzureConfig, AzureError, Entra, VAULT_SCOPE, host_port, read_body, transport};
use crate::metrics::Metrics;

/// The REST API version signet speaks.
pub const API_VERSION: &str = "7.4";
/// Pages of a version list followed through `nextLink`.
const MAX_VERSION_PAGES: usize = 20;
/// PEM certificates kept from one secret.
const MAX_CHAIN: usize = 20;

/// What kind of Key Vault object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    Keys,
    Certificates,
}

impl Collection {
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Keys => "keys",
            Collection::Certificates => "certificates",
        }
    }
}

/// One object in one vault, possibly at one version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `https://host[:port]` (no trailing slash).
    pub vault: String,
    pub name: String,
    pub version: Option<String>,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.vault, self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Why a Key Vault reference written in a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// `detail` is the URL parser's message (its error type is not a dependency of signet).
    #[error("vaultURI {uri:?} is not a URL: {detail}")]
    NotUrl { uri: String, detail: String },
    #[error("vaultURI {uri:?} is not https")]
    NotHttps { uri: String },
    #[error("vaultURI {uri:?} must be https://NAME.vault.azure.net/ with no path")]
    NotVaultRoot { uri: String },
    #[error("name {name:?} is not a Key Vault object name (1-127 letters, digits, dashes)")]
    Name { name: String },
    #[error("version {version:?} is not a Key Vault version (letters and digits)")]
    Version { version: String },
}

impl ObjectRef {
    /// Checks the syntax of a reference as written in a policy: an `https://` vault URI with
    /// no path, query or user information, a name of 1–127 letters, digits and dashes, and a
    /// version of 1–64 letters and digits. Whether the vault host may receive a token is
    /// [`KeyVault`]'s check.
    pub fn parse(vault_uri: &str, name: &str, version: Option<&str>) -> Result<Self, RefError> {
        let url = reqwest::Url::parse(vault_uri.trim()).map_err(|e| RefError::NotUrl {
            uri: vault_uri.into(),
            detail: e.to_string(),
        })?;
        if url.scheme() != "https" {
            return Err(RefError::NotHttps {
                uri: vault_uri.into(),
            });
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || !matches!(url.path(), "" | "/")
            || url.host_str().is_none()
        {
            return Err(RefError::NotVaultRoot {
                uri: vault_uri.into(),
            });
        }
        if name.is_empty()
            || name.len() > 127
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(RefError::Name { name: name.into() });
        }
        if let Some(v) = version
            && (v.is_empty() || v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(RefError::Version { version: v.into() });
        }
        Ok(ObjectRef {
            vault: format!("https://{}", host_port(&url).to_ascii_lowercase()),
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }

    fn host(&self) -> &str {
        self.vault.trim_start_matches("https://")
    }
}

/// A key version's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKey {
    pub version: String,
    pub jwk: Jwk,
}

/// A certificate version: its DER, and the secret that holds the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultCertificate {
    pub version: String,
    pub der: Vec<u8>,
    /// `sid`: `https://vault/secrets/NAME/VERSION`.
    pub secret: Option<ObjectRef>,
}

/// The Key Vault client.
pub struct KeyVault {
    http: reqwest::Client,
    entra: Arc<Entra>,
    vault_hosts: Vec<String>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("vault_hosts", &self.vault_hosts)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize, Default)]
struct Attributes {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    created: Option<i64>,
}

fn yes() -> bool {
    true
}

impl Attributes {
    fn usable(&self, now: i64) -> bool {
        self.enabled && self.nbf.is_none_or(|n| n <= now) && self.exp.is_none_or(|e| e > now)
    }
}

impl KeyVault {
    pub fn new(
        config: &AzureConfig,
        entra: Arc<Entra>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AzureError> {
        Ok(KeyVault {
            http: super::http_client(&config.ca_pem, config.request_timeout)?,
            entra,
            vault_hosts: config
                .vault_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            metrics,
        })
    }

    /// Whether `host` (`host[:port]`) may receive the vault token.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let name = host.split(':').next().unwrap_or_default();
        let on_vault_domain = super::VAULT_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s) && name.len() > s.len() && !host.contains(':'));
        on_vault_domain || self.vault_hosts.contains(&host)
    }

    /// The public key of a key version (the newest enabled one without a version).
    pub async fn key(&self, r: &ObjectRef) -> Result<VaultKey, AzureError> {
        let version = self.version_of(Collection::Keys, r).await?;
        #[derive(serde::Deserialize)]
        struct Bundle {
            key: Jwk,
            #[serde(default)]
            attributes: Attributes,
        }
        let what = format!("key {}/{}", r.name, version);
        let body = self
            .get(r, &format!("/keys/{}/{version}", r.name), "key", &what)
            .await?;
        let b: Bundle = parse(&body, &what)?;
        if !b.attributes.enabled {
            return Err(AzureError::Disabled { what });
        }
        Ok(VaultKey {
            version,
            jwk: b.key,
        })
    }

    /// A certificate version (the newest enabled one without a version).
    pub async fn certificate(&self, r: &ObjectRef) -> Result<VaultCertificate, AzureError> {
        let version = self.version_of(Collection::Certificates, r).await?;
        #[derive(serde::Deserialize)]
        struct Bundle {
            cer: Option<String>,
            sid: Option<String>,
            #[serde(default)]
            attributes: Attributes,
        }
        let what = format!("certificate {}/{}", r.name, version);
        let body = self
            .get(
                r,
                &format!("/certificates/{}/{version}", r.name),
                "certificate",
                &what,
            )
            .await?;
        let b: Bundle = parse(&body, &what)?;
        if !b.attributes.enabled {
            return Err(AzureError::Disabled { what });
        }
        let malformed = |detail: &str| AzureError::Malformed {
            what: what.clone(),
            detail: detail.to_string(),
        };
        let der = base64::engine::general_purpose::STANDARD
            .decode(b.cer.ok_or_else(|| malformed("no cer"))?.trim())
            .map_err(|_| malformed("cer is not base64"))?;
        // The secret must live in the same vault, under the same name: a certificate object
        // cannot send signet to another host.
        let secret = b.sid.as_deref().and_then(|sid| {
            let url = reqwest::Url::parse(sid).ok()?;
            let mut parts = url.path_segments()?;
            let (kind, name, ver) = (parts.next()?, parts.next()?, parts.next());
            let same_vault = format!("https://{}", host_port(&url).to_ascii_lowercase()) == r.vault;
            (kind == "secrets" && same_vault && name.eq_ignore_ascii_case(&r.name))
                .then(|| ObjectRef::parse(&r.vault, name, ver).ok())
                .flatten()
        });
        Ok(VaultCertificate {
            version,
            der,
            secret,
        })
    }

    /// The certificates (DER, leaf first as stored) of a certificate's secret, PEM
    /// (`application/x-pem-file`) or PKCS#12 (`application/x-pkcs12`, no password, as Key
    /// Vault stores it). The private key in it is dropped.
    pub async fn certificate_chain(&self, secret: &ObjectRef) -> Result<Vec<Vec<u8>>, AzureError> {
        let version = secret
            .version
            .clone()
            .ok_or_else(|| AzureError::Malformed {
                what: format!("secret {}", secret.name),
                detail: "no version".into(),
            })?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Bundle {
            value: Option<String>,
            content_type: Option<String>,
            #[serde(default)]
            attributes: Attributes,
        }
        let what = format!("secret {}/{}", secret.name, version);
        let body = self
            .get(
                secret,
                &format!("/secrets/{}/{version}", secret.name),
                "secret",
                &what,
            )
            .await?;
        let b: Bundle = parse(&body, &what)?;
        if !b.attributes.enabled {
            return Err(AzureError::Disabled { what });
        }
        let malformed = |detail: String| AzureError::Malformed {
            what: what.clone(),
            detail,
        };
        let value = b.value.ok_or_else(|| malformed("no value".into()))?;
        let certs = match b.content_type.as_deref().map(str::trim) {
            Some("application/x-pem-file") => {
                pem_certificates(&value).map_err(|e| malformed(e.to_string()))?
            }
            Some("application/x-pkcs12") => {
                pkcs12_certificates(&value).map_err(|e| malformed(e.to_string()))?
            }
            other => {
                return Err(malformed(format!(
                    "content type {:?} is neither application/x-pem-file nor application/x-pkcs12",
                    other.unwrap_or("")
                )));
            }
        };
        if certs.is_empty() {
            return Err(malformed("holds no certificate".into()));
        }
        if certs.len() > MAX_CHAIN {
            return Err(malformed(format!(
                "holds more than {MAX_CHAIN} certificates"
            )));
        }
        Ok(certs)
    }

    /// The version asked for, or the newest usable one.
    async fn version_of(&self, c: Collection, r: &ObjectRef) -> Result<String, AzureError> {
        if let Some(v) = &r.version {
            return Ok(v.clone());
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Item {
            #[serde(alias = "kid")]
            id: String,
            #[serde(default)]
            attributes: Attributes,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            value: Vec<Item>,
            next_link: Option<String>,
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let what = format!("{} {} versions", c.as_str(), r.name);
        let mut best: Option<(i64, String)> = None;
        let mut path = format!("/{}/{}/versions", c.as_str(), r.name);
        for _ in 0..MAX_VERSION_PAGES {
            let body = self.get(r, &path, "versions", &what).await?;
            let page: Page = parse(&body, &what)?;
            for item in page.value {
                if !item.attributes.usable(now) {
                    continue;
                }
                let Some(version) = item.id.rsplit('/').next().map(str::to_string) else {
                    continue;
                };
                let created = item.attributes.created.unwrap_or(0);
                if best
                    .as_ref()
                    .is_none_or(|(t, v)| (created, &version) > (*t, v))
                {
                    best = Some((created, version));
                }
            }
            match page.next_link.filter(|l| !l.is_empty()) {
                // Follow a next link on the same vault only.
                Some(next) => {
                    let url = reqwest::Url::parse(&next).map_err(|_| AzureError::Malformed {
                        what: what.clone(),
                        detail: "nextLink is not a URL".into(),
                    })?;
                    if format!("https://{}", host_port(&url).to_ascii_lowercase()) != r.vault {
                        return Err(AzureError::Malformed {
                            what,
                            detail: "nextLink points to another host".into(),
                        });
                    }
                    path = match url.query() {
                        Some(q) => format!("{}?{q}", url.path()),
                        None => url.path().to_string(),
                    };
                }
                None => break,
            }
        }
        let version = best.map(|(_, v)| v).ok_or_else(|| AzureError::Disabled {
            what: format!("every version of {} {}", c.as_str(), r.name),
        })?;
        ObjectRef::parse(&r.vault, &r.name, Some(&version)).map_err(|e| AzureError::Malformed {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        Ok(version)
    }

    /// One authenticated GET on the vault; a 401 drops the cached token and tries once more.
    async fn get(
        &self,
        r: &ObjectRef,
        path_and_query: &str,
        endpoint: &'static str,
        what: &str,
    ) -> Result<Vec<u8>, AzureError> {
        let result = self.get_inner(r, path_and_query, what).await;
        self.metrics
            .azure_requests
            .with_label_values(&[
                endpoint,
                result.as_ref().map_or_else(|e| e.label(), |_| "ok"),
            ])
            .inc();
        result
    }

    async fn get_inner(
        &self,
        r: &ObjectRef,
        path_and_query: &str,
        what: &str,
    ) -> Result<Vec<u8>, AzureError> {
        let host = r.host().to_string();
        if !self.host_allowed(&host) {
            return Err(AzureError::Config(format!(
                "vault host {host} is not a Key Vault domain (*.vault.azure.net and the \
                 sovereign clouds') nor listed with --azure-vault-host: it gets no token"
            )));
        }
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = if path_and_query.contains("api-version=") {
            format!("{}{path_and_query}", r.vault)
        } else {
            format!("{}{path_and_query}{sep}api-version={API_VERSION}", r.vault)
        };
        for attempt in 0..2 {
            let token = self.entra.token(VAULT_SCOPE).await?;
            let resp = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| transport(&host, &e))?;
            let status = resp.status();
            if status.is_success() {
                return read_body(resp, &host).await;
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs);
            let body = read_body(resp, &host).await.unwrap_or_default();
            let (code, inner, message) = error_shape(&body);
            match status {
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    self.entra.forget(VAULT_SCOPE);
                    continue;
                }
                StatusCode::NOT_FOUND => {
                    return Err(AzureError::NotFound {
                        what: what.to_string(),
                        code,
                    });
                }
                StatusCode::FORBIDDEN if inner.ends_with("Disabled") => {
                    return Err(AzureError::Disabled {
                        what: what.to_string(),
                    });
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(AzureError::Denied {
                        host,
                        status: status.as_u16(),
                        code,
                        message,
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(AzureError::Throttled { host, retry_after });
                }
                _ => {
                    return Err(AzureError::Status {
                        host,
                        status: status.as_u16(),
                        code,
                        message,
                    });
                }
            }
        }
        Err(AzureError::Denied {
            host,
            status: 401,
            code: "Unauthorized".into(),
            message: "the vault refused a fresh token".into(),
        })
    }
}

/// `{"error":{"code":..,"message":..,"innererror":{"code":..}}}`: the code, the inner code and
/// the message (first line, bounded, no control characters).
fn error_shape(body: &[u8]) -> (String, String, String) {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        code: Option<String>,
        message: Option<String>,
        innererror: Option<Box<Inner>>,
    }
    let clean = |s: Option<String>, n: usize| -> String {
        s.unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(n)
            .collect()
    };
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => {
            let inner = o.error.innererror.and_then(|i| i.code);
            (
                clean(o.error.code, 60),
                clean(inner, 60),
                clean(o.error.message, 200),
            )
        }
        Err(_) => ("unknown".into(), String::new(), "no error body".into()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, AzureError> {
    serde_json::from_slice(body).map_err(|e| AzureError::Malformed {
        what: what.to_string(),
        detail: format!("not the expected JSON: {e}"),
    })
}

/// Why a secret's value holds no readable certificates. [`AzureError`] is cloned across
/// waiting callers, so it keeps this as text.
#[derive(Debug, thiserror::Error)]
enum SecretValueError {
    #[error("not PEM: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("the PKCS#12 value is not base64")]
    Base64(#[source] base64::DecodeError),
    #[error("not a password-less PKCS#12 file: {0}")]
    Pkcs12(#[source] p12_keystore::error::Error),
}

/// The `CERTIFICATE` blocks of a PEM secret; keys and other blocks are skipped.
fn pem_certificates(value: &str) -> Result<Vec<Vec<u8>>, SecretValueError> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(value.as_bytes()) {
        let (kind, der) = item.map_err(SecretValueError::Pem)?;
        if kind == SectionKind::Certificate {
            out.push(der);
        }
    }
    Ok(out)
}

/// The certificates of a base64 PKCS#12 secret with an empty password.
fn pkcs12_certificates(value: &str) -> Result<Vec<Vec<u8>>, SecretValueError> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(SecretValueError::Base64)?;
    let archive =
        p12_keystore::Pkcs12Archive::from_pkcs12(&der, "").map_err(SecretValueError::Pkcs12)?;
    let mut out: Vec<Vec<u8>> = Vec::new();
    for bag in archive.certs {
        let der = bag.cert.as_der().to_vec();
        if !out.contains(&der) {
            out.push(der);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_before_any_request() {
        let r = ObjectRef::parse("https://MyVault.vault.azure.net/", "cosign-key", None).unwrap();
        assert_eq!(r.vault, "https://myvault.vault.azure.net");
        assert_eq!(r.to_string(), "https://myvault.vault.azure.net/cosign-key");
        for (uri, name, version) in [
            ("http://v.vault.azure.net/", "k", None),
            ("https://v.vault.azure.net/keys/", "k", None),
            ("https://u@v.vault.azure.net/", "k", None),
            ("https://v.vault.azure.net/?x=1", "k", None),
            ("https://v.vault.azure.net/", "../k", None),
            ("https://v.vault.azure.net/", "k/v", None),
            ("https://v.vault.azure.net/", "", None),
            ("https://v.vault.azure.net/", "k", Some("a/b")),
            ("https://v.vault.azure.net/", "k", Some("")),
            ("not a url", "k", None),
        ] {
            assert!(
                ObjectRef::parse(uri, name, version).is_err(),
                "{uri} {name}"
            );
        }
        assert_eq!(
            ObjectRef::parse("http://v.vault.azure.net/", "k", None)
                .unwrap_err()
                .to_string(),
            "vaultURI \"http://v.vault.azure.net/\" is not https"
        );
        assert_eq!(
            ObjectRef::parse("https://v.vault.azure.net/x", "k", None),
            Err(RefError::NotVaultRoot {
                uri: "https://v.vault.azure.net/x".into()
            })
        );
        assert_eq!(
            ObjectRef::parse("https://v.vault.azure.net/", "k_1", None)
                .unwrap_err()
                .to_string(),
            "name \"k_1\" is not a Key Vault object name (1-127 letters, digits, dashes)"
        );
    }

    /// The vault token goes to Key Vault domains and explicitly listed hosts only.
    #[test]
    fn only_vault_hosts_may_receive_the_token() {
        let config = AzureConfig {
            tenant_id: "t".into(),
            client_id: "c".into(),
            authority_host: reqwest::Url::parse(super::super::DEFAULT_AUTHORITY_HOST).unwrap(),
            credential: super::super::Credential::ClientSecret("s".into()),
            ca_pem: vec![],
            vault_hosts: vec!["127.0.0.1:8443".into()],
            acr_hosts: vec![],
            refresh_interval: std::time::Duration::from_secs(1),
            stale_after: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(1),
        };
        let metrics = Arc::new(Metrics::new());
        let entra = Arc::new(Entra::new(&config, metrics.clone()).unwrap());
        let kv = KeyVault::new(&config, entra, metrics).unwrap();
        for ok in [
            "myvault.vault.azure.net",
            "MyVault.Vault.Azure.Net",
            "v.vault.azure.cn",
            "v.vault.usgovcloudapi.net",
            "hsm.managedhsm.azure.net",
            "127.0.0.1:8443",
        ] {
            assert!(kv.host_allowed(ok), "{ok}");
        }
        for bad in [
            "vault.azure.net",
            "evil.com",
            "myvault.vault.azure.net.evil.com",
            "evilvault.azure.net",
            "myvault.vault.azure.net:8443",
            "127.0.0.1",
            "127.0.0.1:8444",
            "169.254.169.254",
        ] {
            assert!(!kv.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn error_bodies_are_read_in_the_rest_api_shape() {
        let body = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.\nmore","innererror":{"code":"SecretDisabled"}}}"#;
        assert_eq!(
            error_shape(body),
            (
                "Forbidden".into(),
                "SecretDisabled".into(),
                "Operation get is not allowed on a disabled secret.".into()
            )
        );
        assert_eq!(error_shape(b"<html>").0, "unknown");
    }

    #[test]
    fn pem_secrets_yield_their_certificates_and_never_the_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let value = format!("{}{}", key.serialize_pem(), cert.pem());
        let certs = pem_certificates(&value).unwrap();
        assert_eq!(certs, vec![cert.der().to_vec()]);
    }
}
