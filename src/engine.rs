//! The wiring every command shares: the registry client, the engine over it and the revocation
//! fetcher, built once here so `signet serve`, `signet verify`, `signet review` and the
//! integration tests all run the same composition. Only start-up code calls this module.
//!
//! Start-up wiring: must not be imported by the modules it wires (`decision`, `registry`, `policy`,
//! `verify`).

use std::sync::Arc;

use crate::azure::{AzureConfig, Entra, KeyVault};
use crate::decision::{CacheConfig, Engine};
use crate::metrics::Metrics;
use crate::policy::PolicySet;
use crate::policy::keyvault::KeyVaultStore;
use crate::policy::kube::{Files, KubeOptions, KubeSource};
use crate::policy::source::{self, Directory, Source};
use crate::registry::pull_secrets::PullSecrets;
use crate::registry::{Acr, HttpRegistry, RegistryConfig, SetupError};
use crate::revocation::HttpRevocation;
use crate::server::{self, Handle, ServeConfig};

/// How [`build`] composes the engine beyond the registry configuration.
#[derive(Clone, Debug)]
pub struct Options {
    pub caches: CacheConfig,
    /// Give the engine the HTTP revocation fetcher, so Notation chains that name CRL or OCSP
    /// locations are checked against them. Without it such chains have an unknown revocation
    /// status (which the trust policy's level judges); tests turn it off so that no test
    /// reaches the network by accident.
    pub revocation: bool,
    /// Where cache misses are verified and cached entries renewed ([`crate::runtime`]). `None`:
    /// on the runtime that asks, as the one-shot commands and most tests do.
    pub verification: Option<tokio::runtime::Handle>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            caches: CacheConfig::default(),
            revocation: true,
            verification: None,
        }
    }
}

