//! The composition root: builds the metrics, registry client, engine and server from a
//! [`Config`], and runs one command.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Output;
use crate::config::{CommandConfig, Config};
use crate::decision::{Engine, ImageReport, ImageStatus, ImageUse, PolicyVerdict};
use crate::metrics::Metrics;
use crate::policy::source::{self, Source};
use crate::policy::{self, NoMatch};
use crate::registry::RegistryConfig;
use crate::review::{Reviewer, Route};
use crate::verify::Outcome;
use crate::{EXIT_UNTRUSTED, EXIT_USAGE, admission, engine, exit, server};

/// Runs one command to completion.
pub async fn run(config: Config) -> ExitCode {
    let Config {
        log_format: _,
        command,
    } = config;
    match command {
        CommandConfig::Serve { serve, registry } => serve_command(*serve, registry).await,
        CommandConfig::Verify {
            images,
            policies,
            namespace,
            no_match,
            output,
            timeout,
            registry,
        } => {
            let Some(engine) = offline_engine(&policies, no_match, registry).await else {
                return exit(EXIT_USAGE);
            };
            verify_command(&engine, &images, namespace.as_deref(), output, timeout).await
        }
        CommandConfig::Review {
            file,
            policies,
            no_match,
            timeout,
            registry,
        } => review_command(&file, &policies, no_match, timeout, registry).await,
        CommandConfig::PolicyCheck { dir } => policy_check_command(&dir),
        CommandConfig::ImportRatify {
            files,
            out_dir,
            mode,
            force,
        } => crate::import::ratify_command(&files, out_dir.as_deref(), mode, force),
    }
}

/// `signet verify`: decides `images` as a review in `namespace` would, prints the verdict and
/// exits non-zero unless every image would be admitted without complaint.
async fn verify_command(
    engine: &Engine,
    images: &[String],
    namespace: Option<&str>,
    output: Output,
    timeout: Duration,
) -> ExitCode {
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
    // Refused as a whole (too many images): no image was checked.
    let refused = verdict.images.is_empty() && !verdict.allowed;
    let ok = !refused && verdict.images.iter().all(|r| admitted_clean(r, no_match));
    let mut out = std::io::stdout().lock();
    let _ = match output {
        Output::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "trusted": ok,
                "images": verdict.images,
                "denials": if refused { verdict.denials.clone() } else { Vec::new() },
            }))
            .unwrap_or_default()
        ),
        Output::Text if refused => {
            writeln!(out, "UNTRUSTED  {}", verdict.denials.join("; "))
        }
        Output::Text => write!(out, "{}", render_text(&verdict.images, no_match)),
    };
    exit(if ok { 0 } else { EXIT_UNTRUSTED })
}

/// `signet review`: answers one AdmissionReview (a file, or `-` for standard input) as the
/// validating route would, and prints the response review.
async fn review_command(
    file: &Path,
    policies: &Path,
    no_match: Option<NoMatch>,
    timeout: Duration,
    registry: RegistryConfig,
) -> ExitCode {
    let review =
        match read_input(file).and_then(|b| admission::decode(&b).map_err(|e| e.to_string())) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("signet review: {e}");
                return exit(EXIT_USAGE);
            }
        };
    let metrics = Metrics::new();
    let Some(engine) = offline_engine(policies, no_match, registry).await else {
        return exit(EXIT_USAGE);
    };
    let reviewer = Reviewer {
        engine: &engine,
        metrics: &metrics,
        ready: true,
    };
    let start = Instant::now();
    let answer = reviewer
        .answer(Route::Validate, &review, start, start + timeout)
        .await;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer.response).unwrap_or_default()
    );
    exit(0)
}

