//! The command line, as typed: strings, paths and numbers. [`crate::config`] validates it.
//!
//! Must not import the engine's modules (`decision`, `registry`, `policy`, `verify`, `server`): the
//! command line is data that `config` turns into settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// Exit status of every command, printed at the end of `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  admitted: every image trusted (verify), every object admitted (review), policies valid
     (policy check), or the server stopped cleanly (serve)
  1  denied: an image is untrusted (verify), an object would be denied (review), or a policy
     file has errors, the directory holds no policy, or (with --kubernetes) a policy names a
     Secret or ConfigMap that does not exist (policy check)
  2  usage or configuration error (bad flag, unreadable file, no policy directory)
  3  could not check: no image is untrusted, but one could not be checked (registry
     unreachable or refusing, deadline) (verify)";

/// signet: admit only signed container images.
#[derive(Debug, Parser)]
#[command(
    name = "signet",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_STATUS_HELP
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "SIGNET_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// How `verify` and `review` print their result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts; field names in camelCase, like the policy YAML.
    Json,
    /// The JSON document, as YAML.
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NoMatchArg {
    Deny,
    Warn,
    Allow,
}

// Parsed once per process: the size of the serve variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhook.
    Serve(ServeArgs),
    /// Verify images against the policies, say what the webhook would do, and why.
    #[command(after_help = EXIT_STATUS_HELP)]
    Verify(VerifyArgs),
    /// Answer AdmissionReviews or plain manifests (Pod, Deployment, any workload, a List) as
    /// the webhook would.
    #[command(after_help = EXIT_STATUS_HELP)]
    Review(ReviewArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Convert another system's verification configuration into signet policies.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Print a shell completion script, e.g. `signet completion bash > ~/.local/share/bash-completion/completions/signet`.
    Completion(CompletionArgs),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check every policy file in a directory; print each error with file and line. With
    /// --kubernetes, also the cluster's policy resources, as `serve` with the same flags
    /// would read them; a Secret or ConfigMap a policy names must exist.
    #[command(after_help = EXIT_STATUS_HELP)]
    Check(PolicyCheckArgs),
}

#[derive(Debug, ClapArgs)]
pub struct PolicyCheckArgs {
    /// The policy directory (the same as --policies).
    #[arg(value_name = "DIR", conflicts_with = "policies")]
    pub dir: Option<PathBuf>,
    /// The policy directory [default: policies].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    // With --kubernetes the cluster's policies load with the files, read as `signet serve`
    // with the same flags would read them.
    #[command(flatten)]
    pub cluster: KubernetesArgs,
}

/// Policies from the cluster, for `serve` and `policy check` alike.
#[derive(Debug, Clone, ClapArgs)]
pub struct KubernetesArgs {
    /// Take policies from ClusterImagePolicy and ImagePolicy resources, and the Secrets and
    /// ConfigMaps policies reference, through the cluster that KUBECONFIG names (in a pod: the
    /// in-cluster config). `serve` watches them and writes the resources' status; with
    /// --policies the directory applies too, without it every policy is a resource (a
    /// ./policies directory is not read). `policy check` reads them once, with the directory,
    /// and writes nothing. See docs/kubernetes.md.
    #[arg(long)]
    pub kubernetes: bool,
    /// signet's own namespace, with --kubernetes: the one namespace whose Secrets and
    /// ConfigMaps ClusterImagePolicies and policy files may reference, and where their
    /// references point by default.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "signet-system",
        value_name = "NS"
    )]
    pub namespace: String,
    /// With --kubernetes: read Secrets and ConfigMaps in every namespace (`serve` needs the
    /// secrets-all-namespaces RBAC component for it), so that ImagePolicies can take keys from
    /// their own namespace. Without it only signet's namespace is read.
    #[arg(long, requires = "kubernetes")]
    pub secrets_all_namespaces: bool,
    /// With --secrets-all-namespaces: a further namespace whose Secrets and ConfigMaps
    /// ClusterImagePolicies may reference (`*`: any). Repeatable.
    #[arg(
        long = "cluster-policy-namespace",
        value_name = "NS",
        requires = "secrets_all_namespaces"
    )]
    pub cluster_policy_namespace: Vec<String>,
}

