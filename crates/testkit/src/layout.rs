//! Pushes OCI image layouts (the Notation conformance data in the shared `conformance/notation/`
//! directory) to a test registry: blobs, then subject manifests (tagged as in `index.json`),
//! then signature manifests, then the `sha256-<hex>` referrers index rebuilt from their
//! `subject` fields (the layouts' own referrers indexes can be stale, so they are not pushed).
//!
//! The conformance data is read in place, never copied into the project; tests skip with a
//! message when it is absent.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::oci::{OCI_INDEX, OCI_MANIFEST, PushedImage, Pusher, sha256_digest};

/// Overrides where `conformance/` is looked for.
pub const CONFORMANCE_ENV: &str = "SIGNET_CONFORMANCE_DIR";

/// The shared `conformance/` directory: `$SIGNET_CONFORMANCE_DIR`, else the first
/// `shared/conformance` in an ancestor of this crate (`../shared` beside the signet checkout).
/// `None` when absent.
pub fn conformance_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CONFORMANCE_ENV) {
        let dir = PathBuf::from(dir);
        return dir.is_dir().then_some(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/conformance"))
        .find(|dir| dir.is_dir())
}

/// `conformance/notation/layouts/<name>`, or `None` after printing why the caller should skip:
/// `let Some(dir) = notation_layout("e2e-valid-signature") else { return };`
pub fn notation_layout(name: &str) -> Option<PathBuf> {
    let found = conformance_dir()
        .map(|dir| dir.join("notation/layouts").join(name))
        .filter(|dir| dir.join("index.json").is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: Notation conformance layout {name} not found (set {CONFORMANCE_ENV} to the \
             shared conformance/ directory)"
        );
    }
    found
}

/// What [`push_oci_layout`] pushed.
#[derive(Clone, Debug)]
pub struct PushedLayout {
    pub repo: String,
    /// Manifests without `subject` (the signed artifacts), in `index.json` order.
    pub subjects: Vec<PushedImage>,
    /// Digests of manifests with `subject` (signatures), in `index.json` order.
    pub referrers: Vec<String>,
}

impl PushedLayout {
    /// The subject tagged `tag` (`ref.name` in `index.json`).
    pub fn subject(&self, tag: &str) -> &PushedImage {
        self.subjects
            .iter()
            .find(|s| s.tag.as_deref() == Some(tag))
            .unwrap_or_else(|| panic!("no subject tagged {tag} in layout"))
    }
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Pushes the OCI layout at `dir` into `repo` (see the module docs for the order).
pub async fn push_oci_layout(pusher: &Pusher, repo: &str, dir: &Path) -> PushedLayout {
    let index: Value = read_json(&dir.join("index.json"));
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let mut subjects = Vec::new();
    let mut referrer_manifests = Vec::new();
    for entry in &entries {
        let tag = entry["annotations"][REF_NAME].as_str();
        // A referrers tag schema index: rebuilt below from the referrers' `subject` fields.
        if tag.is_some_and(|t| t.starts_with("sha256-")) {
            continue;
        }
        let digest = entry["digest"].as_str().expect("index entry digest");
        let bytes = read_blob(dir, digest);
        let manifest: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
        if manifest.get("subject").is_some() {
            referrer_manifests.push(bytes);
            continue;
        }
        let media_type = entry["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
        push_tree(pusher, repo, dir, media_type, &bytes).await;
        if let Some(tag) = tag {
            pusher.push_manifest(repo, tag, media_type, &bytes).await;
        }
        subjects.push(PushedImage {
            repo: repo.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.to_owned(),
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            manifest: bytes,
            platform: None,
            children: Vec::new(),
        });
    }
    let mut referrers = Vec::new();
    for bytes in referrer_manifests {
        push_blobs_of(
            pusher,
            repo,
            dir,
            &serde_json::from_slice(&bytes).expect("JSON"),
        )
        .await;
        referrers.push(pusher.push_referrer_manifest(repo, &bytes).await);
    }
    PushedLayout {
        repo: repo.to_owned(),
        subjects,
        referrers,
    }
}

/// Pushes a manifest's blobs, or an index's children (recursively), then the manifest itself
/// by digest.
async fn push_tree(pusher: &Pusher, repo: &str, dir: &Path, media_type: &str, bytes: &[u8]) {
    let manifest: Value = serde_json::from_slice(bytes).expect("manifest JSON");
    if media_type == OCI_INDEX || manifest.get("manifests").is_some() {
        for child in manifest["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let digest = child["digest"].as_str().expect("child digest");
            let child_bytes = read_blob(dir, digest);
            let child_type = child["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
            Box::pin(push_tree(pusher, repo, dir, child_type, &child_bytes)).await;
        }
    } else {
        push_blobs_of(pusher, repo, dir, &manifest).await;
    }
    let digest = sha256_digest(bytes);
    pusher.push_manifest(repo, &digest, media_type, bytes).await;
}

async fn push_blobs_of(pusher: &Pusher, repo: &str, dir: &Path, manifest: &Value) {
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    for descriptor in std::iter::once(&manifest["config"]).chain(layers.iter()) {
        if let Some(digest) = descriptor["digest"].as_str() {
            pusher.push_blob(repo, &read_blob(dir, digest)).await;
        }
    }
}

fn read_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let (algorithm, hex) = digest.split_once(':').expect("digest has an algorithm");
    let path = dir.join("blobs").join(algorithm).join(hex);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|err| panic!("read blob {}: {err}", path.display()));
    assert_eq!(
        sha256_digest(&bytes),
        digest,
        "blob {} is corrupt",
        path.display()
    );
    bytes
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("parse {}: {err}", path.display()))
}