/// Why the engine cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Registry(#[source] SetupError),
    #[error("Azure: {0}")]
    Azure(#[from] crate::azure::AzureError),
    #[error("Azure: {0}")]
    AzureSettings(#[from] crate::policy::keyvault::SettingsFileError),
    #[error("Azure: {0}")]
    AzureIdentity(#[from] crate::policy::keyvault::SettingsError),
}

/// The engine over the HTTP registry client and, when `options.revocation`, the HTTP
/// revocation fetcher (if that cannot be built, revocation has no fetcher and a warning is
/// logged). Both share the registry's SSRF deny-list and `metrics`.
pub fn build(
    registry: RegistryConfig,
    policies: PolicySet,
    metrics: Arc<Metrics>,
    options: Options,
) -> Result<Engine, BuildError> {
    let deny = registry.deny.clone();
    let azure = registry.azure.clone();
    let mut client = HttpRegistry::new(registry, metrics.clone()).map_err(BuildError::Registry)?;
    if let Some(azure) = azure.filter(|a| !a.acr_hosts.is_empty()) {
        let entra = Arc::new(Entra::new(&azure, metrics.clone())?);
        client = client.with_acr(Arc::new(Acr::new(
            entra,
            azure.tenant_id.clone(),
            azure.acr_hosts.clone(),
        )));
    }
    let mut engine = Engine::new(Arc::new(client), policies, options.caches, metrics.clone());
    if let Some(runtime) = options.verification {
        engine = engine.with_verification_runtime(runtime);
    }
    if !options.revocation {
        return Ok(engine);
    }
    Ok(match HttpRevocation::new(deny) {
        Ok(r) => engine.with_revocation(Arc::new(r.with_metrics(metrics))),
        Err(error) => {
            tracing::warn!(%error, "revocation checks have no fetcher");
            engine
        }
    })
}

/// What `signet serve` runs: loads the policy directory of `serve` (an invalid set starts the
/// server not ready, never "allow all"), builds the engine and starts both ports.
pub async fn serve(
    serve: ServeConfig,
    registry: RegistryConfig,
    metrics: Arc<Metrics>,
    options: Options,
) -> anyhow::Result<Handle> {
    serve_with(serve, registry, metrics, options, None).await
}

/// How long `signet serve --kubernetes` waits for the first list of policy resources before it
/// starts anyway, not ready until they arrive.
const FIRST_SYNC: std::time::Duration = std::time::Duration::from_secs(10);

/// As [`serve`], with policy resources from the Kubernetes API when `kubernetes` is set (the
/// cluster found through `KUBECONFIG` or the in-cluster config): besides the directory, or
/// alone when `serve.policies` is `None`.
pub async fn serve_with(
    mut serve: ServeConfig,
    mut registry: RegistryConfig,
    metrics: Arc<Metrics>,
    options: Options,
    kubernetes: Option<KubeOptions>,
) -> anyhow::Result<Handle> {
    apply_azure_settings(&mut registry, serve.policies.as_deref())?;
    if let Some(azure) = &registry.azure {
        let store = key_vault(azure, metrics.clone())?;
        // Runs for the life of the process, like the policy watcher it feeds.
        store.spawn(azure.refresh_interval);
        serve.material = serve.material.clone().with_key_vault(store);
    }
    let files = serve.policies.clone().map(|dir| {
        Directory::new(dir, serve.no_match_override).with_resolver(serve.material.clone())
    });
    let policies: Arc<dyn Source> = match (kubernetes, files) {
        (None, Some(files)) => Arc::new(files),
        (None, None) => anyhow::bail!(
            "no policy source: pass --policies DIR, or --kubernetes to take the policies from \
             ClusterImagePolicy and ImagePolicy resources"
        ),
        (Some(k), files) => {
            let files = match files {
                Some(d) => Files::Directory(d),
                None => {
                    tracing::info!(
                        "no policy directory: every policy comes from the Kubernetes API"
                    );
                    let here = std::path::Path::new(crate::config::DEFAULT_POLICIES);
                    if here.is_dir() {
                        // Read without --kubernetes; a surprise if it was meant to apply.
                        tracing::warn!(
                            dir = %here.display(),
                            "a policy directory is here but not read: with --kubernetes, pass --policies DIR to combine one with the resources"
                        );
                    }
                    Files::None {
                        no_match: serve.no_match_override,
                        resolver: serve.material.clone(),
                    }
                }
            };
            let source = KubeSource::connect(files, k, metrics.clone()).await?;
            if !source.wait_synced(FIRST_SYNC).await {
                tracing::warn!(
                    "no list of policy resources from the API server yet; not ready until it arrives"
                );
            }
            Arc::new(source)
        }
    };
    let (set, valid) = source::load_initial(policies.as_ref(), &metrics);
    let mut engine = build(registry, set, metrics.clone(), options)?;
    if serve.pull_secrets {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "--pull-secrets needs the Kubernetes API (KUBECONFIG or the in-cluster \
                 configuration): {e}"
            )
        })?;
        engine = engine.with_pull_secrets(Arc::new(PullSecrets::new(client, metrics.clone())));
    }
    server::start(serve, Arc::new(engine), metrics, valid, policies).await
}

/// The Key Vault store over the Azure identity of `azure` (not yet refreshing: call
/// [`KeyVaultStore::spawn`], or [`KeyVaultStore::refresh`] once for a one-shot command).
pub fn key_vault(
    azure: &AzureConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<KeyVaultStore>, BuildError> {
    let entra = Arc::new(Entra::new(azure, metrics.clone())?);
    let vault = KeyVault::new(azure, entra, metrics.clone())?;
    Ok(Arc::new(KeyVaultStore::new(
        Arc::new(vault),
        azure.stale_after,
        metrics,
    )))
}

/// Completes the Azure identity with the `SignetConfig.spec.azure` of the policy directory, if
/// there is one.
pub fn apply_azure_settings(
    registry: &mut RegistryConfig,
    policies: Option<&std::path::Path>,
) -> Result<(), BuildError> {
    let Some(azure) = registry.azure.as_mut() else {
        return Ok(());
    };
    let settings = match policies {
        Some(dir) => crate::policy::keyvault::read_settings(dir)?,
        None => None,
    };
    if let Some(s) = settings {
        s.apply(azure)?;
    }
    if azure.tenant_id.is_empty() || azure.client_id.is_empty() {
        return Err(BuildError::Azure(crate::azure::AzureError::Config(
            "an Azure credential is set but no tenant or client ID: set AZURE_TENANT_ID and \
             AZURE_CLIENT_ID, or spec.azure.tenantID and clientID in the SignetConfig"
                .into(),
        )));
    }
    Ok(())
}
