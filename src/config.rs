//! Raw arguments become one validated [`Config`]: files are read and checked here, once, so
//! nothing downstream re-checks. The only module that reads argv-derived values and the
//! environment.
//!
//! Must not import `decision`, `discovery`, `verify` or hyper: it only builds the settings they are
//! given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{self, Args, LogFormat, NoMatchArg, Output};
use crate::policy::NoMatch;
use crate::policy::kube::KubeOptions;
use crate::registry::{Cidr, DenyList, Limits, RegistryConfig};
use crate::server::{ServeConfig, ServeLimits, TlsSource};

/// A configuration error: what was wrong, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// The validated configuration of one `signet` invocation.
#[derive(Debug)]
pub struct Config {
    pub log_format: LogFormat,
    pub command: CommandConfig,
}

#[derive(Debug)]
pub enum CommandConfig {
    Serve {
        /// Boxed: by far the largest variant.
        serve: Box<ServeConfig>,
        registry: RegistryConfig,
        /// `--kubernetes`: policy resources from the API server too.
        kubernetes: Option<KubeOptions>,
    },
    Verify {
        images: Vec<String>,
        policies: PathBuf,
        namespace: Option<String>,
        no_match: Option<NoMatch>,
        output: Output,
        timeout: Duration,
        registry: RegistryConfig,
    },
    Review {
        files: Vec<PathBuf>,
        policies: PathBuf,
        /// For manifests that name none.
        namespace: String,
        no_match: Option<NoMatch>,
        output: Output,
        timeout: Duration,
        registry: RegistryConfig,
    },
    PolicyCheck {
        dir: PathBuf,
        /// `--kubernetes`: the cluster's Secrets, ConfigMaps and policy resources too.
        kubernetes: Option<KubeOptions>,
    },
    ImportRatify {
        files: Vec<PathBuf>,
        out_dir: Option<PathBuf>,
        mode: crate::policy::Mode,
        force: bool,
    },
    Completion {
        shell: clap_complete::Shell,
    },
}

/// The policy directory every command reads unless told otherwise.
pub const DEFAULT_POLICIES: &str = "policies";

/// `--policies`, or the default `policies/`, which must then exist: a missing default is the
/// first thing a new user meets, so the message names the flag.
fn policy_dir(flag: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    default_policy_dir(flag, "")
}

/// [`policy_dir`], with `also` appended to the message when there is none.
fn default_policy_dir(flag: Option<PathBuf>, also: &str) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let dir = PathBuf::from(DEFAULT_POLICIES);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(ConfigError(format!(
            "no policy directory: ./{DEFAULT_POLICIES} does not exist here; pass --policies DIR \
             (the directory of your policy YAML files){also}"
        )))
    }
}

/// `--kubernetes` and the flags that go with it, for `serve` and `policy check` alike.
fn kube_options(cluster: cli::KubernetesArgs) -> Option<KubeOptions> {
    let cli::KubernetesArgs {
        kubernetes,
        namespace,
        secrets_all_namespaces,
        cluster_policy_namespace,
    } = cluster;
    kubernetes.then_some(KubeOptions {
        namespace,
        cluster_policy_namespaces: cluster_policy_namespace,
        secrets_all_namespaces,
    })
}

/// `serve`'s policy directory: `--policies`; with `--kubernetes` and no `--policies`, none
/// (every policy is a resource; a `policies/` that happens to be in the working directory is
/// not read, so what a cluster enforces never depends on where the process was started);
/// otherwise the default `policies/`, which must exist.
fn serve_policy_dir(
    flag: Option<PathBuf>,
    kubernetes: bool,
) -> Result<Option<PathBuf>, ConfigError> {
    match (flag, kubernetes) {
        (None, true) => Ok(None),
        (flag, _) => default_policy_dir(
            flag,
            ", or --kubernetes to take every policy from ClusterImagePolicy and ImagePolicy \
             resources",
        )
        .map(Some),
    }
}

