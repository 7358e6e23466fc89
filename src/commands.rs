//! The composition root: builds the metrics, registry client, engine and server from a
//! [`Config`], and runs one command.
//!
//! The only module that may import every other; nothing but `lib.rs` imports it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Output;
use crate::config::{CommandConfig, Config};
use crate::decision::{Engine, ImageReport, ImageStatus, ImageUse, PolicyVerdict, Verdict};
use crate::metrics::Metrics;
use crate::policy::kube::KubeOptions;
use crate::policy::source::{self, Source};
use crate::policy::{self, NoMatch, OnError};
use crate::registry::RegistryConfig;
use crate::review::{Reviewer, Route};
use crate::verify::Outcome;
use crate::{EXIT_UNCHECKED, EXIT_UNTRUSTED, EXIT_USAGE, admission, engine, exit, server};

/// Runs one command to completion. One arm per subcommand, each handing its configuration to
/// its own function.
pub async fn run(config: Config) -> ExitCode {
    let Config {
        log_format: _,
        command,
    } = config;
    match command {
        CommandConfig::Serve {
            serve,
            registry,
            kubernetes,
        } => serve_command(*serve, registry, kubernetes).await,
        CommandConfig::Verify {
            images,
            policies,
            namespace,
            no_match,
            output,
            timeout,
            registry,
        } => {
            let namespace = namespace.as_deref();
            verify_command(
                &images, &policies, namespace, no_match, output, timeout, registry,
            )
            .await
        }
        CommandConfig::Review {
            files,
            policies,
            namespace,
            no_match,
            output,
            timeout,
            registry,
        } => {
            review_command(
                &files, &policies, &namespace, no_match, output, timeout, registry,
            )
            .await
        }
        CommandConfig::PolicyCheck {
            dir,
            kubernetes: None,
        } => policy_check_command(&dir),
        CommandConfig::PolicyCheck {
            dir,
            kubernetes: Some(options),
        } => policy_check_cluster(&dir, options).await,
        CommandConfig::ImportRatify {
            files,
            out_dir,
            mode,
            force,
        } => crate::import::ratify_command(&files, out_dir.as_deref(), mode, force),
        CommandConfig::Completion { shell } => completion_command(shell),
    }
}

/// What `signet verify` concluded about one image. Ordered from best to worst: the worst of a
/// run decides its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Trust {
    /// Every policy that covers the image trusts it.
    Trusted,
    /// No policy covers it and `noMatch` is `allow`.
    Allowed,
    /// Nothing says it is untrusted, but a policy could not check it (registry, deadline).
    CouldNotCheck,
    /// A policy decided it is not trusted, no policy covers it (and `noMatch` is not
    /// `allow`), or the reference is invalid.
    Untrusted,
}

impl Trust {
    fn of(r: &ImageReport, no_match: NoMatch) -> Trust {
        match &r.status {
            ImageStatus::InvalidReference { .. } => Trust::Untrusted,
            ImageStatus::NoPolicy { .. } if no_match == NoMatch::Allow => Trust::Allowed,
            ImageStatus::NoPolicy { .. } => Trust::Untrusted,
            ImageStatus::Checked { policies } => policies
                .iter()
                .map(|p| match *p.verdict {
                    PolicyVerdict::Trusted { .. } => Trust::Trusted,
                    PolicyVerdict::Untrusted { .. } => Trust::Untrusted,
                    PolicyVerdict::Undecided { .. } => Trust::CouldNotCheck,
                })
                .max()
                .unwrap_or(Trust::Untrusted),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Trust::Trusted => "TRUSTED",
            Trust::Allowed => "ALLOWED",
            Trust::CouldNotCheck => "COULD NOT CHECK",
            Trust::Untrusted => "UNTRUSTED",
        }
    }

    fn exit_code(self) -> u8 {
        match self {
            Trust::Trusted | Trust::Allowed => 0,
            Trust::CouldNotCheck => EXIT_UNCHECKED,
            Trust::Untrusted => EXIT_UNTRUSTED,
        }
    }
}

