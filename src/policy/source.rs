//! Where policies come from, and how a change reaches the engine.
//!
//! A [`Source`] loads a whole [`PolicySet`] and says cheaply whether it may have changed (its
//! fingerprint). [`spawn_watch`] polls a source and hands every set that loads to the caller's
//! `apply`; a set that fails to load keeps the last good one in force and is logged and
//! counted. [`Readiness`] records whether a valid set was ever loaded: without one signet is
//! not ready and denies every image it is asked about, never "allow all".
//!
//! A policy directory is the source today ([`Directory`]); the Kubernetes API and secret stores
//! are further sources with the same contract. Must not import `decision`, `registry`,
//! `verify` or `server`: the caller decides what applying a set means.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::material::Resolver;
use super::{LoadError, NoMatch, PolicySet, load_dir_with};
use crate::metrics::Metrics;

/// Somewhere policies are read from.
pub trait Source: Send + Sync + 'static {
    /// For logs: what is being read (`directory policies/`).
    fn describe(&self) -> String;
    /// A cheap summary of the content; when it changes, the set is loaded again.
    fn fingerprint(&self) -> Vec<u8>;
    /// Loads the whole set, or says precisely what is wrong (file, line, field).
    fn load(&self) -> Result<PolicySet, Vec<LoadError>>;
    /// Woken when the content may have changed, for sources that are told (a watch) rather
    /// than polled: the watcher then compares fingerprints at once instead of at its next poll.
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

impl<S: Source + ?Sized> Source for Arc<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn fingerprint(&self) -> Vec<u8> {
        (**self).fingerprint()
    }
    fn load(&self) -> Result<PolicySet, Vec<LoadError>> {
        (**self).load()
    }
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        (**self).wake()
    }
}

/// Policy files in a directory (a mounted ConfigMap, or a checkout), with the command line's
/// `--no-match` applied over the directory's own setting.
pub struct Directory {
    dir: PathBuf,
    no_match: Option<NoMatch>,
    resolver: Resolver,
}

impl Directory {
    pub fn new(dir: impl Into<PathBuf>, no_match: Option<NoMatch>) -> Self {
        Directory {
            dir: dir.into(),
            no_match,
            resolver: Resolver::files(),
        }
    }

    /// The resolver of the policies' trust material.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Resolves the policies' trust material with `resolver` instead of files alone.
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }
}

impl Source for Directory {
    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }

    fn fingerprint(&self) -> Vec<u8> {
        let mut f = fingerprint(&self.dir);
        f.extend_from_slice(&self.resolver.version().to_be_bytes());
        f
    }

    fn load(&self) -> Result<PolicySet, Vec<LoadError>> {
        let mut set = load_dir_with(&self.dir, &self.resolver)?;
        if let Some(n) = self.no_match {
            set.no_match = n;
        }
        Ok(set)
    }
}