#[derive(Debug, ClapArgs)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How signet reaches registries (shared by serve, verify and review).
#[derive(Debug, Clone, ClapArgs)]
pub struct RegistryArgs {
    /// A registry reached over plain HTTP (host or host:port, normalised like image hosts:
    /// case-insensitive; port 443 is refused). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// A PEM bundle of extra CAs trusted for registry TLS. Repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,
    /// A PEM CA bundle trusted for one registry only (host or host:port, normalised like
    /// image hosts). Repeatable.
    #[arg(long = "registry-ca-for", value_name = "HOST=FILE")]
    pub registry_ca_for: Vec<String>,
    /// Azure identity, Key Vault and ACR (see docs/azure.md).
    #[command(flatten)]
    pub azure: AzureArgs,
    /// A docker config.json whose `auths` give registry credentials, or a directory holding
    /// one (as DOCKER_CONFIG names it). Without it, `verify` and `review` read
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json when there is one, as docker,
    /// cosign, crane and notation do; `serve` reads only what it is given.
    #[arg(
        long = "docker-config",
        value_name = "FILE|DIR",
        env = "SIGNET_DOCKER_CONFIG"
    )]
    pub docker_config: Option<PathBuf>,
    /// An address range registries must never resolve to, added to the default deny-list
    /// (link-local and cloud-metadata addresses), e.g. 10.0.0.0/8. Repeatable.
    #[arg(long = "registry-deny-cidr", value_name = "CIDR")]
    pub registry_deny_cidr: Vec<String>,
    /// Per-request registry timeout, in milliseconds.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub registry_timeout_ms: u64,
    /// Registry requests in flight to one registry host, for all reviews together.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub registry_max_concurrency_per_host: usize,
    /// Distinct images one review may list; a review with more is denied outright, whatever
    /// the policies' onError says.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub review_max_images: usize,
    /// Registry requests one review may have in flight at once; must be below
    /// --registry-max-concurrency-per-host, so other reviews keep a share of every host.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub review_max_concurrency: usize,
    /// Registry requests one review may make in total; a review that needs more is denied
    /// outright, whatever the policies' onError says.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub review_max_requests: usize,
    /// MiB of signature blobs one review may hold at once (at least the 4 MiB blob limit).
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub review_max_blob_mib: u64,
    /// MiB of blobs one review may fetch in total; a review that needs more is denied outright.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub review_max_fetched_mib: u64,
    /// MiB of signature blobs all reviews together may hold at once.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_held_blob_mib: u64,
}

#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    /// Address of the HTTPS webhook. Loopback unless told otherwise: in a cluster pass
    /// 0.0.0.0:8443 (the shipped manifests do).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP admin port (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub admin_listen: SocketAddr,
    /// Serving certificate (PEM); re-read when it changes. Without it, a self-signed one is made.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Where to write the CA of the self-signed certificate [default: a directory of this
    /// process's own under the temporary directory, signet-dev-PID/ca.pem; the log names it].
    #[arg(long, value_name = "FILE")]
    pub self_signed_ca_out: Option<PathBuf>,
    /// The policy directory; re-read when it changes [default: policies; with --kubernetes:
    /// none].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Override the policies' noMatch setting (with --kubernetes and no --policies, the only
    /// way to set it; deny otherwise).
    #[arg(long, value_enum)]
    pub no_match: Option<NoMatchArg>,
    #[command(flatten)]
    pub cluster: KubernetesArgs,
    /// Seconds to keep serving after SIGTERM before draining (endpoint removal lag).
    #[arg(long, default_value_t = 0)]
    pub shutdown_delay_secs: u64,
    /// Seconds to wait for open connections to finish when draining.
    #[arg(long, default_value_t = 20)]
    pub drain_timeout_secs: u64,
    /// Check each workload's images with its own registry credentials: the pod's (or pod
    /// template's) imagePullSecrets, then those of its service account, read from the
    /// Kubernetes API in its namespace (needs `get` on secrets and serviceaccounts; the
    /// cluster is found from KUBECONFIG or the in-cluster config). --docker-config stays the
    /// fallback. A secret that is missing or cannot be read is logged and named in the
    /// message when the registry then refuses.
    #[arg(long, env = "SIGNET_PULL_SECRETS")]
    pub pull_secrets: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    // Last: its help heading applies to every flag after it.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What `signet serve` holds at once, and how long a peer may take. The defaults fit a 512 MiB
/// memory limit.
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Open webhook connections. At the limit a new connection replaces the longest-idle one;
    /// it is closed at once only if every connection has a review in flight. The open-file
    /// limit is raised to its hard limit at start, and this is lowered to fit it.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// Reviews being read, decoded or decided at once. Beyond it a request waits for a place
    /// until its read deadline, then gets 503 with Retry-After, before its body is read. Must
    /// be below --max-connections.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_inflight_reviews: usize,
    /// Largest request body; larger ones get 413.
    #[arg(long, default_value_t = 7 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Request body bytes buffered at once over all requests; a body that does not fit what
    /// is left waits until its read deadline, then gets 503 with Retry-After.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub body_budget_bytes: usize,
    /// Large bodies decoded at once (decoding runs off the async workers and can cost many
    /// times the body's size).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_concurrent_decodes: usize,
    /// Time to receive a request body after its headers (also cut at the review's own
    /// deadline); a late body gets 408 and the connection is closed.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub request_read_timeout_ms: u64,
    /// Time to complete the TLS handshake.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub tls_handshake_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY). For
    /// HTTP/1.1 it also bounds the time to send a request's headers.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub idle_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection (the API server sends one review per stream).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub h2_keep_alive_interval_secs: u64,
    /// Close an HTTP/2 connection whose keep-alive ping is not answered within this.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub h2_keep_alive_timeout_secs: u64,
}