/// `signet policy check`: loads `dir` and lists its policies, or every error in it.
fn policy_check_command(dir: &Path) -> ExitCode {
    // Key Vault references are checked for their syntax and place, not fetched.
    let resolver = policy::material::Resolver::files().key_vault_unfetched();
    match policy::load_dir_with(dir, &resolver) {
        Ok(set) => {
            println!(
                "{}: {} polic{} valid; noMatch: {:?}",
                dir.display(),
                set.policies.len(),
                if set.policies.len() == 1 { "y" } else { "ies" },
                set.no_match
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

/// Whether an image would be admitted without any complaint.
fn admitted_clean(r: &ImageReport, no_match: NoMatch) -> bool {
    match &r.status {
        ImageStatus::NoPolicy { .. } => no_match == NoMatch::Allow,
        _ => r.trusted(),
    }
}

fn read_input(file: &Path) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
    } else {
        body = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    }
    Ok(body)
}

async fn offline_engine(
    policies: &Path,
    no_match: Option<NoMatch>,
    mut registry: RegistryConfig,
) -> Option<Engine> {
    let mut dir = source::Directory::new(policies, no_match);
    if registry.azure.is_some() {
        // Key Vault material: one load names what to fetch, one refresh fetches it.
        let store = engine::apply_azure_settings(&mut registry, policies).and_then(|()| {
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

async fn serve_command(serve: server::ServeConfig, registry: RegistryConfig) -> ExitCode {
    let self_signed = match &serve.tls {
        server::TlsSource::SelfSigned { ca_out } => Some(ca_out.clone()),
        server::TlsSource::Files { .. } => None,
    };
    let metrics = Arc::new(Metrics::new());
    match engine::serve(serve, registry, metrics, engine::Options::default()).await {
        Ok(handle) => {
            tracing::info!(webhook = %handle.webhook_addr, admin = %handle.admin_addr, "signet is serving: POST https://{}/validate", handle.webhook_addr);
            if let Some(ca) = self_signed {
                tracing::info!(ca = %ca.display(), "self-signed serving certificate; trust this CA to call the webhook (curl --cacert)");
            }
            handle.wait().await;
            exit(0)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            exit(EXIT_USAGE)
        }
    }
}

/// `signet verify` output for people.
fn render_text(images: &[ImageReport], no_match: NoMatch) -> String {
    let mut s = String::new();
    for r in images {
        let name = r.reference.as_deref().unwrap_or(&r.image);
        let digest = r
            .digest
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        match &r.status {
            ImageStatus::InvalidReference { detail } => {
                s.push_str(&format!(
                    "UNTRUSTED  {:?}: not a valid image reference: {detail}\n",
                    r.image
                ));
            }
            ImageStatus::NoPolicy { .. } => {
                let verdict = if no_match == NoMatch::Allow {
                    "ALLOWED  "
                } else {
                    "UNTRUSTED"
                };
                s.push_str(&format!(
                    "{verdict}  {name}: no policy covers this image (noMatch: {no_match:?})\n"
                ));
            }
            ImageStatus::Checked { policies } => {
                let verdict = if r.trusted() {
                    "TRUSTED  "
                } else {
                    "UNTRUSTED"
                };
                s.push_str(&format!("{verdict}  {name}{digest}\n"));
                for p in policies {
                    match &p.verdict {
                        PolicyVerdict::Trusted { authorities }
                        | PolicyVerdict::Untrusted { authorities, .. } => {
                            for a in authorities {
                                let line = match &a.result {
                                    Outcome::Trusted(e) => {
                                        let mut l = format!("trusted: {}", e.summary);
                                        for logged in &e.logged {
                                            l.push_str(&format!(" [logged: {logged}]"));
                                        }
                                        l
                                    }
                                    Outcome::Failed(f) => {
                                        format!("{}: {}", f.reason.describe(), f.detail)
                                    }
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
                            "    policy {:?} ({}): could not verify: {}: {detail}\n",
                            p.policy.as_str(),
                            p.mode.as_str(),
                            reason.describe()
                        )),
                    }
                }
            }
        }
    }
    s
}
