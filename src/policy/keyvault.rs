//! Azure Key Vault as a source of trust material: the `keyVault` origin of a
//! [`super::material::MaterialSpec`].
//!
//! ```yaml
//! cosign:
//!   keys: [{keyVault: {vaultURI: https://myvault.vault.azure.net/, name: cosign-key}}]
//! notation:
//!   trustStores:
//!     - {type: ca, name: release, certificates: [{keyVault: {vaultURI: …, name: release-ca, chain: true}}]}
//! ```
//!
//! Loaders are synchronous and never wait for the network, so [`KeyVaultStore`] answers from
//! what it holds: a reference seen for the first time is "not fetched yet" (a load error; the
//! previous policies stay, or signet stays not ready), and is fetched at once by the refresh
//! task, which then bumps [`KeyVaultStore::version`]: the policy source loads again. Every
//! reference asked for is refreshed on the interval. A new version is picked up; a version
//! that is disabled or deleted (or every version, when none is pinned) yields **withdrawn**
//! material: the key or certificate is dropped from the authority, which then trusts nothing
//! through it, and the changed material changes the policy's generation, so cached verdicts
//! that rested on it are not reused. A failure to read the vault keeps the last good material
//! for `staleAfter`, then withdraws it too (fail closed). Everything is logged and counted in
//! `signet_keyvault_refreshes_total{result}` and `signet_azure_requests_total`.
//!
//! The vault's answers are I/O behind [`VaultSource`], so the state machine is tested without a
//! network. Must not import `decision`, `registry`, `verify` or `server`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::material::{MaterialError, Resolved, Want};
use crate::azure::jwk::pem;
use crate::azure::keyvault::ObjectRef;
use crate::azure::{AzureError, KeyVault};
use crate::metrics::Metrics;

/// `keyVault: {vaultURI, name, version, chain}`.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyVaultSpec {
    /// `https://NAME.vault.azure.net/`.
    #[serde(rename = "vaultURI")]
    pub vault_uri: String,
    /// The key's or certificate's name.
    pub name: String,
    /// A pinned version; without one, the newest enabled version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Certificates only: read the whole chain through the certificate's secret (PEM or
    /// PKCS#12) instead of the certificate alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
}

/// `SignetConfig.spec.azure`: the Azure identity and refresh timing, over the
/// workload-identity environment and the command line. Read when signet starts.
///
/// ```yaml
/// spec:
///   azure: {tenantID: …, clientID: …, authorityHost: https://login.microsoftonline.com/,
///           refreshInterval: 5m, staleAfter: 1h}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AzureSettings {
    #[serde(rename = "tenantID", default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(rename = "clientID", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_host: Option<String>,
    /// `300s`, `5m`, `1h` (or plain seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
}

/// Why a `spec.azure` block is refused; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `detail` is the URL parser's message (its error type is not a dependency of signet).
    #[error("spec.azure.authorityHost {host:?}: {detail}")]
    AuthorityHost { host: String, detail: String },
    #[error("spec.azure.authorityHost {host:?} is not https")]
    NotHttps { host: String },
    #[error("spec.azure.{field}: {source}")]
    Duration {
        field: &'static str,
        #[source]
        source: DurationError,
    },
}

/// Why a duration such as `refreshInterval` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{value:?} is not a duration like 90s, 5m or 1h")]
    Malformed { value: String },
    #[error("{value:?} must be between 1s and 168h")]
    OutOfRange { value: String },
}

