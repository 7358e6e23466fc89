//! Loading policies from YAML: one directory, any number of files, any number of documents per
//! file. Every error names the file, the line and the field; all errors are collected, so one
//! run of `signet policy check` shows them all.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cosign::{CosignAuthority, CosignSpec};
use super::material::{Context, Resolver};
use super::notation::{NotationAuthority, NotationSpec};
use super::{
    Authority, ImageGlob, Mode, NoMatch, OnError, PlatformSignatures, Policy, PolicyName,
    PolicySet, Verifier,
};
use crate::image::Digest;

const API_VERSION: &str = "signet.dev/v1alpha1";
const KINDS: &str = "ClusterImagePolicy, ImagePolicy, SignetConfig";

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is with the file as a whole.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for LoadError {}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: PolicySpec,
}

/// Kubernetes object metadata: only name and namespace matter; other fields (labels, or those a
/// cluster adds when a policy is exported) are accepted and ignored.
#[derive(serde::Deserialize, serde::Serialize)]
struct Metadata {
    name: String,
    namespace: Option<String>,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    images: Vec<ImageGlob>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    on_error: OnError,
    #[serde(default, skip_serializing_if = "is_default")]
    platform_signatures: PlatformSignatures,
    #[serde(default, skip_serializing_if = "is_default")]
    require_digest: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pin_templates: bool,
    authorities: Vec<AuthoritySpec>,
}

/// Leaves an unset option out of the generation hash, so adding the option did not change the
/// generation (and cache keys) of existing policies.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct AuthoritySpec {
    name: String,
    cosign: Option<CosignSpec>,
    notation: Option<NotationSpec>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigDoc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    metadata: Option<Metadata>,
    spec: ConfigSpec,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigSpec {
    #[serde(default)]
    no_match: NoMatch,
    #[serde(default)]
    expiry_warning_days: Option<u32>,
    /// The Azure identity for Key Vault and ACR (read at start-up, see `policy::keyvault`).
    #[serde(default)]
    azure: Option<super::keyvault::AzureSettings>,
}

/// The longest expiry-warning window accepted: ten years is already "always".
const MAX_EXPIRY_WARNING_DAYS: u32 = 3650;