#[derive(Debug, ClapArgs)]
pub struct VerifyArgs {
    /// Images to verify.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// The policy directory [default: policies].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Evaluate as for a request in this namespace (for namespaced ImagePolicies).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Override the policies' noMatch setting.
    #[arg(long, value_enum)]
    pub no_match: Option<NoMatchArg>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Overall time limit, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, ClapArgs)]
pub struct ReviewArgs {
    /// Files (- for standard input), YAML or JSON, one or many documents each: AdmissionReviews
    /// are answered as they are; any other object (a Pod, a Deployment, a List of them) is
    /// reviewed as its CREATE would be.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The policy directory [default: policies].
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Namespace of manifests that name none (for namespaced ImagePolicies).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Override the policies' noMatch setting.
    #[arg(long, value_enum)]
    pub no_match: Option<NoMatchArg>,
    /// Output format: text, or the AdmissionReview responses as JSON or YAML (several as a
    /// List).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Overall time limit, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Azure: the workload identity (or a development client secret) that reads Key Vault trust
/// material and Azure Container Registries. Enabled when a credential is set (the federated
/// token file, or AZURE_CLIENT_SECRET, read from the environment only, never from the command
/// line); the AKS workload-identity webhook injects the variables.
#[derive(Debug, Clone, ClapArgs)]
pub struct AzureArgs {
    /// The Entra tenant ID.
    #[arg(long, value_name = "ID", env = "AZURE_TENANT_ID")]
    pub azure_tenant_id: Option<String>,
    /// The application (client) ID of the workload identity.
    #[arg(long, value_name = "ID", env = "AZURE_CLIENT_ID")]
    pub azure_client_id: Option<String>,
    /// The projected service-account token exchanged for Entra tokens (re-read each time).
    #[arg(long, value_name = "FILE", env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub azure_federated_token_file: Option<PathBuf>,
    /// The Entra authority (https only).
    #[arg(
        long,
        value_name = "URL",
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com/"
    )]
    pub azure_authority_host: String,
    /// A PEM bundle of extra CAs trusted for the Entra authority and vault hosts. Repeatable.
    #[arg(long = "azure-ca", value_name = "FILE")]
    pub azure_ca: Vec<PathBuf>,
    /// A vault host (host or host:port) that may receive the vault token besides the Key
    /// Vault domains (*.vault.azure.net and the sovereign clouds'). Repeatable.
    #[arg(long = "azure-vault-host", value_name = "HOST[:PORT]")]
    pub azure_vault_host: Vec<String>,
    /// A registry reached as Azure Container Registry with the workload identity: `*.suffix`
    /// or an exact host\[:port\]. Repeatable.
    #[arg(
        long = "acr-registry",
        value_name = "HOST",
        default_value = "*.azurecr.io"
    )]
    pub acr_registry: Vec<String>,
    /// Seconds between Key Vault refreshes.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub azure_refresh_secs: u64,
    /// Seconds the last good Key Vault material is kept while the vault cannot be read; then
    /// it is trusted no more.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub azure_stale_after_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Convert Ratify v1 resources (Verifier, KeyManagementProvider, CertificateStore, Store,
    /// Policy; `kubectl get ... -o yaml` output works as is) into signet policies.
    ///
    /// The policies go to standard output, or one file each into --out-dir. Everything that
    /// cannot be carried over as is is reported on standard error: "dropped" (something Ratify
    /// verified is not verified: exit status 1), "changed" (verdicts can differ as explained),
    /// "note" (what replaces an operational setting). Run `signet policy check` on the result.
    Ratify(ImportRatifyArgs),
}

#[derive(Debug, ClapArgs)]
pub struct ImportRatifyArgs {
    /// YAML files with Ratify resources (several documents each), or - for standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write one file per policy into this directory instead of standard output.
    #[arg(short = 'o', long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The mode of every converted policy: start with warn, switch to enforce once the
    /// warnings are gone.
    #[arg(long, value_enum, default_value_t = ImportMode::Enforce)]
    pub mode: ImportMode,
    /// Replace files that already exist in --out-dir.
    #[arg(long, requires = "out_dir")]
    pub force: bool,
}

/// `spec.mode` of imported policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportMode {
    Enforce,
    Warn,
    Audit,
}