impl AzureSettings {
    /// Checks every field; the message names the field.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(h) = &self.authority_host {
            let url = reqwest::Url::parse(h).map_err(|e| SettingsError::AuthorityHost {
                host: h.clone(),
                detail: e.to_string(),
            })?;
            if url.scheme() != "https" {
                return Err(SettingsError::NotHttps { host: h.clone() });
            }
        }
        for (field, v) in [
            ("refreshInterval", &self.refresh_interval),
            ("staleAfter", &self.stale_after),
        ] {
            if let Some(v) = v {
                parse_duration(v).map_err(|source| SettingsError::Duration { field, source })?;
            }
        }
        Ok(())
    }

    /// Overrides the parts of `config` this names. The checks after `validate` cannot fail;
    /// they report as `validate` would.
    pub fn apply(&self, config: &mut crate::azure::AzureConfig) -> Result<(), SettingsError> {
        self.validate()?;
        if let Some(t) = &self.tenant_id {
            config.tenant_id = t.clone();
        }
        if let Some(c) = &self.client_id {
            config.client_id = c.clone();
        }
        if let Some(h) = &self.authority_host {
            config.authority_host =
                reqwest::Url::parse(h).map_err(|e| SettingsError::AuthorityHost {
                    host: h.clone(),
                    detail: e.to_string(),
                })?;
        }
        if let Some(v) = &self.refresh_interval {
            config.refresh_interval =
                parse_duration(v).map_err(|source| SettingsError::Duration {
                    field: "refreshInterval",
                    source,
                })?;
        }
        if let Some(v) = &self.stale_after {
            config.stale_after = parse_duration(v).map_err(|source| SettingsError::Duration {
                field: "staleAfter",
                source,
            })?;
        }
        Ok(())
    }
}

/// `90`, `90s`, `5m`, `1h`: a positive duration of at most a week.
pub fn parse_duration(v: &str) -> Result<Duration, DurationError> {
    let v = v.trim();
    let (number, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| DurationError::Malformed { value: v.into() })?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(DurationError::Malformed { value: v.into() }),
    };
    if secs == 0 || secs > 7 * 24 * 3600 {
        return Err(DurationError::OutOfRange { value: v.into() });
    }
    Ok(Duration::from_secs(secs))
}

/// Why the `spec.azure` of a policy directory's `SignetConfig` is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsFileError {
    #[error("{}: spec.azure: {source}", .path.display())]
    Yaml {
        path: std::path::PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{}: {source}", .path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: SettingsError,
    },
}

/// The `spec.azure` of the `SignetConfig` in a policy directory's YAML files, if any. Read
/// once at start-up (the identity is fixed for the life of the process).
pub fn read_settings(dir: &std::path::Path) -> Result<Option<AzureSettings>, SettingsFileError> {
    use serde::Deserialize;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(value) = serde_yaml::Value::deserialize(doc) else {
                continue;
            };
            if value.get("kind").and_then(|k| k.as_str()) != Some("SignetConfig") {
                continue;
            }
            let Some(azure) = value.get("spec").and_then(|s| s.get("azure")) else {
                continue;
            };
            let settings: AzureSettings = match serde_yaml::from_value(azure.clone()) {
                Ok(s) => s,
                Err(source) => return Err(SettingsFileError::Yaml { path, source }),
            };
            if let Err(source) = settings.validate() {
                return Err(SettingsFileError::Invalid { path, source });
            }
            return Ok(Some(settings));
        }
    }
    Ok(None)
}

/// What is read for a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A key's public JWK, as a PEM `PUBLIC KEY`.
    Key,
    /// A certificate's `cer`, as one PEM `CERTIFICATE`.
    Certificate,
    /// A certificate's whole chain, from its secret, as PEM `CERTIFICATE`s.
    Chain,
}

/// One reference the store keeps fresh.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub object: ObjectRef,
    pub kind: Kind,
}

impl Entry {
    fn shown(&self) -> String {
        let what = match self.kind {
            Kind::Key => "key",
            Kind::Certificate => "certificate",
            Kind::Chain => "certificate chain",
        };
        format!("Key Vault {what} {}", self.object)
    }
}