impl<'de> serde::Deserialize<'de> for ImageGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ImageGlob::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for ImageGlob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir` (hidden entries, such as the `..data`
/// links of a mounted ConfigMap, are skipped; subdirectories may hold key files). Files are read
/// in name order, so the result does not depend on the file system.
pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<LoadError>> {
    load_dir_with(dir, &Resolver::files())
}

/// [`load_dir`], with trust material resolved by `resolver`.
pub fn load_dir_with(dir: &Path, resolver: &Resolver) -> Result<PolicySet, Vec<LoadError>> {
    let whole = |message: String| {
        vec![LoadError {
            file: dir.to_path_buf(),
            line: None,
            message,
        }]
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| whole(format!("cannot read directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && p.is_file()
        })
        .collect();
    files.sort();
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push((file, text)),
            Err(e) => errors.push(LoadError {
                file,
                line: None,
                message: format!("cannot read file: {e}"),
            }),
        }
    }
    let borrowed: Vec<(&Path, &str)> = sources
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let notation = dir.join(NOTATION_TRUST_POLICY);
    let imported = if notation.is_file() {
        match std::fs::read_to_string(&notation) {
            Ok(text) => match import_notation(&notation, &text) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    Vec::new()
                }
            },
            Err(e) => {
                errors.push(LoadError {
                    file: notation.clone(),
                    line: None,
                    message: format!("cannot read file: {e}"),
                });
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let result = load_sources(&borrowed, resolver).and_then(|mut set| {
        for p in imported {
            if set.policies.iter().any(|q| q.name == p.name) {
                return Err(vec![LoadError {
                    file: notation.clone(),
                    line: None,
                    message: format!("duplicate policy name {:?}", p.name.as_str()),
                }]);
            }
            set.policies.push(Arc::new(p));
        }
        Ok(set)
    });
    match result {
        Ok(set) if errors.is_empty() => Ok(set),
        Ok(_) => Err(errors),
        Err(mut more) => {
            errors.append(&mut more);
            Err(errors)
        }
    }
}

/// Loads policies from one YAML text (for tests and `signet review` with inline policies);
/// `file` is used in messages and as the base for relative key paths.
pub fn load_str(file: &Path, text: &str) -> Result<PolicySet, Vec<LoadError>> {
    load_sources(&[(file, text)], &Resolver::files())
}

fn load_sources(
    sources: &[(&Path, &str)],
    resolver: &Resolver,
) -> Result<PolicySet, Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut policies: BTreeMap<PolicyName, Arc<Policy>> = BTreeMap::new();
    let mut settings: Option<(ConfigSpec, String)> = None;
    for (file, text) in sources {
        let base = file.parent().unwrap_or(Path::new("."));
        for (first_line, doc) in split_documents(text) {
            let err = |line: Option<usize>, message: String| LoadError {
                file: file.to_path_buf(),
                line: line.map(|l| l + first_line + 1),
                message,
            };
            if doc
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            let header: Header = match serde_yaml::from_str(doc) {
                Ok(h) => h,
                Err(e) => {
                    errors.push(err(yaml_line(&e), yaml_message(&e)));
                    continue;
                }
            };
            match header.api_version.as_deref() {
                Some(API_VERSION) => {}
                Some(other) => {
                    errors.push(err(
                        locate(doc, "apiVersion"),
                        format!("apiVersion {other:?} is not supported (expected {API_VERSION})"),
                    ));
                    continue;
                }
                None => {
                    errors.push(err(
                        Some(0),
                        format!("missing apiVersion (expected {API_VERSION})"),
                    ));
                    continue;
                }
            }
            match header.kind.as_deref() {
                Some("ClusterImagePolicy") | Some("ImagePolicy") => {
                    match load_policy(doc, base, file, resolver) {
                        Ok(policy) => {
                            if let Some(prev) = policies.get(&policy.name) {
                                errors.push(err(
                                    locate(doc, "name"),
                                    format!(
                                        "duplicate policy name {:?} (also defined at {})",
                                        policy.name.as_str(),
                                        prev.source
                                    ),
                                ));
                            } else {
                                let mut policy = policy;
                                policy.source = format!("{}:{}", file.display(), first_line + 1);
                                policies.insert(policy.name.clone(), Arc::new(policy));
                            }
                        }
                        Err((line, message)) => errors.push(err(line, message)),
                    }
                }
                Some("SignetConfig") => match serde_yaml::from_str::<ConfigDoc>(doc) {
                    Ok(c) => {
                        let here = format!("{}:{}", file.display(), first_line + 1);
                        if let Some((_, prev)) = &settings {
                            errors.push(err(
                                Some(0),
                                format!("a second SignetConfig (the first is at {prev})"),
                            ));
                        } else if c
                            .spec
                            .expiry_warning_days
                            .is_some_and(|d| d > MAX_EXPIRY_WARNING_DAYS)
                        {
                            errors.push(err(
                                locate(doc, "expiryWarningDays"),
                                format!(
                                    "spec.expiryWarningDays is at most {MAX_EXPIRY_WARNING_DAYS} (0 turns the warnings off)"
                                ),
                            ));
                        } else if let Some(Err(m)) = c.spec.azure.as_ref().map(|a| a.validate()) {
                            errors.push(err(locate(doc, "azure"), m));
                        } else {
                            settings = Some((c.spec, here));
                        }
                    }
                    Err(e) => errors.push(err(yaml_line(&e), yaml_message(&e))),
                },
                Some(other) => errors.push(err(
                    locate(doc, "kind"),
                    format!("kind {other:?} is not one of {KINDS}"),
                )),
                None => errors.push(err(Some(0), format!("missing kind (one of {KINDS})"))),
            }
        }
    }
    if errors.is_empty() {
        let settings = settings.map(|(s, _)| s);
        Ok(PolicySet {
            policies: policies.into_values().collect(),
            no_match: settings.as_ref().map(|s| s.no_match).unwrap_or_default(),
            expiry_warning_days: settings.and_then(|s| s.expiry_warning_days),
        })
    } else {
        Err(errors)
    }
}

type DocError = (Option<usize>, String);

fn load_policy(
    doc: &str,
    base: &Path,
    file: &Path,
    resolver: &Resolver,
) -> Result<Policy, DocError> {
    let parsed: PolicyDoc =
        serde_yaml::from_str(doc).map_err(|e| (yaml_line(&e), yaml_message(&e)))?;
    let PolicyDoc {
        api_version: _,
        kind,
        metadata,
        spec,
    } = &parsed;
    if metadata.name.is_empty() {
        return Err((locate(doc, "name"), "metadata.name is empty".into()));
    }
    let namespace = match (kind.as_str(), &metadata.namespace) {
        ("ImagePolicy", None) => {
            return Err((
                locate(doc, "metadata"),
                "an ImagePolicy needs metadata.namespace (it applies in that namespace only)"
                    .into(),
            ));
        }
        ("ImagePolicy", Some(ns)) => Some(ns.clone()),
        _ => None,
    };
    let name = match &namespace {
        Some(ns) => PolicyName(format!("{ns}/{}", metadata.name)),
        None => PolicyName(metadata.name.clone()),
    };
    if spec.images.is_empty() {
        return Err((
            locate(doc, "images"),
            "spec.images is empty: list at least one glob".into(),
        ));
    }
    if spec.authorities.is_empty() {
        return Err((
            locate(doc, "authorities"),
            "spec.authorities is empty: list at least one cosign or notation authority".into(),
        ));
    }
    let cx = Context {
        base: Some(base),
        namespace: namespace.as_deref(),
    };
    let mut material =
        serde_json::to_vec(&parsed).map_err(|e| (None, format!("cannot hash the policy: {e}")))?;
    let mut authorities = Vec::with_capacity(spec.authorities.len());
    let mut seen = std::collections::HashSet::new();
    for a in &spec.authorities {
        let at = locate_after(doc, "name", &a.name);
        if !seen.insert(a.name.as_str()) {
            return Err((at, format!("duplicate authority name {:?}", a.name)));
        }
        let verifier = match (&a.cosign, &a.notation) {
            (Some(c), None) => {
                let (auth, bytes) = CosignAuthority::load(c, resolver, &cx)
                    .map_err(|m| (at, format!("authority {:?}: {m}", a.name)))?;
                material.extend_from_slice(&bytes);
                Verifier::Cosign(auth)
            }
            (None, Some(n)) => {
                let (auth, bytes) = NotationAuthority::load(n, resolver, &cx)
                    .map_err(|m| (at, format!("authority {:?}: {m}", a.name)))?;
                material.extend_from_slice(&bytes);
                Verifier::Notation(Box::new(auth))
            }
            (Some(_), Some(_)) => {
                return Err((
                    at,
                    format!(
                        "authority {:?} has both cosign and notation: use two authorities",
                        a.name
                    ),
                ));
            }
            (None, None) => {
                return Err((
                    at,
                    format!("authority {:?} needs cosign or notation", a.name),
                ));
            }
        };
        authorities.push(Authority {
            name: a.name.clone(),
            verifier,
        });
    }
    Ok(Policy {
        name,
        namespace,
        images: spec.images.clone(),
        mode: spec.mode,
        on_error: spec.on_error,
        platform_signatures: spec.platform_signatures,
        require_digest: spec.require_digest,
        pin_templates: spec.pin_templates,
        authorities,
        generation: Digest::sha256_of(&material).hex()[..16].to_string(),
        source: file.display().to_string(),
        scope: super::Scope::Glob,
    })
}

/// The file name of a Notation trust policy in a policy directory, and the trust-store
/// directory beside it (Notation's own layout: `trustpolicy.json` and `truststore/x509/...`).
pub const NOTATION_TRUST_POLICY: &str = "trustpolicy.json";
const NOTATION_TRUST_STORE: &str = "truststore";

/// Turns a Notation `trustpolicy.json` into policies, one per statement: enforcing, failing
/// closed, scoped as Notation scopes them.
fn import_notation(file: &Path, text: &str) -> Result<Vec<Policy>, LoadError> {
    let err = |message: String| LoadError {
        file: file.to_path_buf(),
        line: None,
        message,
    };
    let root = file
        .parent()
        .unwrap_or(Path::new("."))
        .join(NOTATION_TRUST_STORE);
    let statements = super::notation::import_trust_policy(text, &root).map_err(err)?;
    let mut policies = Vec::with_capacity(statements.len());
    for st in statements {
        let (images, scope) = match &st.registry_scopes {
            super::notation::RegistryScopes::Global => {
                (vec!["**".to_string()], super::Scope::NotationGlobal)
            }
            super::notation::RegistryScopes::Repositories(r) => {
                (r.clone(), super::Scope::NotationExact)
            }
        };
        let images = images
            .iter()
            .map(|i| ImageGlob::parse(i).map_err(|e| err(format!("statement {:?}: {e}", st.name))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut material = text.as_bytes().to_vec();
        material.extend_from_slice(st.name.as_bytes());
        for store in &st.authority.trust_stores {
            for c in &store.certificates {
                material.extend_from_slice(&c.der);
            }
        }
        policies.push(Policy {
            name: PolicyName(format!("notation:{}", st.name)),
            namespace: None,
            images,
            mode: Mode::Enforce,
            on_error: OnError::Deny,
            // Notation's trust policy has no such notion: signatures count where they are.
            platform_signatures: PlatformSignatures::Ignore,
            require_digest: false,
            pin_templates: false,
            authorities: vec![Authority {
                name: st.name.clone(),
                verifier: Verifier::Notation(Box::new(st.authority)),
            }],
            generation: Digest::sha256_of(&material).hex()[..16].to_string(),
            source: file.display().to_string(),
            scope,
        });
    }
    Ok(policies)
}

/// Splits a multi-document YAML text on `---` lines; yields (0-based first line, text).
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 1;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs
}

fn yaml_line(e: &serde_yaml::Error) -> Option<usize> {
    e.location().map(|l| l.line().saturating_sub(1))
}

/// serde's message without the location serde_norway appends (we print our own).
fn yaml_message(e: &serde_yaml::Error) -> String {
    let m = e.to_string();
    match m.find(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
}

/// The 0-based line of the first `key:` in `doc`, for errors found after parsing.
fn locate(doc: &str, key: &str) -> Option<usize> {
    let pat = format!("{key}:");
    doc.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ");
        t.starts_with(&pat)
    })
}

/// The 0-based line of `key: value`.
fn locate_after(doc: &str, key: &str, value: &str) -> Option<usize> {
    doc.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ");
        t.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|r| r.trim().trim_matches('"').trim_matches('\'') == value)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_pem() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .public_key_pem()
    }

    fn policy_yaml(extra_spec: &str) -> String {
        let key = key_pem().replace('\n', "\n              ");
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: prod\nspec:\n  images: [\"registry.example.com/prod/**\"]\n{extra_spec}  authorities:\n    - name: ci\n      cosign:\n        keys:\n          - inline: |\n              {key}\n"
        )
    }

    fn errors(text: &str) -> Vec<String> {
        load_str(Path::new("p.yaml"), text)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn loads_a_valid_policy_with_defaults() {
        let set = load_str(Path::new("p.yaml"), &policy_yaml("")).unwrap();
        assert_eq!(set.policies.len(), 1);
        let p = &set.policies[0];
        assert_eq!(p.name.as_str(), "prod");
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.on_error, OnError::Deny);
        assert_eq!(set.no_match, NoMatch::Deny);
        assert_eq!(p.generation.len(), 16);
    }

    #[test]
    fn generation_changes_with_the_spec() {
        let a = load_str(Path::new("p.yaml"), &policy_yaml("")).unwrap();
        let b = load_str(Path::new("p.yaml"), &policy_yaml("  mode: warn\n")).unwrap();
        assert_ne!(a.policies[0].generation, b.policies[0].generation);
    }

    #[test]
    fn platform_signatures_option() {
        let a = load_str(Path::new("p.yaml"), &policy_yaml("")).unwrap();
        assert_eq!(
            a.policies[0].platform_signatures,
            PlatformSignatures::Ignore
        );
        let b = load_str(
            Path::new("p.yaml"),
            &policy_yaml("  platformSignatures: accept\n"),
        )
        .unwrap();
        assert_eq!(
            b.policies[0].platform_signatures,
            PlatformSignatures::Accept
        );
        assert_ne!(a.policies[0].generation, b.policies[0].generation);
        let c = load_str(
            Path::new("p.yaml"),
            &policy_yaml("  platformSignatures: ignore\n"),
        )
        .unwrap();
        assert_eq!(
            c.policies[0].platform_signatures,
            PlatformSignatures::Ignore
        );
        let errs = errors(&policy_yaml("  platformSignatures: sometimes\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn require_digest_option() {
        let a = load_str(Path::new("p.yaml"), &policy_yaml("")).unwrap();
        assert!(!a.policies[0].require_digest);
        let b = load_str(Path::new("p.yaml"), &policy_yaml("  requireDigest: true\n")).unwrap();
        assert!(b.policies[0].require_digest);
        // Turning it on changes the generation, so cached verdicts of the old policy are not
        // reused.
        assert_ne!(a.policies[0].generation, b.policies[0].generation);
        let c = load_str(
            Path::new("p.yaml"),
            &policy_yaml("  requireDigest: false\n"),
        )
        .unwrap();
        assert!(!c.policies[0].require_digest);
        let errs = errors(&policy_yaml("  requireDigest: sometimes\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn a_misspelt_key_field_is_an_error_naming_it() {
        let text = policy_yaml("").replace("- inline: |", "- inlnie: x\n            inline: |");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0]
                .contains("cosign.keys[0]: unknown field `inlnie`, expected one of inline, file"),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let errs = errors(&policy_yaml("  moed: warn\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("p.yaml:7: "), "{errs:?}");
        assert!(errs[0].contains("unknown field `moed`"), "{errs:?}");
    }

    #[test]
    fn bad_enum_and_bad_glob_are_located() {
        let errs = errors(&policy_yaml("  mode: block\n"));
        assert!(errs[0].starts_with("p.yaml:7: "), "{errs:?}");
        assert!(errs[0].contains("unknown variant `block`"), "{errs:?}");
        let text = policy_yaml("").replace("prod/**", "prod/app:1");
        let errs = errors(&text);
        assert!(errs[0].starts_with("p.yaml:6: "), "{errs:?}");
        assert!(errs[0].contains("names a tag or digest"), "{errs:?}");
    }

    #[test]
    fn a_private_key_is_rejected_with_the_authority_line() {
        let private = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        let text = policy_yaml("").replace(&key_pem()[..0], "");
        // Replace the public key block with a private key.
        let start = text.find("-----BEGIN").unwrap();
        let indented = private.replace('\n', "\n              ");
        let text = format!("{}{}\n", &text[..start], indented);
        let errs = errors(&text);
        assert!(errs[0].starts_with("p.yaml:8: "), "{errs:?}");
        assert!(errs[0].contains("private key"), "{errs:?}");
    }

    #[test]
    fn several_documents_and_errors_in_later_ones() {
        let config =
            "apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  noMatch: allow\n";
        let text = format!("{config}---\n{}", policy_yaml("  onError: sometimes\n"));
        let errs = errors(&text);
        // The policy document starts on line 6; its `onError` is its 7th line.
        assert!(errs[0].starts_with("p.yaml:12: "), "{errs:?}");
        let ok = format!("{config}---\n{}", policy_yaml(""));
        let set = load_str(Path::new("p.yaml"), &ok).unwrap();
        assert_eq!(set.no_match, NoMatch::Allow);
    }

    #[test]
    fn wrong_kind_version_and_duplicates() {
        let errs = errors(&policy_yaml("").replace("ClusterImagePolicy", "ImagePolicee"));
        assert!(errs[0].contains("kind \"ImagePolicee\""), "{errs:?}");
        assert!(errs[0].starts_with("p.yaml:2: "), "{errs:?}");
        let errs = errors(&policy_yaml("").replace("v1alpha1", "v9"));
        assert!(errs[0].starts_with("p.yaml:1: "), "{errs:?}");
        let doc = policy_yaml("");
        let errs = errors(&format!("{doc}---\n{doc}"));
        assert!(errs[0].contains("duplicate policy name"), "{errs:?}");
        let errs =
            errors(&policy_yaml("").replace("kind: ClusterImagePolicy", "kind: ImagePolicy"));
        assert!(errs[0].contains("needs metadata.namespace"), "{errs:?}");
    }

    #[test]
    fn garbage_yaml_is_an_error_not_a_panic() {
        for text in ["{", ": : :", "apiVersion: [", "- 1\n- 2", "\t\tx"] {
            let _ = load_str(Path::new("p.yaml"), text);
        }
        assert!(!errors("kind: [").is_empty());
    }

    #[test]
    fn an_imported_notation_statement_for_the_repository_wins_over_the_global_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/notation-config");
        let set = load_dir(&dir).unwrap();
        let names = |image: &str| -> Vec<String> {
            let image = image.parse().unwrap();
            set.matching(&image, None)
                .map(|p| p.name.as_str().to_string())
                .collect()
        };
        assert_eq!(
            names("registry.example.com/prod/app:1"),
            ["notation:production"]
        );
        assert_eq!(
            names("registry.example.com/prod/other:1"),
            ["notation:everything-else"]
        );
        assert_eq!(names("nginx"), ["notation:everything-else"]);
    }

    #[test]
    fn examples_in_policies_dir_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for dir in [
            root.clone(),
            root.join("examples"),
            root.join("notation-config"),
        ] {
            if let Err(errs) = load_dir(&dir) {
                panic!("{} does not load: {errs:?}", dir.display());
            }
        }
    }
}