/// What the webhook would answer for one image on its own.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAnswer {
    allowed: bool,
    /// `admitted`, `warned`, `audited` or `denied`.
    decision: &'static str,
    /// In words, e.g. `admitted with a warning (mode warn)`.
    summary: String,
    /// The deny message, warnings and audit annotations the API server would get.
    messages: Vec<String>,
}

impl WebhookAnswer {
    fn of(r: &ImageReport, no_match: NoMatch) -> Self {
        let v = r.admission(no_match);
        let (decision, words) = if !v.allowed {
            ("denied", "denied")
        } else if !v.warnings.is_empty() {
            ("warned", "admitted with a warning")
        } else if !v.audit_annotations.is_empty() {
            ("audited", "admitted with an audit annotation")
        } else {
            ("admitted", "admitted")
        };
        let why = why(r, no_match);
        let summary = if why.is_empty() {
            words.to_string()
        } else {
            format!("{words} ({why})")
        };
        let mut messages = v.denials;
        messages.extend(v.warnings);
        messages.extend(v.audit_annotations.into_values());
        WebhookAnswer {
            allowed: v.allowed,
            decision,
            summary,
            messages,
        }
    }
}

/// Which setting gives an image's admission: `mode warn`, `onError: allow`, `noMatch: deny`…
fn why(r: &ImageReport, no_match: NoMatch) -> String {
    let mut settings: Vec<String> = Vec::new();
    match &r.status {
        ImageStatus::InvalidReference { .. } => settings.push("invalid reference".into()),
        ImageStatus::NoPolicy { .. } => {
            settings.push(format!("noMatch: {}", no_match_str(no_match)))
        }
        ImageStatus::Checked { policies } => {
            for p in policies {
                let s = match &*p.verdict {
                    PolicyVerdict::Trusted { authorities } => {
                        let logged = authorities.iter().any(
                            |a| matches!(&a.result, Outcome::Trusted(e) if !e.logged.is_empty()),
                        );
                        if !logged {
                            continue;
                        }
                        "a failed check the verification level only logs".to_string()
                    }
                    PolicyVerdict::Undecided { .. } if p.on_error == OnError::Allow => {
                        "onError: allow".to_string()
                    }
                    _ => format!("mode {}", p.mode.as_str()),
                };
                if !settings.contains(&s) {
                    settings.push(s);
                }
            }
        }
    }
    settings.join(", ")
}

fn no_match_str(n: NoMatch) -> &'static str {
    match n {
        NoMatch::Deny => "deny",
        NoMatch::Warn => "warn",
        NoMatch::Allow => "allow",
    }
}

/// One image of `signet verify -o json`: the engine's report, the trust label, and what the
/// webhook would do.
#[derive(serde::Serialize)]
struct VerifiedImage<'a> {
    #[serde(flatten)]
    report: &'a ImageReport,
    trust: Trust,
    webhook: WebhookAnswer,
}

/// `signet verify -o json`.
#[derive(serde::Serialize)]
struct VerifyOutput<'a> {
    /// The worst of the images' trust.
    result: Trust,
    /// Every image trusted (or allowed by `noMatch: allow`).
    trusted: bool,
    images: Vec<VerifiedImage<'a>>,
    /// Why the images were refused as a whole (too many, over the review's budget), if so.
    denials: Vec<String>,
}

/// `signet verify`: decides `images` as a review in `namespace` would, prints for each its
/// trust and what the webhook would do, and exits by the worst trust: 0 trusted, 1 untrusted,
/// 3 could not check.
async fn verify_command(
    images: &[String],
    policies: &Path,
    namespace: Option<&str>,
    no_match: Option<NoMatch>,
    output: Output,
    timeout: Duration,
    registry: RegistryConfig,
) -> ExitCode {
    let Some(engine) = offline_engine(policies, no_match, registry).await else {
        return exit(EXIT_USAGE);
    };
    let uses: Vec<ImageUse> = images
        .iter()
        .map(|i| ImageUse {
            image: i.clone(),
            containers: Vec::new(),
        })
        .collect();
    let verdict = engine
        .decide(&uses, namespace, Instant::now() + timeout)
        .await;
    let no_match = engine.policies().no_match;
    let out = verify_output(&verdict, no_match);
    let code = if out.trusted {
        0
    } else {
        out.result.exit_code().max(1)
    };
    let printed = match output {
        Output::Text => write_text(&render_text(&out)),
        _ => write_structured(output, &out),
    };
    match printed {
        Ok(()) => exit(code),
        Err(e) => {
            eprintln!("signet verify: {e}");
            exit(EXIT_USAGE)
        }
    }
}

