//! Loading policies from YAML: one directory, any number of files, any number of documents per
//! file. Every error names the file, the line and the field; all errors are collected, so one
//! run of `signet policy check` shows them all.
//!
//! Like `policy`: must not import `registry` or `verify`; it reads files, never the network.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cosign::CosignAuthority;
use super::crd::PolicySpec;
use super::material::{Context, MaterialError, MaterialSpec, Reference, Resolver, Want};
use super::notation::NotationAuthority;
use super::{
    Authority, ImageGlob, MissingMaterial, Mode, NoMatch, OnError, PlatformSignatures, Policy,
    PolicyName, PolicySet, Verifier,
};
use crate::image::Digest;

use super::crd::API_VERSION;
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

/// A policy document: the same shape in a file and as a custom resource. Its JSON is hashed
/// into the policy's generation.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PolicyDoc {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) metadata: Metadata,
    pub(crate) spec: PolicySpec,
}

/// Kubernetes object metadata: only name and namespace matter; other fields (labels, or those a
/// cluster adds when a policy is exported) are accepted and ignored.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
pub(crate) struct Metadata {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
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
    /// The mode of the policies imported from a Notation trust policy in the directory
    /// (Notation's file has no such notion): enforce (default), warn or audit.
    #[serde(default)]
    notation_mode: Mode,
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
    let parts = load_parts(&borrowed, resolver);
    let notation_mode = parts.as_ref().map(|(_, m)| *m).unwrap_or_default();
    let mut notation = dir.join(NOTATION_TRUST_POLICY);
    let imported = match notation_trust_policy(dir) {
        Ok(None) => Vec::new(),
        Ok(Some(file)) => {
            notation = file;
            match std::fs::read_to_string(&notation) {
                Ok(text) => match import_notation(&notation, &text, notation_mode) {
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
        }
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    let result = parts.and_then(|(mut set, _)| {
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
    load_parts(sources, resolver).map(|(set, _)| set)
}

/// The policy set of `sources`, and the mode its SignetConfig gives imported Notation policies.
fn load_parts(
    sources: &[(&Path, &str)],
    resolver: &Resolver,
) -> Result<(PolicySet, Mode), Vec<LoadError>> {
    let mut errors = Vec::new();
    let mut missing = Vec::new();
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
                        Ok((policy, gone)) => {
                            missing.extend(gone.into_iter().map(|(line, message)| {
                                MissingMaterial {
                                    at: format!(
                                        "{}:{}",
                                        file.display(),
                                        line.map_or(first_line + 1, |l| l + first_line + 1)
                                    ),
                                    message,
                                }
                            }));
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
                            errors.push(err(locate(doc, "azure"), m.to_string()));
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
        let notation_mode = settings
            .as_ref()
            .map(|s| s.notation_mode)
            .unwrap_or_default();
        Ok((
            PolicySet {
                policies: policies.into_values().collect(),
                no_match: settings.as_ref().map(|s| s.no_match).unwrap_or_default(),
                expiry_warning_days: settings.and_then(|s| s.expiry_warning_days),
                missing,
            },
            notation_mode,
        ))
    } else {
        Err(errors)
    }
}

type DocError = (Option<usize>, String);

/// One policy document of a file, and the trust material it names that does not exist (the
/// 0-based line of each reference in `doc`, and the field and object): see [`without_missing`].
fn load_policy(
    doc: &str,
    base: &Path,
    file: &Path,
    resolver: &Resolver,
) -> Result<(Policy, Vec<DocError>), DocError> {
    let parsed: PolicyDoc =
        serde_yaml::from_str(doc).map_err(|e| (yaml_line(&e), yaml_message(&e)))?;
    let source = file.display().to_string();
    let located = |e: SpecError| {
        let line = match &e.at {
            At::Metadata => locate(doc, "metadata"),
            At::Name => locate(doc, "name"),
            At::Spec(key) => locate(doc, key),
            At::Authority { name, .. } => locate_after(doc, "name", name),
        };
        let message = match &e.at {
            At::Authority {
                name,
                verifier: Some(_),
                ..
            } => format!("authority {name:?}: {}", e.message),
            _ => e.message,
        };
        (line, message)
    };
    let (usable, gone) = without_missing(&parsed, Some(base), resolver);
    let policy = match usable {
        Some(usable) => build_policy(&usable, Some(base), resolver, source),
        None => trusting_nothing(&parsed, source),
    }
    .map_err(located)?;
    let gone = gone
        .into_iter()
        .map(|m| {
            let from = parsed
                .spec
                .authorities
                .get(m.authority)
                .and_then(|a| locate_after(doc, "name", &a.name));
            let line = from
                .map(|from| locate_reference(doc, from, m.kind.field(), &m.object).unwrap_or(from));
            (line, format!("{}: {}", m.path, m.message))
        })
        .collect();
    Ok((policy, gone))
}

/// A Secret or ConfigMap reference whose object (or key) does not exist.
struct Missing {
    /// The index of the authority that names it.
    authority: usize,
    /// `spec.authorities[0].cosign.keys[1]`.
    path: String,
    kind: super::material::ObjectKind,
    /// The object's name as written.
    object: String,
    /// The resolver's words: `Secret signet-system/cosign-pub not found`.
    message: String,
}

/// `parsed` without the authorities that name a Secret or ConfigMap that does not exist
/// (`None` when that is all of them), and those references. An authority whose material is
/// gone trusts nothing until it exists again: it is left out rather than failing the load, so
/// that a deleted key stops being trusted while the policy still covers its images. Other
/// reference problems (a namespace the tenant rules forbid, no `--kubernetes`) are left for
/// loading to report as errors.
fn without_missing<'a>(
    parsed: &'a PolicyDoc,
    base: Option<&Path>,
    resolver: &Resolver,
) -> (Option<Cow<'a, PolicyDoc>>, Vec<Missing>) {
    let namespace = match parsed.kind.as_str() {
        "ImagePolicy" => parsed.metadata.namespace.as_deref(),
        _ => None,
    };
    let cx = Context { base, namespace };
    let mut gone = Vec::new();
    for (authority, path, _, m) in references(&parsed.spec) {
        let Ok(Reference::Object(kind, r)) = m.reference() else {
            continue;
        };
        // The largest size limit: a size error is the loader's to report.
        let message = match resolver.resolve(m, Want::TrustRoot, &cx) {
            Err(MaterialError::NotFound(message)) => message,
            Err(e @ MaterialError::Unchecked { .. }) => e.to_string(),
            _ => continue,
        };
        gone.push(Missing {
            authority,
            path,
            kind,
            object: r.name.clone(),
            message,
        });
    }
    if gone.is_empty() {
        return (Some(Cow::Borrowed(parsed)), gone);
    }
    let usable =
        without_authorities(&parsed.spec, |i| gone.iter().any(|m| m.authority == i)).map(|spec| {
            Cow::Owned(PolicyDoc {
                api_version: parsed.api_version.clone(),
                kind: parsed.kind.clone(),
                metadata: parsed.metadata.clone(),
                spec,
            })
        });
    (usable, gone)
}

/// `spec` without the authorities whose index `dropped` names; `None` when none is left.
pub(crate) fn without_authorities(
    spec: &PolicySpec,
    dropped: impl Fn(usize) -> bool,
) -> Option<PolicySpec> {
    let mut usable = spec.clone();
    let mut i = 0;
    usable.authorities.retain(|_| {
        i += 1;
        !dropped(i - 1)
    });
    (!usable.authorities.is_empty()).then_some(usable)
}

/// Every place `spec` names trust material: (authority index, field path, what the loader
/// asks for there, the reference).
pub(crate) fn references(spec: &PolicySpec) -> Vec<(usize, String, Want, &MaterialSpec)> {
    let mut out = Vec::new();
    for (i, a) in spec.authorities.iter().enumerate() {
        let at = format!("spec.authorities[{i}]");
        if let Some(c) = &a.cosign {
            for (k, key) in c.keys.iter().enumerate() {
                out.push((
                    i,
                    format!("{at}.cosign.keys[{k}]"),
                    Want::PublicKey,
                    &key.material,
                ));
            }
            if let Some(k) = &c.keyless {
                out.push((
                    i,
                    format!("{at}.cosign.keyless.trustRoot"),
                    Want::TrustRoot,
                    &k.trust_root,
                ));
            }
        }
        if let Some(n) = &a.notation {
            for (s, store) in n.trust_stores.iter().enumerate() {
                for (c, cert) in store.certificates.iter().enumerate() {
                    out.push((
                        i,
                        format!("{at}.notation.trustStores[{s}].certificates[{c}]"),
                        Want::Certificates,
                        cert,
                    ));
                }
            }
        }
    }
    out
}

/// The policy of `doc` with no authority: it still covers its images, and trusts nothing.
pub(crate) fn trusting_nothing(doc: &PolicyDoc, source: String) -> Result<Policy, SpecError> {
    let mut material = b"trusting nothing: referenced material is missing\n".to_vec();
    material.extend_from_slice(&serde_json::to_vec(doc).map_err(|e| SpecError {
        at: At::Spec("authorities"),
        message: format!("cannot hash the policy: {e}"),
    })?);
    let (name, namespace) = identity(doc)?;
    let spec = &doc.spec;
    Ok(Policy {
        name,
        namespace,
        images: spec.images.clone(),
        mode: spec.mode,
        on_error: spec.on_error,
        platform_signatures: spec.platform_signatures,
        require_digest: spec.require_digest,
        pin_templates: spec.pin_templates,
        authorities: Vec::new(),
        generation: Digest::sha256_of(&material).hex()[..16].to_string(),
        source,
        scope: super::Scope::Glob,
    })
}

/// The 0-based line, at or after `from`, of the `field` (`secretRef`, `configMapRef`) that
/// names `object`, in flow (`secretRef: {name: x, key: k}`) or block style.
fn locate_reference(doc: &str, from: usize, field: &str, object: &str) -> Option<usize> {
    let lines: Vec<&str> = doc.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let names = |t: &str| {
        t.split(['{', '}', ','])
            .filter_map(|p| p.trim().strip_prefix("name:"))
            .any(|v| v.trim().trim_matches('"').trim_matches('\'') == object)
    };
    (from..lines.len()).find(|&i| {
        let t = lines[i].trim_start().trim_start_matches("- ");
        let Some(rest) = t.strip_prefix(field).and_then(|r| r.strip_prefix(':')) else {
            return false;
        };
        if !rest.trim().is_empty() {
            return names(rest);
        }
        let at = indent(lines[i]);
        lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > at)
            .any(|l| names(l.trim_start().trim_start_matches("- ")))
    })
}

/// Where in a policy document a problem is, so that each source can name it its own way: a
/// file by line, a custom resource by field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum At {
    Metadata,
    Name,
    /// A field directly under `spec`.
    Spec(&'static str),
    /// `spec.authorities[index]`; `verifier` is set when the message is the verifier loader's
    /// (which names its own field, e.g. `cosign.keys[1]: ...`).
    Authority {
        index: usize,
        name: String,
        verifier: Option<&'static str>,
    },
}

/// One problem in one policy document, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecError {
    pub(crate) at: At,
    pub(crate) message: String,
}

impl SpecError {
    /// The message with the field path in front, as for a custom resource:
    /// `spec.authorities[0].cosign.keys[1]: not a public key`.
    pub(crate) fn with_field_path(&self) -> String {
        match &self.at {
            At::Metadata => format!("metadata: {}", self.message),
            At::Name => format!("metadata.name: {}", self.message),
            At::Spec(key) => {
                let m = self
                    .message
                    .strip_prefix(&format!("spec.{key} "))
                    .unwrap_or(&self.message);
                format!("spec.{key}: {m}")
            }
            At::Authority {
                index,
                verifier: Some(v),
                ..
            } => {
                let m = &self.message;
                let field_first = m
                    .split(['[', ':', ' ', '.'])
                    .next()
                    .is_some_and(|w| NESTED_FIELDS.contains(&w));
                if m.starts_with(&format!("{v}.")) {
                    format!("spec.authorities[{index}].{m}")
                } else if field_first {
                    format!("spec.authorities[{index}].{v}.{m}")
                } else {
                    format!("spec.authorities[{index}].{v}: {m}")
                }
            }
            At::Authority { index, .. } => {
                format!("spec.authorities[{index}]: {}", self.message)
            }
        }
    }
}

/// Fields of a Notation authority its loader's messages start with.
const NESTED_FIELDS: [&str; 3] = ["trustStores", "signatureVerification", "trustedIdentities"];

/// Builds a policy from a parsed document; `base` is where relative key paths start (`None`:
/// the policy names no files), `resolver` reads its trust material, `source` names the document
/// in messages. Files and custom resources both come here.
pub(crate) fn build_policy(
    parsed: &PolicyDoc,
    base: Option<&Path>,
    resolver: &Resolver,
    source: String,
) -> Result<Policy, SpecError> {
    let err = |at: At, message: String| SpecError { at, message };
    let (name, namespace) = identity(parsed)?;
    let spec = &parsed.spec;
    if spec.authorities.is_empty() {
        return Err(err(
            At::Spec("authorities"),
            "spec.authorities is empty: list at least one cosign or notation authority".into(),
        ));
    }
    let cx = Context {
        base,
        namespace: namespace.as_deref(),
    };
    let mut material = serde_json::to_vec(parsed).map_err(|e| {
        err(
            At::Spec("authorities"),
            format!("cannot hash the policy: {e}"),
        )
    })?;
    let mut authorities = Vec::with_capacity(spec.authorities.len());
    let mut seen = std::collections::HashSet::new();
    for (index, a) in spec.authorities.iter().enumerate() {
        let at = |verifier: Option<&'static str>| At::Authority {
            index,
            name: a.name.clone(),
            verifier,
        };
        if !seen.insert(a.name.as_str()) {
            return Err(err(
                at(None),
                format!("duplicate authority name {:?}", a.name),
            ));
        }
        let verifier = match (&a.cosign, &a.notation) {
            (Some(c), None) => {
                let (auth, bytes) = CosignAuthority::load(c, resolver, &cx)
                    .map_err(|m| err(at(Some("cosign")), m.to_string()))?;
                material.extend_from_slice(&bytes);
                Verifier::Cosign(auth)
            }
            (None, Some(n)) => {
                let (auth, bytes) = NotationAuthority::load(n, resolver, &cx)
                    .map_err(|m| err(at(Some("notation")), m.to_string()))?;
                material.extend_from_slice(&bytes);
                Verifier::Notation(Box::new(auth))
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    at(None),
                    format!(
                        "authority {:?} has both cosign and notation: use two authorities",
                        a.name
                    ),
                ));
            }
            (None, None) => {
                return Err(err(
                    at(None),
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
        source,
        scope: super::Scope::Glob,
    })
}

/// The policy's name and, for an `ImagePolicy`, its namespace; also checks that it covers
/// some images.
fn identity(parsed: &PolicyDoc) -> Result<(PolicyName, Option<String>), SpecError> {
    let err = |at: At, message: String| SpecError { at, message };
    let PolicyDoc {
        api_version: _,
        kind,
        metadata,
        spec,
    } = parsed;
    if metadata.name.is_empty() {
        return Err(err(At::Name, "metadata.name is empty".into()));
    }
    let namespace = match (kind.as_str(), &metadata.namespace) {
        ("ImagePolicy", None) => {
            return Err(err(
                At::Metadata,
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
        return Err(err(
            At::Spec("images"),
            "spec.images is empty: list at least one glob".into(),
        ));
    }
    Ok((name, namespace))
}

/// The file names of a Notation trust policy in a policy directory, and the trust-store
/// directory beside it (Notation's own layout: `trustpolicy.oci.json`, or the older
/// `trustpolicy.json`, and `truststore/x509/...`).
pub const NOTATION_TRUST_POLICY: &str = "trustpolicy.json";
/// The name Notation (1.2 and later) reads first.
pub const NOTATION_TRUST_POLICY_OCI: &str = "trustpolicy.oci.json";
const NOTATION_TRUST_STORE: &str = "truststore";

/// The Notation trust policy of `dir`, under either name. Both at once is an error: which one
/// applies would depend on the Notation version that reads the directory.
fn notation_trust_policy(dir: &Path) -> Result<Option<PathBuf>, LoadError> {
    let oci = dir.join(NOTATION_TRUST_POLICY_OCI);
    let old = dir.join(NOTATION_TRUST_POLICY);
    match (oci.is_file(), old.is_file()) {
        (true, true) => Err(LoadError {
            file: dir.to_path_buf(),
            line: None,
            message: format!(
                "both {NOTATION_TRUST_POLICY_OCI} and {NOTATION_TRUST_POLICY} are present: keep \
                 one Notation trust policy (Notation 1.2 and later read {NOTATION_TRUST_POLICY_OCI})"
            ),
        }),
        (true, false) => Ok(Some(oci)),
        (false, true) => Ok(Some(old)),
        (false, false) => Ok(None),
    }
}

/// Turns a Notation trust policy into policies, one per statement: in `mode` (the
/// SignetConfig's `notationMode`, enforce by default), failing closed, scoped as Notation
/// scopes them.
fn import_notation(file: &Path, text: &str, mode: Mode) -> Result<Vec<Policy>, LoadError> {
    let err = |message: String| LoadError {
        file: file.to_path_buf(),
        line: None,
        message,
    };
    let root = file
        .parent()
        .unwrap_or(Path::new("."))
        .join(NOTATION_TRUST_STORE);
    let statements =
        super::notation::import_trust_policy(text, &root).map_err(|e| err(e.to_string()))?;
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
        if mode != Mode::Enforce {
            material.extend_from_slice(mode.as_str().as_bytes());
        }
        for store in &st.authority.trust_stores {
            for c in &store.certificates {
                material.extend_from_slice(&c.der);
            }
        }
        policies.push(Policy {
            name: PolicyName(format!("notation:{}", st.name)),
            namespace: None,
            images,
            mode,
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
            errs[0].contains(
                "cosign.keys[0]: unknown field `inlnie`, expected one of inline, file, secretRef, configMapRef, keyVault, rsaPss"
            ),
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

    /// A directory with Notation's trust policy under `name` and the example trust store.
    fn notation_dir(names: &[&str], extra_yaml: &str) -> tempfile::TempDir {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/notation-config");
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::copy(example.join("trustpolicy.json"), dir.path().join(name)).unwrap();
        }
        std::os::unix::fs::symlink(example.join("truststore"), dir.path().join("truststore"))
            .unwrap();
        if !extra_yaml.is_empty() {
            std::fs::write(dir.path().join("config.yaml"), extra_yaml).unwrap();
        }
        dir
    }

    #[test]
    fn notation_trust_policy_is_read_under_its_current_name_too() {
        let dir = notation_dir(&["trustpolicy.oci.json"], "");
        let set = load_dir(dir.path()).unwrap();
        assert_eq!(set.policies.len(), 2);
        assert!(set.policies[0].source.ends_with("trustpolicy.oci.json"));
        assert!(set.policies.iter().all(|p| p.mode == Mode::Enforce));

        let both = notation_dir(&["trustpolicy.oci.json", "trustpolicy.json"], "");
        let errors = load_dir(both.path()).unwrap_err();
        let text = errors[0].to_string();
        assert!(
            text.contains("trustpolicy.oci.json") && text.contains("trustpolicy.json are present"),
            "{text}"
        );
    }

    #[test]
    fn an_imported_notation_trust_policy_takes_the_configured_mode() {
        let config =
            "apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  notationMode: warn\n";
        let warn = load_dir(notation_dir(&["trustpolicy.json"], config).path()).unwrap();
        assert!(warn.policies.iter().all(|p| p.mode == Mode::Warn));
        let enforce = load_dir(notation_dir(&["trustpolicy.json"], "").path()).unwrap();
        assert_ne!(
            warn.policies[0].generation, enforce.policies[0].generation,
            "the mode is part of the generation"
        );
        let bad = config.replace("warn", "loud");
        let errors = load_dir(notation_dir(&["trustpolicy.json"], &bad).path()).unwrap_err();
        assert!(errors[0].to_string().contains("loud"), "{errors:?}");
    }

    #[test]
    fn examples_in_policies_dir_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for dir in [
            root.clone(),
            root.join("examples"),
            root.join("crds"),
            root.join("notation-config"),
        ] {
            if let Err(errs) = load_dir(&dir) {
                panic!("{} does not load: {errs:?}", dir.display());
            }
        }
    }

    /// Secrets as a material source: only those named in `present` exist.
    #[derive(Debug)]
    struct Secrets(Vec<&'static str>);

    impl crate::policy::material::ObjectMaterial for Secrets {
        fn get(
            &self,
            kind: crate::policy::material::ObjectKind,
            r: &crate::policy::material::ObjectKeyRef,
            _: &Context<'_>,
        ) -> Result<(Vec<u8>, String), crate::policy::material::MaterialError> {
            let shown = format!("{} signet-system/{}", kind.as_str(), r.name);
            if self.0.contains(&r.name.as_str()) {
                Ok((key_pem().into_bytes(), shown))
            } else {
                Err(crate::policy::material::MaterialError::NotFound(format!(
                    "{shown} not found"
                )))
            }
        }
        fn version(&self) -> u64 {
            0
        }
    }

    /// A policy file whose Secret is missing loads without the authority that needs it (or
    /// trusting nothing), names file, line and object, and spoils no other file.
    #[test]
    fn a_missing_secret_degrades_its_policy_and_spoils_no_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_pem().replace('\n', "\n              ");
        std::fs::write(
            dir.path().join("a.yaml"),
            format!(
                "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: a\nspec:\n  images: [\"registry.example.com/a/**\"]\n  authorities:\n    - name: release\n      cosign:\n        keys:\n          - secretRef: {{name: gone, key: cosign.pub}}\n    - name: ci\n      cosign:\n        keys:\n          - inline: |\n              {key}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: b\nspec:\n  images: [\"registry.example.com/b/**\"]\n  authorities:\n    - name: release\n      cosign:\n        keys:\n          - secretRef:\n              name: present\n              key: cosign.pub\n          - secretRef:\n              name: also-gone\n              key: cosign.pub\n",
        )
        .unwrap();
        let resolver = Resolver::files().with_objects(Arc::new(Secrets(vec!["present"])));
        let set = load_dir_with(dir.path(), &resolver).expect("a missing Secret fails no load");
        let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = &set.policies[0];
        let left: Vec<_> = a.authorities.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(left, ["ci"], "the authority that needs the Secret is out");
        let b = &set.policies[1];
        assert!(b.authorities.is_empty(), "trusts nothing");
        let image = "registry.example.com/b/app:1".parse().unwrap();
        assert!(b.matches(&image, None), "still covers its images");
        let missing: Vec<String> = set.missing.iter().map(|m| m.to_string()).collect();
        let a_file = dir.path().join("a.yaml").display().to_string();
        let b_file = dir.path().join("b.yaml").display().to_string();
        assert_eq!(
            missing,
            [
                format!(
                    "{a_file}:11: spec.authorities[0].cosign.keys[0]: Secret signet-system/gone not found"
                ),
                format!(
                    "{b_file}:14: spec.authorities[0].cosign.keys[1]: Secret signet-system/also-gone not found"
                ),
            ]
        );
        // The same files with every Secret present: a different generation, so verdicts
        // cached while the key was missing are not reused.
        let whole =
            Resolver::files().with_objects(Arc::new(Secrets(vec!["present", "gone", "also-gone"])));
        let full = load_dir_with(dir.path(), &whole).unwrap();
        assert!(full.missing.is_empty());
        assert_eq!(full.policies[0].authorities.len(), 2);
        assert_ne!(full.policies[0].generation, a.generation);
        assert_ne!(full.policies[1].generation, b.generation);
    }
}