/// What `spec` asks for, once its syntax and its place (a key for Cosign, a certificate for
/// Notation) are checked.
pub fn entry_for(spec: &KeyVaultSpec, want: Want) -> Result<Entry, MaterialError> {
    let fail = |detail: String| MaterialError::KeyVault {
        shown: format!("{}/{}", spec.vault_uri.trim_end_matches('/'), spec.name),
        detail,
    };
    let kind = match (want, spec.chain) {
        (Want::PublicKey, None) => Kind::Key,
        (Want::PublicKey, Some(_)) => {
            return Err(fail(
                "chain applies to certificates; a Cosign key is a Key Vault key".into(),
            ));
        }
        (Want::Certificates, Some(true)) => Kind::Chain,
        (Want::Certificates, _) => Kind::Certificate,
        (Want::TrustRoot, _) => {
            return Err(fail(
                "a Sigstore trust root cannot come from Key Vault".into(),
            ));
        }
    };
    let object = ObjectRef::parse(&spec.vault_uri, &spec.name, spec.version.as_deref())
        .map_err(|e| fail(e.to_string()))?;
    Ok(Entry { object, kind })
}

/// Reads one reference from the vault: PEM text, or why not.
#[async_trait::async_trait]
pub trait VaultSource: Send + Sync + 'static {
    async fn fetch(&self, entry: &Entry) -> Result<Vec<u8>, AzureError>;
}

#[async_trait::async_trait]
impl VaultSource for KeyVault {
    async fn fetch(&self, entry: &Entry) -> Result<Vec<u8>, AzureError> {
        match entry.kind {
            Kind::Key => {
                let key = self.key(&entry.object).await?;
                let pem = key.jwk.spki_pem().map_err(|e| AzureError::Malformed {
                    what: format!("key {}/{}", entry.object.name, key.version),
                    detail: e.to_string(),
                })?;
                Ok(pem.into_bytes())
            }
            Kind::Certificate => {
                let cert = self.certificate(&entry.object).await?;
                Ok(pem("CERTIFICATE", &cert.der).into_bytes())
            }
            Kind::Chain => {
                let cert = self.certificate(&entry.object).await?;
                let secret = cert.secret.ok_or_else(|| AzureError::Malformed {
                    what: format!("certificate {}/{}", entry.object.name, cert.version),
                    detail: "names no secret (sid) in the same vault to read the chain from".into(),
                })?;
                let chain = self.certificate_chain(&secret).await?;
                Ok(chain
                    .iter()
                    .map(|der| pem("CERTIFICATE", der))
                    .collect::<String>()
                    .into_bytes())
            }
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    /// Asked for, never fetched.
    Pending,
    /// The last good material; `failing` holds the error of the refreshes since, if any.
    Good {
        bytes: Vec<u8>,
        at: Instant,
        failing: Option<String>,
        expired: bool,
    },
    /// Disabled or deleted.
    Withdrawn { why: String },
    /// Never read successfully.
    Failed { error: String },
}

/// The Key Vault part of the material resolver.
pub struct KeyVaultStore {
    source: Arc<dyn VaultSource>,
    stale_after: Duration,
    entries: Mutex<HashMap<Entry, State>>,
    version: AtomicU64,
    wake: tokio::sync::Notify,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KeyVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultStore")
            .field("stale_after", &self.stale_after)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl KeyVaultStore {
    pub fn new(source: Arc<dyn VaultSource>, stale_after: Duration, metrics: Arc<Metrics>) -> Self {
        KeyVaultStore {
            source,
            stale_after,
            entries: Mutex::new(HashMap::new()),
            version: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// Changes whenever the answer for some reference changed.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The material `spec` names, from what the store holds.
    pub fn resolve(&self, spec: &KeyVaultSpec, want: Want) -> Result<Resolved, MaterialError> {
        let entry = entry_for(spec, want)?;
        let shown = entry.shown();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let state = entries.entry(entry).or_insert_with(|| {
            self.wake.notify_one();
            State::Pending
        });
        let fail = |detail: String| MaterialError::KeyVault {
            shown: shown.clone(),
            detail,
        };
        match state {
            State::Pending => Err(fail(
                "not fetched yet; the policies load again once it is".into(),
            )),
            State::Failed { error } => Err(fail(error.clone())),
            State::Withdrawn { why } => Ok(Resolved::withdrawn(format!("{shown} ({why})"))),
            State::Good { at, failing, .. } if at.elapsed() > self.stale_after => {
                // No elapsed time in it: the text goes into policy resources' status, which is
                // rewritten whenever it changes.
                Ok(Resolved::withdrawn(format!(
                    "{shown} (unreadable for longer than staleAfter, {:?}: {})",
                    self.stale_after,
                    failing.as_deref().unwrap_or("no successful refresh")
                )))
            }
            State::Good { bytes, .. } => Ok(Resolved {
                bytes: bytes.clone(),
                shown,
                withdrawn: false,
            }),
        }
    }

    /// Reads every reference asked for once; bumps the version if any answer changed. Returns
    /// how long the vault asked to be left alone, if it throttled.
    pub async fn refresh(&self) -> Option<Duration> {
        let wanted: Vec<Entry> = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.keys().cloned().collect()
        };
        let mut changed = false;
        let mut backoff = None;
        for entry in wanted {
            let result = self.source.fetch(&entry).await;
            if let Err(AzureError::Throttled { retry_after, .. }) = &result {
                backoff = backoff.max(Some(retry_after.unwrap_or(Duration::from_secs(30))));
            }
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let Some(state) = entries.get_mut(&entry) else {
                continue;
            };
            let (next, result_label) = next_state(state, result, self.stale_after);
            let shown = entry.shown();
            match result_label {
                "unchanged" => {}
                "changed" => tracing::info!(material = %shown, "Key Vault material changed"),
                "withdrawn" => {
                    tracing::warn!(material = %shown, "Key Vault material withdrawn (disabled or deleted): no longer trusted")
                }
                "expired" => {
                    tracing::error!(material = %shown, stale_after_s = self.stale_after.as_secs(), "Key Vault unreadable for longer than staleAfter: material no longer trusted")
                }
                _ => {
                    if let State::Good {
                        failing: Some(e), ..
                    }
                    | State::Failed { error: e } = &next
                    {
                        tracing::warn!(material = %shown, error = %e, "cannot refresh Key Vault material; keeping the last good one while it is not stale");
                    }
                }
            }
            self.metrics
                .keyvault_refreshes
                .with_label_values(&[result_label])
                .inc();
            let differs = !same(state, &next);
            *state = next;
            changed |= differs;
        }
        if changed {
            self.bump();
        }
        backoff
    }

    /// Refreshes every `every` (and at once when a new reference is asked for), for as long as
    /// the task runs.
    pub fn spawn(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = store.refresh().await.unwrap_or_default().max(every);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = store.wake.notified() => {}
                }
            }
        })
    }
}