fn verify_output(verdict: &Verdict, no_match: NoMatch) -> VerifyOutput<'_> {
    // Refused as a whole (too many images): no image was checked.
    let refused = verdict.images.is_empty() && !verdict.allowed;
    let images: Vec<VerifiedImage<'_>> = verdict
        .images
        .iter()
        .map(|report| VerifiedImage {
            report,
            trust: Trust::of(report, no_match),
            webhook: WebhookAnswer::of(report, no_match),
        })
        .collect();
    let result = if refused {
        Trust::Untrusted
    } else {
        images
            .iter()
            .map(|i| i.trust)
            .max()
            .unwrap_or(Trust::Untrusted)
    };
    // Over the review's budget the whole review is denied, whatever each image's answer.
    let budget_refusal = !verdict.allowed && images.iter().all(|i| i.webhook.allowed);
    VerifyOutput {
        result,
        trusted: result <= Trust::Allowed && !budget_refusal,
        denials: if refused || budget_refusal {
            verdict.denials.clone()
        } else {
            Vec::new()
        },
        images,
    }
}

/// `signet review`: answers each review as the validating route would and prints the
/// answers; exits 1 when any is denied.
async fn review_command(
    files: &[PathBuf],
    policies: &Path,
    namespace: &str,
    no_match: Option<NoMatch>,
    output: Output,
    timeout: Duration,
    registry: RegistryConfig,
) -> ExitCode {
    let Some(reviews) = read_reviews(files, namespace) else {
        return exit(EXIT_USAGE);
    };
    let Some(engine) = offline_engine(policies, no_match, registry).await else {
        return exit(EXIT_USAGE);
    };
    let reviews = &reviews;
    let metrics = Metrics::new();
    let reviewer = Reviewer {
        engine: &engine,
        metrics: &metrics,
        ready: true,
    };
    let mut answers = Vec::with_capacity(reviews.len());
    for review in reviews {
        let start = Instant::now();
        answers.push(
            reviewer
                .answer(Route::Validate, review, start, start + timeout)
                .await,
        );
    }
    let denied = answers.iter().any(|a| a.decision == "denied");
    let printed = match output {
        Output::Text => write_text(&render_reviews(reviews, &answers)),
        _ => {
            let mut responses: Vec<serde_json::Value> =
                answers.iter().map(|a| response_json(&a.response)).collect();
            if responses.len() == 1 {
                write_structured(output, &responses.remove(0))
            } else {
                // Several answers: one document, as kubectl prints several objects.
                write_structured(
                    output,
                    &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": responses}),
                )
            }
        }
    };
    match printed {
        Ok(()) => exit(if denied { EXIT_UNTRUSTED } else { 0 }),
        Err(e) => {
            eprintln!("signet review: {e}");
            exit(EXIT_USAGE)
        }
    }
}

/// A response AdmissionReview as JSON (the server writes it as bytes; it is always JSON).
fn response_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// The reviews in `files` (`-` is standard input), or `None` after printing why not.
fn read_reviews(files: &[PathBuf], namespace: &str) -> Option<Vec<admission::Review>> {
    let mut reviews = Vec::new();
    for file in files {
        let read = read_input(file).and_then(|body| {
            admission::manifest::reviews(&body, namespace).map_err(|source| IoError::Manifest {
                path: file.clone(),
                source,
            })
        });
        match read {
            Ok(mut r) => reviews.append(&mut r),
            Err(e) => {
                eprintln!("signet review: {e}");
                return None;
            }
        }
    }
    if reviews.is_empty() {
        eprintln!("signet review: the input holds no object to review");
        return None;
    }
    Some(reviews)
}