/// Whether a valid policy set has been loaded. Shared by the watcher (which sets it) and the
/// server (readiness probe, and the denial of reviews while there is none).
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn new(valid: bool) -> Self {
        Readiness(AtomicBool::new(valid))
    }

    pub fn valid(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set_valid(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Loads `source` once, at start-up: the set and whether it is valid (an invalid one yields an
/// empty set and "not ready"). Logged and counted like every later load.
pub fn load_initial(source: &dyn Source, metrics: &Metrics) -> (PolicySet, bool) {
    match source.load() {
        Ok(set) => {
            metrics.policy_reloads.with_label_values(&["success"]).inc();
            tracing::info!(policies = set.policies.len(), source = %source.describe(), "policies loaded");
            log_missing(&set);
            (set, true)
        }
        Err(errors) => {
            metrics.policy_reloads.with_label_values(&["failure"]).inc();
            for e in &errors {
                tracing::error!(error = %e, "invalid policy; not ready until the policies are fixed");
            }
            (PolicySet::default(), false)
        }
    }
}

/// Polls `source` every `every`, and at once when the source wakes it; each set that loads
/// after a change goes to `apply` and makes `readiness` valid. A set that fails keeps the
/// previous one (logged, counted as a failure). The baseline fingerprint is taken here, before
/// the task starts, so that a change arriving while the task is being scheduled still counts
/// as a change (the caller has just loaded the set it describes).
pub fn spawn_watch<S, F>(
    source: S,
    every: Duration,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    apply: F,
) -> tokio::task::JoinHandle<()>
where
    S: Source,
    F: Fn(PolicySet) + Send + 'static,
{
    let source = Arc::new(source);
    let mut last = source.fingerprint();
    tokio::spawn(async move {
        let wake = source.wake();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            match &wake {
                Some(wake) => tokio::select! {
                    _ = tick.tick() => {}
                    _ = wake.notified() => {}
                },
                None => {
                    tick.tick().await;
                }
            }
            let Ok(now) = off_workers(&source, S::fingerprint).await else {
                continue;
            };
            if now == last {
                continue;
            }
            last = now;
            let Ok(loaded) = off_workers(&source, S::load).await else {
                continue;
            };
            match loaded {
                Ok(set) => {
                    log_missing(&set);
                    let count = set.policies.len();
                    let started = std::time::Instant::now();
                    apply(set);
                    readiness.set_valid();
                    metrics.policy_reloads.with_label_values(&["success"]).inc();
                    tracing::info!(
                        policies = count,
                        source = %source.describe(),
                        apply_ms = started.elapsed().as_secs_f64() * 1000.0,
                        "policies reloaded"
                    );
                }
                Err(errors) => {
                    metrics.policy_reloads.with_label_values(&["failure"]).inc();
                    for e in &errors {
                        tracing::error!(error = %e, "policy reload rejected; keeping the previous policies");
                    }
                }
            }
        }
    })
}

/// Logs each Secret or ConfigMap reference of `set` whose object does not exist, with where
/// it is named (`file:line`, or the resource) and the object. Such a set loads: the policy is
/// enforced without the authorities that need the material, so its images fail closed.
fn log_missing(set: &PolicySet) {
    for m in &set.missing {
        tracing::error!(
            at = %m.at,
            error = %m.message,
            "a policy names trust material that does not exist; the authorities that need it trust nothing until it does"
        );
    }
}

/// Runs `read` on `source` on the blocking pool: reading and parsing files blocks, and the
/// async workers answer reviews. `Err` only when the runtime is shutting down.
async fn off_workers<S: Source, T: Send + 'static>(
    source: &Arc<S>,
    read: fn(&S) -> T,
) -> Result<T, tokio::task::JoinError> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || read(&source)).await
}

/// A cheap summary of a directory's contents: the names and SHA-256 of every file below it
/// (hidden ones aside), following the symlinks a mounted ConfigMap swaps atomically. Polling
/// and comparing catches those swaps, which change notifications can miss.
fn fingerprint(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if p.is_dir() && !hidden {
                stack.push(p);
            } else if p.is_file() && !hidden {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files {
        out.extend_from_slice(f.to_string_lossy().as_bytes());
        if let Ok(bytes) = std::fs::read(&f) {
            out.extend_from_slice(crate::image::Digest::sha256_of(&bytes).as_str().as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str =
        "apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  noMatch: warn\n";

    #[test]
    fn a_directory_source_applies_the_command_line_no_match_and_fingerprints_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("settings.yaml"), POLICY).unwrap();
        let plain = Directory::new(dir.path(), None);
        assert_eq!(plain.load().unwrap().no_match, NoMatch::Warn);
        let overridden = Directory::new(dir.path(), Some(NoMatch::Deny));
        assert_eq!(overridden.load().unwrap().no_match, NoMatch::Deny);
        let before = plain.fingerprint();
        assert_eq!(before, plain.fingerprint(), "stable while nothing changes");
        std::fs::write(
            dir.path().join("settings.yaml"),
            POLICY.replace("warn", "allow"),
        )
        .unwrap();
        assert_ne!(before, plain.fingerprint(), "a content change is seen");
    }

    #[tokio::test]
    async fn the_watcher_applies_good_sets_and_keeps_the_last_one_through_a_bad_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.yaml");
        std::fs::write(&file, POLICY).unwrap();
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = spawn_watch(
            Directory::new(dir.path(), None),
            Duration::from_millis(20),
            readiness.clone(),
            metrics.clone(),
            move |set| {
                let _ = tx.send(set.no_match);
            },
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(&file, "kind: [broken").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!readiness.valid(), "a broken set never makes signet ready");
        assert!(rx.try_recv().is_err(), "a broken set is not applied");
        std::fs::write(&file, POLICY.replace("warn", "allow")).unwrap();
        let applied = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert_eq!(applied, Some(NoMatch::Allow));
        assert!(readiness.valid());
        let text = metrics.encode();
        assert!(
            text.contains("signet_policy_reloads_total{result=\"failure\"} 1"),
            "{text}"
        );
        task.abort();
    }
}
