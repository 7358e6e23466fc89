//! Azure: Entra ID tokens ([`entra`]: workload identity, or a client secret for development),
//! the Key Vault REST API ([`keyvault`]: keys, certificates and secrets by name and version),
//! and JSON Web Keys as `SubjectPublicKeyInfo` ([`jwk`]).
//!
//! Tokens go to two kinds of host only, both named by configuration and never by a pod spec:
//! the Entra authority (`--azure-authority-host` or `AZURE_AUTHORITY_HOST`) and Key Vault hosts
//! (`*.vault.azure.net` and the sovereign clouds' equivalents, plus hosts listed with
//! `--azure-vault-host`). The registry side (`registry::acr`) sends a registry-scoped token only
//! to hosts the operator marked as Azure Container Registries. Imports nothing from signet but
//! `metrics` and `reason`.

pub mod entra;
pub mod jwk;
pub mod keyvault;

use std::path::PathBuf;
use std::time::Duration;

use crate::reason::Reason;

pub use entra::Entra;
pub use keyvault::KeyVault;

/// The public cloud's Entra authority.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// The scope of a Key Vault token.
pub const VAULT_SCOPE: &str = "https://vault.azure.net/.default";
/// The scope of an Azure Container Registry token.
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";
/// Host name suffixes of Key Vault (public, China, US Government clouds) and Managed HSM.
pub const VAULT_SUFFIXES: [&str; 5] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
];

/// How signet proves its identity to Entra ID.
#[derive(Clone)]
pub enum Credential {
    /// Workload identity: the projected service-account token in this file, re-read for every
    /// exchange (the kubelet rotates it), sent as a client assertion.
    FederatedTokenFile(PathBuf),
    /// A client secret (development; keep it out of files where workload identity exists).
    ClientSecret(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::FederatedTokenFile(p) => write!(f, "FederatedTokenFile({})", p.display()),
            Credential::ClientSecret(_) => f.write_str("ClientSecret(<redacted>)"),
        }
    }
}

/// Everything needed to reach Entra ID and Key Vault.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    pub tenant_id: String,
    pub client_id: String,
    /// The Entra authority, `https://login.microsoftonline.com/` by default.
    pub authority_host: reqwest::Url,
    pub credential: Credential,
    /// Extra PEM CA certificates trusted for the authority and vault hosts (besides the
    /// system roots): a private test endpoint or a TLS-inspecting proxy's CA.
    pub ca_pem: Vec<Vec<u8>>,
    /// Vault hosts (`host` or `host:port`) accepted besides the Key Vault domains.
    pub vault_hosts: Vec<String>,
    /// Registry hosts (patterns `*.suffix` or exact `host[:port]`) that are Azure Container
    /// Registries, reached with the registry-scoped token.
    pub acr_hosts: Vec<String>,
    pub refresh_interval: Duration,
    pub stale_after: Duration,
    /// Per-request timeout towards Entra and Key Vault.
    pub request_timeout: Duration,
}

/// A failure talking to Entra ID or Key Vault. Messages never hold a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzureError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read the federated token file {path}: {detail}")]
    TokenFile { path: String, detail: String },
    #[error("Entra ID refused a token for {scope}: {detail}")]
    TokenRefused { scope: String, detail: String },
    #[error("cannot reach {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("{host} throttled the request (429)")]
    Throttled {
        host: String,
        retry_after: Option<Duration>,
    },
    #[error("{what} was not found ({code})")]
    NotFound { what: String, code: String },
    #[error("{what} is disabled")]
    Disabled { what: String },
    #[error("{host} refused access ({status} {code}): {message}")]
    Denied {
        host: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{host} answered {status} ({code}): {message}")]
    Status {
        host: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
}

impl AzureError {
    /// The closed reason for metrics and messages.
    pub fn reason(&self) -> Reason {
        match self {
            AzureError::Config(_) | AzureError::Malformed { .. } => Reason::Malformed,
            AzureError::TokenFile { .. }
            | AzureError::TokenRefused { .. }
            | AzureError::Denied { .. } => Reason::Unauthorized,
            AzureError::Unreachable { .. } | AzureError::Status { .. } => {
                Reason::RegistryUnreachable
            }
            AzureError::Throttled { .. } => Reason::Throttled,
            AzureError::NotFound { .. } | AzureError::Disabled { .. } => Reason::NotFound,
        }
    }

    /// Whether the object is definitively gone (deleted or disabled), as opposed to a failure
    /// to learn anything.
    pub fn is_withdrawn(&self) -> bool {
        matches!(
            self,
            AzureError::NotFound { .. } | AzureError::Disabled { .. }
        )
    }

    /// The closed metric label of this failure.
    pub fn label(&self) -> &'static str {
        match self {
            AzureError::Config(_) => "config",
            AzureError::TokenFile { .. } | AzureError::TokenRefused { .. } => "token",
            AzureError::Unreachable { .. } => "unreachable",
            AzureError::Throttled { .. } => "throttled",
            AzureError::NotFound { .. } => "not_found",
            AzureError::Disabled { .. } => "disabled",
            AzureError::Denied { .. } => "denied",
            AzureError::Status { .. } => "status",
            AzureError::Malformed { .. } => "malformed",
        }
    }
}

/// The largest response body read from Entra or Key Vault (a PKCS#12 secret with a long
/// chain is the largest real one, well under this).
pub(crate) const MAX_BODY: u64 = 1 << 20;

/// An HTTPS client for Entra and Key Vault: no redirects (a token must not follow one), no
/// proxy, the system roots plus `ca_pem`.
pub(crate) fn http_client(
    ca_pem: &[Vec<u8>],
    timeout: Duration,
) -> Result<reqwest::Client, AzureError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .timeout(timeout)
        .https_only(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    for pem in ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| AzureError::Config(format!("Azure CA bundle: {e}")))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| AzureError::Config(format!("cannot build the Azure HTTP client: {e}")))
}

/// `host` or `host:port` of a URL.
pub(crate) fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    host: &str,
) -> Result<Vec<u8>, AzureError> {
    let unreachable = |detail: &str| AzureError::Unreachable {
        host: host.to_string(),
        detail: detail.to_string(),
    };
    if resp.content_length().is_some_and(|l| l > MAX_BODY) {
        return Err(unreachable("the response is too large"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| unreachable("the response broke off"))?
    {
        if (out.len() + chunk.len()) as u64 > MAX_BODY {
            return Err(unreachable("the response is too large"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A transport failure, naming the host only (reqwest's errors may carry a URL).
pub(crate) fn transport(host: &str, e: &reqwest::Error) -> AzureError {
    let detail = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    AzureError::Unreachable {
        host: host.to_string(),
        detail: detail.to_string(),
    }
}

/// Whether `pattern` (`*.azurecr.io` or an exact `host[:port]`) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => {
            host.ends_with(suffix) && host.len() > suffix.len() && !host.contains(':')
        }
        _ => host == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_are_suffixes_or_exact() {
        assert!(host_matches("*.azurecr.io", "myreg.azurecr.io"));
        assert!(host_matches("*.azurecr.io", "MyReg.AzureCR.io"));
        assert!(!host_matches("*.azurecr.io", "azurecr.io"));
        assert!(!host_matches("*.azurecr.io", "myreg.azurecr.io.evil.com"));
        assert!(!host_matches("*.azurecr.io", "evilazurecr.io"));
        assert!(!host_matches("*.azurecr.io", "myreg.azurecr.io:444"));
        assert!(host_matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!host_matches("127.0.0.1:5000", "127.0.0.1:5001"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credential::ClientSecret("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