/// `signet review` output for people: one line per object, then its warnings.
fn render_reviews(reviews: &[admission::Review], answers: &[crate::review::Answer]) -> String {
    let mut s = String::new();
    for (review, answer) in reviews.iter().zip(answers) {
        let whole = response_json(&answer.response);
        let response = &whole["response"];
        let label = if answer.decision == "denied" {
            "DENIED  "
        } else {
            "ADMITTED"
        };
        let namespace = review
            .namespace()
            .map(|n| format!("{}/", esc(n)))
            .unwrap_or_default();
        s.push_str(&format!(
            "{label}  {} {namespace}{}",
            esc(&review.kind()),
            esc(review.name())
        ));
        match &review.action {
            admission::Action::Skip(why) => s.push_str(&format!(": {why}")),
            _ => {
                if let Some(m) = response["status"]["message"].as_str() {
                    s.push_str(&format!(": {}", esc(m)));
                }
            }
        }
        s.push('\n');
        for w in response["warnings"].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "    Warning: {}\n",
                esc(w.as_str().unwrap_or_default())
            ));
        }
    }
    s
}

/// `signet policy check`: loads `dir` and lists its policies, or every error in it. A
/// directory that yields no policy at all is an error too: every image would be judged by
/// `noMatch` alone, which is rarely what pointing at it meant.
fn policy_check_command(dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "{}: no such directory (pass the policy directory as --policies DIR)",
            dir.display()
        );
        return exit(EXIT_USAGE);
    }
    // Key Vault references are checked for their syntax and place, not fetched; Secret and
    // ConfigMap references are listed, not read (the cluster is not reached).
    let resolver = policy::material::Resolver::files()
        .key_vault_unfetched()
        .objects_unchecked();
    match policy::load_dir_with(dir, &resolver) {
        Ok(set) if set.policies.is_empty() => {
            eprintln!(
                "{}: no policy found (no ClusterImagePolicy or ImagePolicy in a *.yaml or *.yml \
                 file, no Notation trust policy); every image would get noMatch: {}",
                dir.display(),
                no_match_str(set.no_match)
            );
            exit(EXIT_UNTRUSTED)
        }
        Ok(set) => {
            print_set(dir, &set);
            if !set.missing.is_empty() {
                println!(
                    "Secret and ConfigMap references (an authority whose object is missing in \
                     the cluster trusts nothing; --kubernetes checks them):"
                );
                for m in &set.missing {
                    println!("  {m}");
                }
            }
            exit(0)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            exit(EXIT_UNTRUSTED)
        }
    }
}

/// The policies of a set that loaded, one line each.
fn print_set(dir: &Path, set: &policy::PolicySet) {
    println!(
        "{}: {} polic{} valid; noMatch: {}",
        dir.display(),
        set.policies.len(),
        if set.policies.len() == 1 { "y" } else { "ies" },
        no_match_str(set.no_match)
    );
    for p in &set.policies {
        println!(
            "  {} ({}, {} authorit{}) from {}",
            p.name,
            p.mode.as_str(),
            p.authorities.len(),
            if p.authorities.len() == 1 { "y" } else { "ies" },
            p.source
        );
    }
}

/// `signet policy check --kubernetes`: the directory and the cluster's policy resources,
/// loaded as `signet serve --kubernetes` would (Secrets and ConfigMaps read from the cluster),
/// without writing anything. A reference whose object is missing is an error.
async fn policy_check_cluster(dir: &Path, options: KubeOptions) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "{}: no such directory (pass the policy directory as --policies DIR)",
            dir.display()
        );
        return exit(EXIT_USAGE);
    }
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "--kubernetes: no usable cluster configuration (KUBECONFIG or the in-cluster \
                 config of a pod): {e}"
            );
            return exit(EXIT_USAGE);
        }
    };
    let resolver = policy::material::Resolver::files().key_vault_unfetched();
    let files = source::Directory::new(dir, None).with_resolver(resolver);
    let cluster =
        policy::kube::KubeSource::start_read_only(client, files, options, Arc::new(Metrics::new()));
    // An unanswered list shows as the load's error, naming what is still awaited.
    cluster.wait_synced(Duration::from_secs(10)).await;
    match cluster.load() {
        Ok(set) => {
            print_set(dir, &set);
            if set.missing.is_empty() {
                return exit(0);
            }
            for m in &set.missing {
                eprintln!("{m}");
            }
            eprintln!(
                "{} reference(s) to missing Secrets or ConfigMaps: the authorities that name \
                 them trust nothing",
                set.missing.len()
            );
            exit(EXIT_UNTRUSTED)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{} error(s)", errors.len());
            exit(EXIT_UNTRUSTED)
        }
    }
}