/// Whether log lines may carry ANSI colour: only to a terminal, and never when `NO_COLOR` is
/// set to anything non-empty (<https://no-color.org>).
pub fn ansi_wanted() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The docker `config.json` to read credentials from: `--docker-config` (a file, or a
/// directory holding `config.json`); otherwise, where `docker_defaults` (the offline commands),
/// docker's own places: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, when the
/// file exists. `serve` reads only what it is given: a server's credentials are deliberate.
fn docker_config_path(
    flag: Option<PathBuf>,
    docker_defaults: bool,
) -> Option<(PathBuf, &'static str)> {
    if let Some(path) = flag {
        let path = if path.is_dir() {
            path.join("config.json")
        } else {
            path
        };
        return Some((path, "--docker-config"));
    }
    if !docker_defaults {
        return None;
    }
    let found = |p: PathBuf| p.is_file().then_some(p);
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return found(PathBuf::from(dir).join("config.json")).map(|p| (p, "DOCKER_CONFIG"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    found(PathBuf::from(home).join(".docker").join("config.json"))
        .map(|p| (p, "~/.docker/config.json"))
}

fn no_match(n: Option<NoMatchArg>) -> Option<NoMatch> {
    n.map(|n| match n {
        NoMatchArg::Deny => NoMatch::Deny,
        NoMatchArg::Warn => NoMatch::Warn,
        NoMatchArg::Allow => NoMatch::Allow,
    })
}

impl TryFrom<cli::RegistryArgs> for RegistryConfig {
    type Error = ConfigError;

    /// For `serve`: credentials only from `--docker-config`.
    fn try_from(args: cli::RegistryArgs) -> Result<Self, ConfigError> {
        registry_config(args, false)
    }
}

/// The registry configuration; `docker_defaults`: read docker's own credential file when
/// `--docker-config` is not given (see [`docker_config_path`]).
fn registry_config(
    args: cli::RegistryArgs,
    docker_defaults: bool,
) -> Result<RegistryConfig, ConfigError> {
    let cli::RegistryArgs {
        insecure_registry,
        registry_ca,
        registry_ca_for,
        azure,
        docker_config,
        registry_deny_cidr,
        registry_timeout_ms,
        registry_max_concurrency_per_host,
        review_max_images,
        review_max_concurrency,
        review_max_requests,
        review_max_blob_mib,
        review_max_fetched_mib,
        max_held_blob_mib,
    } = args;
    let mut ca_pem = Vec::new();
    for path in &registry_ca {
        let pem = read(path, "--registry-ca")?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError(format!(
                "--registry-ca {}: no PEM CERTIFICATE in the file",
                path.display()
            )));
        }
        ca_pem.push(pem);
    }
    let credentials = match docker_config_path(docker_config, docker_defaults) {
        Some((path, origin)) => {
            let path = &path;
            let text = String::from_utf8(read(path, origin)?)
                .map_err(|_| ConfigError(format!("{origin} {}: not UTF-8", path.display())))?;
            let (creds, ignored) = RegistryConfig::docker_config(&text)
                .map_err(|e| ConfigError(format!("{origin} {}: {e}", path.display())))?;
            for helper in ignored {
                tracing::warn!(%helper, "credential helpers are not supported; ignoring");
            }
            creds
        }
        None => Default::default(),
    };
    if registry_timeout_ms == 0 {
        return Err(ConfigError("--registry-timeout-ms must be positive".into()));
    }
    let mut registry_ca_pem = std::collections::HashMap::new();
    for entry in &registry_ca_for {
        let (host, path) = entry
            .split_once('=')
            .filter(|(h, p)| !h.is_empty() && !p.is_empty())
            .ok_or_else(|| ConfigError(format!("--registry-ca-for {entry:?}: want HOST=FILE")))?;
        let pem = read(Path::new(path), "--registry-ca-for")?;
        if !String::from_utf8_lossy(&pem).contains("BEGIN CERTIFICATE") {
            return Err(ConfigError(format!(
                "--registry-ca-for {host}: no PEM CERTIFICATE in {path}"
            )));
        }
        registry_ca_pem.insert(host.to_string(), pem);
    }
    let mut extra_deny = Vec::new();
    for c in &registry_deny_cidr {
        extra_deny.push(
            c.parse::<Cidr>()
                .map_err(|e| ConfigError(format!("--registry-deny-cidr: {e}")))?,
        );
    }
    Ok(RegistryConfig {
        insecure: insecure_registry,
        ca_pem,
        registry_ca_pem,
        credentials,
        realm_hosts: Default::default(),
        deny: DenyList::with(extra_deny),
        azure: azure_config(azure, registry_timeout_ms)?,
        limits: work_limits(Limits {
            request_timeout: Duration::from_millis(registry_timeout_ms),
            max_concurrent_per_host: registry_max_concurrency_per_host,
            review_max_images,
            review_max_concurrent: review_max_concurrency,
            review_max_requests,
            review_max_bytes: review_max_blob_mib.saturating_mul(1 << 20),
            review_max_fetched_bytes: review_max_fetched_mib.saturating_mul(1 << 20),
            max_held_bytes: max_held_blob_mib.saturating_mul(1 << 20),
            ..Limits::default()
        })?,
    })
}

/// The Azure identity, when the tenant and client IDs are set (flags or the
/// workload-identity variables); a client secret comes from `AZURE_CLIENT_SECRET` only.
fn azure_config(
    args: cli::AzureArgs,
    timeout_ms: u64,
) -> Result<Option<crate::azure::AzureConfig>, ConfigError> {
    use crate::azure::{AzureConfig, Credential};
    let cli::AzureArgs {
        azure_tenant_id,
        azure_client_id,
        azure_federated_token_file,
        azure_authority_host,
        azure_ca,
        azure_vault_host,
        acr_registry,
        azure_refresh_secs,
        azure_stale_after_secs,
    } = args;
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (tenant, client) = (nonempty(azure_tenant_id), nonempty(azure_client_id));
    let secret = nonempty(std::env::var("AZURE_CLIENT_SECRET").ok());
    let credential = match (azure_federated_token_file, secret) {
        (Some(file), _) => Credential::FederatedTokenFile(file),
        (None, Some(secret)) => Credential::ClientSecret(secret),
        (None, None) if tenant.is_none() && client.is_none() => return Ok(None),
        (None, None) => {
            return Err(ConfigError(
                "an Azure tenant or client is set but no credential: set \
                 AZURE_FEDERATED_TOKEN_FILE (workload identity) or AZURE_CLIENT_SECRET"
                    .into(),
            ));
        }
    };
    // The tenant and client may also come from the policies' SignetConfig.spec.azure; what
    // is still missing then is an error at start-up.
    let (tenant_id, client_id) = (tenant.unwrap_or_default(), client.unwrap_or_default());
    let authority_host = reqwest::Url::parse(&azure_authority_host).map_err(|e| {
        ConfigError(format!(
            "--azure-authority-host {azure_authority_host:?}: {e}"
        ))
    })?;
    let mut ca_pem = Vec::new();
    for path in &azure_ca {
        ca_pem.push(read(path, "--azure-ca")?);
    }
    if azure_refresh_secs == 0 || azure_stale_after_secs == 0 {
        return Err(ConfigError(
            "--azure-refresh-secs and --azure-stale-after-secs must be positive".into(),
        ));
    }
    let config = AzureConfig {
        tenant_id,
        client_id,
        authority_host,
        credential,
        ca_pem,
        vault_hosts: azure_vault_host,
        acr_hosts: acr_registry,
        refresh_interval: Duration::from_secs(azure_refresh_secs),
        stale_after: Duration::from_secs(azure_stale_after_secs),
        request_timeout: Duration::from_millis(timeout_ms.max(1000)),
    };
    // Fails now, not at the first refresh, on a bad authority or tenant.
    if !config.tenant_id.is_empty() {
        crate::azure::entra::token_url(&config.authority_host, &config.tenant_id)
            .map_err(|e| ConfigError(e.to_string()))?;
    }
    Ok(Some(config))
}

/// Checks the limits on what one review may cost against each other.
fn work_limits(l: Limits) -> Result<Limits, ConfigError> {
    let positive = [
        (
            "--registry-max-concurrency-per-host",
            l.max_concurrent_per_host,
        ),
        ("--review-max-images", l.review_max_images),
        ("--review-max-concurrency", l.review_max_concurrent),
        ("--review-max-requests", l.review_max_requests),
    ];
    for (flag, v) in positive {
        if v == 0 {
            return Err(ConfigError(format!("{flag} must be positive")));
        }
    }
    if l.review_max_concurrent >= l.max_concurrent_per_host {
        return Err(ConfigError(format!(
            "--review-max-concurrency ({}) must be below --registry-max-concurrency-per-host ({}), \
             so that one review cannot take a registry host from the others",
            l.review_max_concurrent, l.max_concurrent_per_host
        )));
    }
    if l.review_max_bytes < l.max_blob_bytes || l.review_max_bytes > l.max_held_bytes {
        return Err(ConfigError(format!(
            "--review-max-blob-mib must be at least {} (the blob limit) and at most \
             --max-held-blob-mib",
            l.max_blob_bytes >> 20
        )));
    }
    if l.review_max_fetched_bytes < l.max_blob_bytes {
        return Err(ConfigError(format!(
            "--review-max-fetched-mib must be at least {} (the blob limit)",
            l.max_blob_bytes >> 20
        )));
    }
    if l.max_held_bytes > u64::from(u32::MAX) {
        return Err(ConfigError("--max-held-blob-mib must be below 4096".into()));
    }
    Ok(l)
}

impl TryFrom<cli::LimitArgs> for ServeLimits {
    type Error = ConfigError;

    fn try_from(args: cli::LimitArgs) -> Result<Self, ConfigError> {
        let cli::LimitArgs {
            max_connections,
            max_inflight_reviews,
            max_body_bytes,
            body_budget_bytes,
            max_concurrent_decodes,
            request_read_timeout_ms,
            tls_handshake_timeout_ms,
            idle_timeout_secs,
            h2_max_concurrent_streams,
            h2_keep_alive_interval_secs,
            h2_keep_alive_timeout_secs,
        } = args;
        let limits = ServeLimits {
            max_connections,
            max_inflight_reviews,
            max_body_bytes,
            body_budget_bytes,
            max_concurrent_decodes,
            request_read_timeout: Duration::from_millis(request_read_timeout_ms),
            tls_handshake_timeout: Duration::from_millis(tls_handshake_timeout_ms),
            idle_timeout: Duration::from_secs(idle_timeout_secs),
            h2_max_concurrent_streams,
            h2_keep_alive_interval: Duration::from_secs(h2_keep_alive_interval_secs),
            h2_keep_alive_timeout: Duration::from_secs(h2_keep_alive_timeout_secs),
            ..ServeLimits::default()
        };
        limits.validate().map_err(|e| ConfigError(e.to_string()))?;
        Ok(limits)
    }
}

/// Where `serve` writes the CA of its self-signed certificate unless told: a directory of
/// this process's own, so that two development servers on one machine never overwrite each
/// other's CA.
fn dev_ca_path() -> PathBuf {
    std::env::temp_dir()
        .join(format!("signet-dev-{}", std::process::id()))
        .join("ca.pem")
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{flag} {}: {e}", path.display())))
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, ConfigError> {
        let Args {
            command,
            log_format,
        } = args;
        let command = match command {
            cli::Command::Serve(s) => {
                let cli::ServeArgs {
                    listen,
                    admin_listen,
                    tls_cert,
                    tls_key,
                    self_signed_ca_out,
                    policies,
                    no_match: nm,
                    shutdown_delay_secs,
                    drain_timeout_secs,
                    cluster,
                    pull_secrets,
                    limits,
                    registry,
                } = s;
                let policies = serve_policy_dir(policies, cluster.kubernetes)?;
                let kubernetes = kube_options(cluster);
                let tls = match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => TlsSource::Files { cert, key },
                    (None, None) => TlsSource::SelfSigned {
                        ca_out: self_signed_ca_out.unwrap_or_else(dev_ca_path),
                    },
                    _ => return Err(ConfigError("--tls-cert and --tls-key go together".into())),
                };
                CommandConfig::Serve {
                    serve: Box::new(ServeConfig {
                        listen,
                        admin_listen,
                        tls,
                        policies,
                        no_match_override: no_match(nm),
                        policy_poll: Duration::from_secs(5),
                        tls_poll: Duration::from_secs(10),
                        shutdown_delay: Duration::from_secs(shutdown_delay_secs),
                        drain_timeout: Duration::from_secs(drain_timeout_secs),
                        limits: limits.try_into()?,
                        material: Default::default(),
                        pull_secrets,
                    }),
                    registry: registry.try_into()?,
                    kubernetes,
                }
            }
            cli::Command::Verify(v) => {
                let cli::VerifyArgs {
                    images,
                    policies,
                    namespace,
                    no_match: nm,
                    output,
                    timeout_secs,
                    registry,
                } = v;
                CommandConfig::Verify {
                    images,
                    policies: policy_dir(policies)?,
                    namespace,
                    no_match: no_match(nm),
                    output,
                    timeout: Duration::from_secs(timeout_secs.max(1)),
                    registry: registry_config(registry, true)?,
                }
            }
            cli::Command::Review(r) => {
                let cli::ReviewArgs {
                    files,
                    policies,
                    namespace,
                    no_match: nm,
                    output,
                    timeout_secs,
                    registry,
                } = r;
                CommandConfig::Review {
                    files,
                    policies: policy_dir(policies)?,
                    namespace,
                    no_match: no_match(nm),
                    output,
                    timeout: Duration::from_secs(timeout_secs.max(1)),
                    registry: registry_config(registry, true)?,
                }
            }
            cli::Command::Policy(cli::PolicyCommand::Check(cli::PolicyCheckArgs {
                dir,
                policies,
                cluster,
            })) => CommandConfig::PolicyCheck {
                dir: policy_dir(dir.or(policies))?,
                kubernetes: kube_options(cluster),
            },
            cli::Command::Completion(cli::CompletionArgs { shell }) => {
                CommandConfig::Completion { shell }
            }
            cli::Command::Import(cli::ImportCommand::Ratify(cli::ImportRatifyArgs {
                files,
                out_dir,
                mode,
                force,
            })) => CommandConfig::ImportRatify {
                files,
                out_dir,
                mode: match mode {
                    cli::ImportMode::Enforce => crate::policy::Mode::Enforce,
                    cli::ImportMode::Warn => crate::policy::Mode::Warn,
                    cli::ImportMode::Audit => crate::policy::Mode::Audit,
                },
                force,
            },
        };
        Ok(Config {
            log_format,
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn registry(extra: &[&str]) -> Result<RegistryConfig, ConfigError> {
        let mut argv = vec!["signet", "verify"];
        argv.extend_from_slice(extra);
        argv.push("img");
        match Config::try_from(Args::try_parse_from(argv).unwrap())?.command {
            CommandConfig::Verify { registry, .. } => Ok(registry),
            _ => unreachable!(),
        }
    }

    #[test]
    fn azure_flags_make_one_identity_or_a_precise_error() {
        let a = registry(&[
            "--azure-tenant-id",
            "t",
            "--azure-client-id",
            "c",
            "--azure-federated-token-file",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ])
        .unwrap()
        .azure
        .unwrap();
        assert_eq!((a.tenant_id.as_str(), a.client_id.as_str()), ("t", "c"));
        assert_eq!(a.acr_hosts, vec!["*.azurecr.io".to_string()]);
        assert_eq!(
            a.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(a.refresh_interval, Duration::from_secs(300));
        assert_eq!(a.stale_after, Duration::from_secs(3600));
        let e = registry(&["--azure-tenant-id", "t", "--azure-client-id", "c"]).unwrap_err();
        assert!(e.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"), "{e}");
        let e = registry(&[
            "--azure-tenant-id",
            "t",
            "--azure-client-id",
            "c",
            "--azure-federated-token-file",
            "/t",
            "--azure-authority-host",
            "http://login.example.com/",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not https"), "{e}");
    }

    #[test]
    fn registry_deny_cidr_adds_to_the_defaults() {
        use std::net::IpAddr;
        let r = registry(&[
            "--registry-deny-cidr",
            "10.0.0.0/8",
            "--registry-deny-cidr",
            "127.0.0.2",
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(r.deny.check(ip("10.1.2.3")).is_err());
        assert!(r.deny.check(ip("127.0.0.2")).is_err());
        assert!(
            r.deny.check(ip("169.254.169.254")).is_err(),
            "defaults kept"
        );
        assert!(r.deny.check(ip("127.0.0.1")).is_ok());
        let e = registry(&["--registry-deny-cidr", "10.0.0.0/99"]).unwrap_err();
        assert!(e.to_string().contains("--registry-deny-cidr"), "{e}");
    }

    #[test]
    fn serve_limit_flags_default_to_the_documented_limits_and_are_validated() {
        let serve = |extra: &[&str]| {
            let mut argv = vec!["signet", "serve"];
            argv.extend_from_slice(extra);
            Config::try_from(Args::try_parse_from(argv).unwrap()).map(|c| match c.command {
                CommandConfig::Serve { serve, .. } => serve.limits,
                _ => unreachable!(),
            })
        };
        assert_eq!(serve(&[]).unwrap(), ServeLimits::default());
        let l = serve(&["--max-connections", "64", "--max-inflight-reviews", "8"]).unwrap();
        assert_eq!((l.max_connections, l.max_inflight_reviews), (64, 8));
        let e = serve(&["--max-connections", "8", "--max-inflight-reviews", "8"]).unwrap_err();
        assert!(e.to_string().contains("--max-connections"), "{e}");
        let e = serve(&["--request-read-timeout-ms", "0"]).unwrap_err();
        assert!(e.to_string().contains("--request-read-timeout-ms"), "{e}");
    }

    /// `serve` with no address flags listens on loopback only, and its development CA goes to
    /// a directory of this process's own.
    #[test]
    fn serve_defaults_to_loopback_and_a_per_process_dev_ca() {
        let args = Args::try_parse_from(["signet", "serve"]).unwrap();
        let CommandConfig::Serve { serve, .. } = Config::try_from(args).unwrap().command else {
            unreachable!()
        };
        assert!(serve.listen.ip().is_loopback(), "{}", serve.listen);
        assert!(
            serve.admin_listen.ip().is_loopback(),
            "{}",
            serve.admin_listen
        );
        let TlsSource::SelfSigned { ca_out } = serve.tls else {
            panic!("not self-signed")
        };
        let pid = std::process::id().to_string();
        assert!(
            ca_out
                .parent()
                .unwrap()
                .ends_with(format!("signet-dev-{pid}")),
            "{}",
            ca_out.display()
        );
    }

    #[test]
    fn kubernetes_flags_become_options_only_with_kubernetes() {
        // `serve` and `policy check` take the same flags and make the same options of them.
        for command in [&["serve"][..], &["policy", "check", "policies"]] {
            let kube = |extra: &[&str]| {
                let mut argv = vec!["signet"];
                argv.extend_from_slice(command);
                argv.extend_from_slice(extra);
                let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
                Config::try_from(args)
                    .map_err(|e| e.to_string())
                    .map(|c| match c.command {
                        CommandConfig::Serve { kubernetes, .. }
                        | CommandConfig::PolicyCheck { kubernetes, .. } => kubernetes,
                        _ => unreachable!(),
                    })
            };
            assert_eq!(kube(&[]).unwrap(), None, "{command:?}");
            let k = kube(&["--kubernetes", "--namespace", "ops"])
                .unwrap()
                .unwrap();
            assert_eq!(k.namespace, "ops");
            assert!(!k.secrets_all_namespaces && k.cluster_policy_namespaces.is_empty());
            let k = kube(&[
                "--kubernetes",
                "--secrets-all-namespaces",
                "--cluster-policy-namespace",
                "team-a",
                "--cluster-policy-namespace",
                "team-b",
            ])
            .unwrap()
            .unwrap();
            assert!(k.secrets_all_namespaces, "{command:?}");
            assert_eq!(k.cluster_policy_namespaces, ["team-a", "team-b"]);
            // Each flag needs the one that makes it mean something.
            let e = kube(&["--secrets-all-namespaces"]).unwrap_err();
            assert!(e.contains("--kubernetes"), "{command:?}: {e}");
            let e = kube(&["--kubernetes", "--cluster-policy-namespace", "x"]).unwrap_err();
            assert!(e.contains("--secrets-all-namespaces"), "{command:?}: {e}");
        }
    }

    /// `serve` reads `policies/` by default; with `--kubernetes` only what `--policies` names,
    /// and nothing without it (the tests run where a `policies/` exists).
    #[test]
    fn serve_with_kubernetes_needs_no_policy_directory() {
        let dir = |extra: &[&str]| {
            let mut argv = vec!["signet", "serve"];
            argv.extend_from_slice(extra);
            match Config::try_from(Args::try_parse_from(argv).unwrap())
                .unwrap()
                .command
            {
                CommandConfig::Serve { serve, .. } => serve.policies,
                _ => unreachable!(),
            }
        };
        assert!(Path::new(DEFAULT_POLICIES).is_dir());
        assert_eq!(dir(&[]), Some(PathBuf::from(DEFAULT_POLICIES)));
        assert_eq!(dir(&["--kubernetes"]), None);
        assert_eq!(
            dir(&["--kubernetes", "--policies", "/etc/signet/policies"]),
            Some(PathBuf::from("/etc/signet/policies"))
        );
    }

    #[test]
    fn registry_ca_for_wants_host_and_file() {
        for bad in ["nohost", "=file", "host="] {
            let e = registry(&["--registry-ca-for", bad]).unwrap_err();
            assert!(e.to_string().contains("HOST=FILE"), "{bad}: {e}");
        }
        let e = registry(&["--registry-ca-for", "r.example.com=/nonexistent/ca.pem"]).unwrap_err();
        assert!(e.to_string().contains("--registry-ca-for"), "{e}");
    }

    #[test]
    fn review_limits_have_defaults_and_are_checked() {
        let l = registry(&[]).unwrap().limits;
        assert_eq!(
            (
                l.review_max_images,
                l.review_max_concurrent,
                l.review_max_requests
            ),
            (100, 16, 1000)
        );
        assert_eq!((l.review_max_bytes, l.max_held_bytes), (16 << 20, 64 << 20));
        let l = registry(&["--review-max-images", "5", "--review-max-blob-mib", "8"])
            .unwrap()
            .limits;
        assert_eq!((l.review_max_images, l.review_max_bytes), (5, 8 << 20));
        for (bad, flag) in [
            (&["--review-max-images", "0"][..], "--review-max-images"),
            (
                &["--review-max-concurrency", "32"],
                "--review-max-concurrency",
            ),
            (&["--review-max-blob-mib", "2"], "--review-max-blob-mib"),
            (&["--review-max-blob-mib", "128"], "--review-max-blob-mib"),
        ] {
            let e = registry(bad).unwrap_err();
            assert!(e.to_string().contains(flag), "{bad:?}: {e}");
        }
    }
}