/// Whether two states answer `resolve` alike (the version changes when they do not).
fn same(a: &State, b: &State) -> bool {
    match (a, b) {
        (State::Pending, State::Pending) => true,
        (
            State::Good {
                bytes: x,
                expired: ex,
                ..
            },
            State::Good {
                bytes: y,
                expired: ey,
                ..
            },
        ) => x == y && ex == ey,
        (State::Withdrawn { .. }, State::Withdrawn { .. }) => true,
        (State::Failed { error: x }, State::Failed { error: y }) => x == y,
        _ => false,
    }
}

/// The state after one fetch, and the metric label of what happened.
fn next_state(
    prev: &State,
    result: Result<Vec<u8>, AzureError>,
    stale_after: Duration,
) -> (State, &'static str) {
    match (prev, result) {
        (State::Good { bytes, .. }, Ok(new)) if *bytes == new => (
            State::Good {
                bytes: new,
                at: Instant::now(),
                failing: None,
                expired: false,
            },
            "unchanged",
        ),
        (_, Ok(new)) => (
            State::Good {
                bytes: new,
                at: Instant::now(),
                failing: None,
                expired: false,
            },
            "changed",
        ),
        (_, Err(e)) if e.is_withdrawn() => (
            State::Withdrawn { why: e.to_string() },
            if matches!(prev, State::Withdrawn { .. }) {
                "unchanged"
            } else {
                "withdrawn"
            },
        ),
        (State::Good { bytes, at, .. }, Err(e)) => {
            let expired = at.elapsed() > stale_after;
            (
                State::Good {
                    bytes: bytes.clone(),
                    at: *at,
                    failing: Some(e.to_string()),
                    expired,
                },
                if expired { "expired" } else { "failed" },
            )
        }
        // Withdrawn stays withdrawn while the vault cannot say otherwise.
        (State::Withdrawn { why }, Err(_)) => (State::Withdrawn { why: why.clone() }, "failed"),
        (State::Pending | State::Failed { .. }, Err(e)) => (
            State::Failed {
                error: e.to_string(),
            },
            "failed",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vault whose next answer the test sets.
    #[derive(Default)]
    struct Scripted(Mutex<Option<Result<Vec<u8>, AzureError>>>);

    #[async_trait::async_trait]
    impl VaultSource for Scripted {
        async fn fetch(&self, _: &Entry) -> Result<Vec<u8>, AzureError> {
            self.0.lock().unwrap().clone().unwrap()
        }
    }

    fn spec() -> KeyVaultSpec {
        KeyVaultSpec {
            vault_uri: "https://v.vault.azure.net/".into(),
            name: "cosign-key".into(),
            ..KeyVaultSpec::default()
        }
    }

    fn store(stale: Duration) -> (Arc<Scripted>, KeyVaultStore) {
        let vault = Arc::new(Scripted::default());
        let s = KeyVaultStore::new(vault.clone(), stale, Arc::new(Metrics::new()));
        (vault, s)
    }

    fn set(v: &Scripted, r: Result<&[u8], AzureError>) {
        *v.0.lock().unwrap() = Some(r.map(<[u8]>::to_vec));
    }

    #[tokio::test]
    async fn a_first_miss_is_fetched_then_the_version_moves() {
        let (vault, store) = store(Duration::from_secs(3600));
        let e = store.resolve(&spec(), Want::PublicKey).unwrap_err();
        assert!(e.to_string().contains("not fetched yet"), "{e}");
        let v0 = store.version();
        set(&vault, Ok(b"PEM1"));
        store.refresh().await;
        assert_ne!(store.version(), v0);
        let got = store.resolve(&spec(), Want::PublicKey).unwrap();
        assert_eq!(got.bytes, b"PEM1");
        assert!(!got.withdrawn);
        let v1 = store.version();
        store.refresh().await;
        assert_eq!(store.version(), v1, "nothing changed, no reload");
        set(&vault, Ok(b"PEM2"));
        store.refresh().await;
        assert_ne!(store.version(), v1, "a rotation reloads");
        assert_eq!(
            store.resolve(&spec(), Want::PublicKey).unwrap().bytes,
            b"PEM2"
        );
    }

    #[tokio::test]
    async fn a_disabled_version_is_withdrawn_at_the_next_refresh() {
        let (vault, store) = store(Duration::from_secs(3600));
        let _ = store.resolve(&spec(), Want::PublicKey);
        set(&vault, Ok(b"PEM"));
        store.refresh().await;
        let v = store.version();
        set(
            &vault,
            Err(AzureError::Disabled {
                what: "key cosign-key/1".into(),
            }),
        );
        store.refresh().await;
        assert_ne!(store.version(), v);
        let got = store.resolve(&spec(), Want::PublicKey).unwrap();
        assert!(got.withdrawn && got.bytes.is_empty(), "{got:?}");
        assert!(got.shown.contains("disabled"), "{got:?}");
        // The vault going down afterwards does not bring the key back.
        set(
            &vault,
            Err(AzureError::Unreachable {
                host: "v".into(),
                detail: "down".into(),
            }),
        );
        store.refresh().await;
        assert!(store.resolve(&spec(), Want::PublicKey).unwrap().withdrawn);
    }

    #[tokio::test]
    async fn an_unreadable_vault_keeps_the_last_good_material_until_it_is_stale() {
        let (vault, store) = store(Duration::from_millis(200));
        let _ = store.resolve(&spec(), Want::PublicKey);
        set(&vault, Ok(b"PEM"));
        store.refresh().await;
        let v = store.version();
        set(
            &vault,
            Err(AzureError::Status {
                host: "v".into(),
                status: 503,
                code: "x".into(),
                message: "down".into(),
            }),
        );
        store.refresh().await;
        assert_eq!(store.version(), v, "a failure alone changes nothing");
        assert_eq!(
            store.resolve(&spec(), Want::PublicKey).unwrap().bytes,
            b"PEM"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        store.refresh().await;
        assert_ne!(store.version(), v, "going stale reloads the policies");
        let got = store.resolve(&spec(), Want::PublicKey).unwrap();
        assert!(got.withdrawn, "{got:?}");
        assert!(got.shown.contains("staleAfter"), "{got:?}");
        // Said the same way at every load: a policy resource's status is not rewritten for it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.resolve(&spec(), Want::PublicKey).unwrap(), got);
        set(&vault, Ok(b"PEM"));
        store.refresh().await;
        assert!(!store.resolve(&spec(), Want::PublicKey).unwrap().withdrawn);
    }

    #[tokio::test]
    async fn a_vault_never_read_is_an_error_not_an_empty_trust() {
        let (vault, store) = store(Duration::from_secs(3600));
        let _ = store.resolve(&spec(), Want::PublicKey);
        set(
            &vault,
            Err(AzureError::TokenRefused {
                scope: "https://vault.azure.net/.default".into(),
                detail: "invalid_client: AADSTS700212".into(),
            }),
        );
        store.refresh().await;
        let e = store.resolve(&spec(), Want::PublicKey).unwrap_err();
        assert!(e.to_string().contains("AADSTS700212"), "{e}");
    }

    #[test]
    fn settings_durations_and_overrides() {
        assert_eq!(
            parse_duration(" 0s").unwrap_err().to_string(),
            "\"0s\" must be between 1s and 168h"
        );
        assert_eq!(
            parse_duration("5d"),
            Err(DurationError::Malformed { value: "5d".into() })
        );
        assert_eq!(
            parse_duration("5d").unwrap_err().to_string(),
            "\"5d\" is not a duration like 90s, 5m or 1h"
        );
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0s", "5d", "m", "-1s", "200h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\n---\napiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  azure: {tenantID: t1, clientID: c1, refreshInterval: 2m, staleAfter: 30m}\n",
        )
        .unwrap();
        let s = read_settings(dir.path()).unwrap().unwrap();
        let mut config = crate::azure::AzureConfig {
            tenant_id: String::new(),
            client_id: String::new(),
            authority_host: reqwest::Url::parse(crate::azure::DEFAULT_AUTHORITY_HOST).unwrap(),
            credential: crate::azure::Credential::ClientSecret("x".into()),
            ca_pem: vec![],
            vault_hosts: vec![],
            acr_hosts: vec![],
            refresh_interval: Duration::from_secs(1),
            stale_after: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        };
        s.apply(&mut config).unwrap();
        assert_eq!(
            (config.tenant_id.as_str(), config.client_id.as_str()),
            ("t1", "c1")
        );
        assert_eq!(config.refresh_interval, Duration::from_secs(120));
        assert_eq!(config.stale_after, Duration::from_secs(1800));
        std::fs::write(
            dir.path().join("config.yaml"),
            "kind: SignetConfig\nspec:\n  azure: {tenantId: t1}\n",
        )
        .unwrap();
        let e = read_settings(dir.path()).unwrap_err();
        assert!(e.to_string().contains("unknown field `tenantId`"), "{e}");
    }

    #[test]
    fn references_are_checked_when_the_policy_loads() {
        let (_, store) = store(Duration::from_secs(1));
        let bad = KeyVaultSpec {
            vault_uri: "http://v.vault.azure.net/".into(),
            ..spec()
        };
        assert!(
            store
                .resolve(&bad, Want::PublicKey)
                .unwrap_err()
                .to_string()
                .contains("not https")
        );
        let chain_on_key = KeyVaultSpec {
            chain: Some(true),
            ..spec()
        };
        assert!(store.resolve(&chain_on_key, Want::PublicKey).is_err());
        assert!(store.resolve(&spec(), Want::TrustRoot).is_err());
    }
}