/// `signet completion SHELL`: the completion script on standard output.
fn completion_command(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <crate::cli::Args as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "signet", &mut std::io::stdout());
    exit(0)
}

/// Why a command could not read its input or print its result.
#[derive(Debug, thiserror::Error)]
enum IoError {
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("cannot read standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: admission::manifest::ManifestError,
    },
}

fn write_text(text: &str) -> Result<(), IoError> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(IoError::Write)
}

/// `value` as JSON or YAML on standard output.
fn write_structured<T: serde::Serialize>(output: Output, value: &T) -> Result<(), IoError> {
    let text = match output {
        Output::Yaml => serde_yaml::to_string(value)?,
        _ => {
            let mut t = serde_json::to_string_pretty(value)?;
            t.push('\n');
            t
        }
    };
    write_text(&text)
}

fn read_input(file: &Path) -> Result<Vec<u8>, IoError> {
    let mut body = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(IoError::Stdin)?;
    } else {
        body = std::fs::read(file).map_err(|source| IoError::Read {
            path: file.to_path_buf(),
            source,
        })?;
    }
    Ok(body)
}

async fn offline_engine(
    policies: &Path,
    no_match: Option<NoMatch>,
    mut registry: RegistryConfig,
) -> Option<Engine> {
    if !policies.is_dir() {
        eprintln!(
            "{}: no such directory (pass the policy directory as --policies DIR)",
            policies.display()
        );
        return None;
    }
    let mut dir = source::Directory::new(policies, no_match);
    if registry.azure.is_some() {
        // Key Vault material: one load names what to fetch, one refresh fetches it.
        let store = engine::apply_azure_settings(&mut registry, Some(policies)).and_then(|()| {
            let azure = registry
                .azure
                .as_ref()
                .map(|a| engine::key_vault(a, Arc::new(Metrics::new())));
            azure.transpose()
        });
        match store {
            Ok(Some(store)) => {
                dir = dir.with_resolver(
                    policy::material::Resolver::files().with_key_vault(store.clone()),
                );
                let _ = dir.load();
                store.refresh().await;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e}");
                return None;
            }
        }
    }
    let set = match dir.load() {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return None;
        }
    };
    match engine::build(
        registry,
        set,
        Arc::new(Metrics::new()),
        engine::Options::default(),
    ) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// `signet serve`: runs the webhook until SIGTERM. A development CA goes to a directory this
/// process makes (see `--self-signed-ca-out`), removed again when it stops.
async fn serve_command(
    serve: server::ServeConfig,
    registry: RegistryConfig,
    kubernetes: Option<KubeOptions>,
) -> ExitCode {
    let self_signed = match &serve.tls {
        server::TlsSource::SelfSigned { ca_out } => Some(ca_out.clone()),
        server::TlsSource::Files { .. } => None,
    };
    let mut made_dir = None;
    if let Some(dir) = self_signed.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot make the directory for the development CA");
            return exit(EXIT_USAGE);
        }
        made_dir = Some(dir.to_path_buf());
    }
    let metrics = Arc::new(Metrics::new());
    if let Err(e) = crate::telemetry::dropped_lines_metric().and_then(|m| metrics.register(m)) {
        tracing::warn!(error = %e, "cannot add the metric of dropped log lines");
    }
    // Dropped when this function returns: after the server has stopped.
    let verification = crate::runtime::verification()
        .inspect_err(|error| {
            tracing::warn!(%error, "no runtime of its own for verifying: verifying on the serving one");
        })
        .ok();
    let options = engine::Options {
        verification: verification.as_ref().and_then(|v| v.handle()),
        ..engine::Options::default()
    };
    match engine::serve_with(serve, registry, metrics, options, kubernetes).await {
        Ok(handle) => {
            tracing::info!(webhook = %handle.webhook_addr, admin = %handle.admin_addr, "signet is serving: POST https://{}/validate", handle.webhook_addr);
            if let Some(ca) = self_signed {
                tracing::info!(ca = %ca.display(), "self-signed serving certificate; trust this CA to call the webhook (curl --cacert)");
            }
            handle.wait().await;
            if let Some(dir) = made_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            exit(0)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            if let Some(dir) = made_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            exit(EXIT_USAGE)
        }
    }
}

/// `signet verify` output for people: per image its trust, why, and what the webhook would do.
/// Details quote registries and certificate subjects, so control characters are escaped before
/// they reach a terminal.
fn render_text(out: &VerifyOutput<'_>) -> String {
    let mut s = String::new();
    if out.images.is_empty() {
        s.push_str(&format!("UNTRUSTED  {}\n", esc(&out.denials.join("; "))));
        return s;
    }
    for image in &out.images {
        let r = image.report;
        let name = esc(r.reference.as_deref().unwrap_or(&r.image));
        let digest = r
            .digest
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let label = image.trust.label();
        match &r.status {
            ImageStatus::InvalidReference { detail } => {
                s.push_str(&format!(
                    "{label}  {:?}: not a valid image reference: {}\n",
                    r.image,
                    esc(detail)
                ));
            }
            ImageStatus::NoPolicy { no_match } => {
                s.push_str(&format!(
                    "{label}  {name}: no policy covers this image (noMatch: {})\n",
                    no_match_str(*no_match)
                ));
            }
            ImageStatus::Checked { policies } => {
                s.push_str(&format!("{label}  {name}{digest}\n"));
                for p in policies {
                    render_policy(&mut s, p);
                }
            }
        }
        s.push_str(&format!("    webhook: {}\n", image.webhook.summary));
    }
    if !out.denials.is_empty() {
        s.push_str(&format!(
            "webhook: denied: {}\n",
            esc(&out.denials.join("; "))
        ));
    }
    s
}

fn render_policy(s: &mut String, p: &crate::decision::PolicyResult) {
    match &*p.verdict {
        PolicyVerdict::Trusted { authorities } | PolicyVerdict::Untrusted { authorities, .. } => {
            for a in authorities {
                let line = match &a.result {
                    Outcome::Trusted(e) => {
                        let mut l = format!("trusted: {}", esc(&e.summary));
                        for logged in &e.logged {
                            l.push_str(&format!(" [logged: {}]", esc(logged)));
                        }
                        l
                    }
                    Outcome::Failed(f) => format!("{}: {}", f.reason.describe(), esc(&f.detail)),
                };
                s.push_str(&format!(
                    "    policy {:?} ({}), authority {:?} ({}): {line}\n",
                    p.policy.as_str(),
                    p.mode.as_str(),
                    a.authority,
                    a.verifier.as_str()
                ));
            }
        }
        PolicyVerdict::Undecided { reason, detail } => s.push_str(&format!(
            "    policy {:?} ({}): could not check: {}: {}\n",
            p.policy.as_str(),
            p.mode.as_str(),
            reason.describe(),
            esc(detail)
        )),
    }
}

/// Text from a registry, a signature or a workload, with control characters escaped for the
/// terminal it is printed to.
fn esc(s: &str) -> String {
    crate::telemetry::escape_controls(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reason quoting hostile text (a terminal escape, a line break) prints as one escaped
    /// line per item, with its trust label and what the webhook would do.
    #[test]
    fn verify_text_escapes_what_it_quotes() {
        let report = ImageReport {
            image: "r.io/a:1".into(),
            reference: None,
            digest: None,
            containers: Vec::new(),
            status: ImageStatus::InvalidReference {
                detail: "bad\n\u{1b}[2Jforged".into(),
            },
        };
        let verdict = Verdict {
            allowed: false,
            images: vec![report],
            ..Verdict::default()
        };
        let out = verify_output(&verdict, NoMatch::Deny);
        assert_eq!(out.result, Trust::Untrusted);
        let text = render_text(&out);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert_eq!(
            text,
            "UNTRUSTED  \"r.io/a:1\": not a valid image reference: bad\\n\\u{1b}[2Jforged\n    \
             webhook: denied (invalid reference)\n"
        );
    }
}
