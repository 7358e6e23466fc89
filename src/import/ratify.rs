//! Ratify v1 (`config.ratify.deislabs.io/v1beta1`, and `v1alpha1` where the shapes agree) to
//! signet policies.
//!
//! Input: any number of YAML documents, including the `kind: List` that `kubectl get -o yaml`
//! prints. `Verifier` (notation, cosign), `KeyManagementProvider`, the deprecated
//! `CertificateStore`, `Store` and `Policy` are read; everything else is reported and ignored.
//!
//! Output: one `ClusterImagePolicy` per group of Ratify trust policies that cover the same
//! images, plus a `SignetConfig` carrying the Azure identity when a Key Vault is used. Trust
//! material stays where it was: inline PEM is copied, Key Vault keys and certificates become
//! `keyVault` references (certificates with `chain: true`, since Ratify reads a certificate's
//! whole chain through its secret).
//!
//! Semantics that differ are never silently dropped: every field that cannot be carried over
//! becomes a [`Finding`]. [`Severity::Dropped`] means the converted policies do not verify
//! something Ratify verified (a key that cannot be converted, a scope that cannot be
//! expressed, Rego): the command exits non-zero. [`Severity::Changed`] means verdicts can
//! differ in a way the message explains (signet is stricter, or the difference is in how
//! failures are counted). [`Severity::Note`] is operational: what replaces a Ratify setting.
//!
//! How Ratify decides, and how that maps: Ratify runs every verifier on every signature found,
//! then its `Policy` combines the reports. With the chart's default (`config-policy`,
//! `default: all`) one verified signature of any type suffices, so trust policies of different
//! verifiers that cover the same images become authorities of one signet policy (any one
//! suffices). A `config-policy` that names artifact types requires each named type: those
//! become separate policies (signet requires every matching policy). Inside one verifier Ratify
//! picks the most specific trust policy for an image; signet requires every policy whose
//! globs match, so overlapping scopes are reported as stricter.
//!
//! Like `import`: imports `policy` only (never `registry`, `verify`, `decision` or the network).

mod cosign;
mod notation;
mod output;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_yaml::Value;

use crate::policy::Mode;
use crate::policy::cosign::PublicKey;

use output::{AuthorityOut, AzureOut, ConfigDoc, ConfigSpec, Metadata, PolicyDoc, PolicySpec};

/// The API group of Ratify's resources; any version of it is read.
const RATIFY_GROUP: &str = "config.ratify.deislabs.io/";
const NOTATION_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
const COSIGN_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";
/// Where keyless policies expect the Sigstore trust root, relative to the policy directory.
pub const TRUST_ROOT_FILE: &str = "sigstore/trusted_root.json";

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something Ratify verified is not verified by the converted policies (or not the same
    /// way): the command exits non-zero.
    Dropped,
    /// Verdicts can differ as the message says (usually: signet is stricter).
    Changed,
    /// An operational setting signet does differently (a flag, a default).
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Dropped => "dropped",
            Severity::Changed => "changed",
            Severity::Note => "note",
        }
    }
}

/// One field that was not carried over as is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `Kind/name` of the Ratify resource.
    pub resource: String,
    /// The field path inside it (`spec.parameters...`), or empty for the whole resource.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8}{}", self.severity.as_str(), self.resource)?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One emitted YAML document.
#[derive(Debug, Clone)]
pub struct Output {
    /// File name without `.yaml`, for `-o DIR`.
    pub file_stem: String,
    pub yaml: String,
}

/// The result: the policies, and everything that was not carried over as is.
#[derive(Debug, Default)]
pub struct Conversion {
    pub outputs: Vec<Output>,
    pub findings: Vec<Finding>,
    /// How many Ratify resources were read.
    pub resources: usize,
}

impl Conversion {
    /// Whether anything security-relevant could not be carried over.
    pub fn dropped(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Dropped)
    }

    /// Every document, separated by `---`.
    pub fn to_yaml_stream(&self) -> String {
        self.outputs
            .iter()
            .map(|o| o.yaml.as_str())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// The report printed on standard error: one line per finding, most serious first, and a
    /// summary.
    pub fn report(&self) -> String {
        let mut findings = self.findings.clone();
        findings.sort_by_key(|f| f.severity);
        let mut s = String::new();
        for f in &findings {
            s.push_str(&f.to_string());
            s.push('\n');
        }
        let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
        s.push_str(&format!(
            "signet import ratify: {} Ratify resource(s) read, {} document(s) written; {} dropped, {} changed, {} note(s)\n",
            self.resources,
            self.outputs.len(),
            count(Severity::Dropped),
            count(Severity::Changed),
            count(Severity::Note),
        ));
        if self.dropped() {
            s.push_str(
                "signet import ratify: the policies do NOT verify everything Ratify verified (see \"dropped\" above); fix them before enforcing\n",
            );
        }
        s
    }
}

/// Why the input could not be converted at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: document {index}: not valid YAML: {source}")]
    Yaml {
        file: String,
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error(
        "no Ratify resources (apiVersion {RATIFY_GROUP}...) in the input; export them with kubectl get verifiers,keymanagementproviders,certificatestores,stores,policies -o yaml"
    )]
    NothingToConvert,
    #[error("cannot render policy {name}: {source}")]
    Render {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Choices the Ratify configuration does not make.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The `spec.mode` of every emitted policy.
    pub mode: Mode,
}

/// Converts the Ratify resources in `inputs` (file name, text).
pub fn convert(inputs: &[(String, String)], options: &Options) -> Result<Conversion, ImportError> {
    let mut cx = Cx::default();
    for (file, text) in inputs {
        for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|source| ImportError::Yaml {
                file: file.clone(),
                index: index + 1,
                source,
            })?;
            cx.collect(value);
        }
    }
    if cx.resources.is_empty() {
        return Err(ImportError::NothingToConvert);
    }
    let resources = std::mem::take(&mut cx.resources);
    for r in &resources {
        if matches!(
            r.kind.as_str(),
            "KeyManagementProvider" | "NamespacedKeyManagementProvider" | "CertificateStore"
        ) {
            cx.provider(r);
        }
    }
    let mut combine = None;
    for r in &resources {
        match r.kind.as_str() {
            "Store" | "NamespacedStore" => cx.store(r),
            "Policy" => {
                if let Some(c) = cx.policy(r) {
                    combine = Some(c);
                }
            }
            "NamespacedPolicy" | "NamespacedVerifier" => cx.find(
                Severity::Dropped,
                r,
                "",
                "namespaced (multi-tenant) resources are not converted: Ratify uses them instead of the cluster-wide ones in their namespace, signet's ImagePolicy adds to the cluster-wide policies; write an ImagePolicy by hand",
            ),
            "KeyManagementProvider" | "NamespacedKeyManagementProvider" | "CertificateStore"
            | "Verifier" => {}
            other => cx.find(
                Severity::Note,
                r,
                "",
                &format!("kind {other} has no signet counterpart; ignored"),
            ),
        }
    }
    let combine = combine.unwrap_or_else(|| {
        cx.findings.push(Finding {
            severity: Severity::Note,
            resource: "Policy/ratify-policy".into(),
            field: String::new(),
            message: "not in the input: assumed the chart's default (config-policy, default: all), under which a verified signature of any type suffices".into(),
        });
        Combine::AnyVerifier
    });
    let mut units = Vec::new();
    for r in &resources {
        if r.kind == "Verifier" {
            units.extend(cx.verifier(r));
        }
    }
    let mut conversion = Conversion {
        resources: resources.len(),
        ..Conversion::default()
    };
    cx.emit(units, &combine, options, &mut conversion)?;
    conversion.findings = cx.findings;
    Ok(conversion)
}

/// One Ratify resource.
struct Resource {
    kind: String,
    name: String,
    namespace: Option<String>,
    spec: Value,
}

impl Resource {
    fn id(&self) -> String {
        match &self.namespace {
            Some(ns) if self.kind.starts_with("Namespaced") => {
                format!("{}/{ns}/{}", self.kind, self.name)
            }
            _ => format!("{}/{}", self.kind, self.name),
        }
    }

    fn params(&self) -> Option<&Value> {
        self.spec.get("parameters").filter(|v| !v.is_null())
    }
}

/// Which verifier a trust policy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Notation,
    Cosign,
}

/// The images of a group of trust policies, their signature type when the `Policy` requires
/// types separately, and whether it is a Notation `skip` statement (grouped alone).
type GroupKey = (Vec<String>, Option<Kind>, bool);

/// How Ratify's `Policy` combines the verifiers' reports.
enum Combine {
    /// One verified signature of any type suffices.
    AnyVerifier,
    /// A verified signature of each listed type is needed.
    Required(BTreeSet<Kind>),
}

/// Trust material of one `KeyManagementProvider` or `CertificateStore`.
#[derive(Default, Clone)]
struct Provider {
    id: String,
    /// PEM text of one or more certificates.
    inline_certificates: Option<String>,
    /// PEM public key.
    inline_key: Option<String>,
    vault: Option<Vault>,
}

#[derive(Clone)]
struct Vault {
    uri: String,
    tenant: Option<String>,
    client: Option<String>,
    certificates: Vec<VaultObject>,
    keys: Vec<VaultObject>,
}

#[derive(Clone)]
struct VaultObject {
    name: String,
    version: Option<String>,
}

/// One Ratify trust policy (a Notation statement or a Cosign trust policy), converted.
struct Unit {
    kind: Kind,
    verifier: String,
    statement: String,
    images: Vec<String>,
    authority: AuthorityOut,
    /// A Notation `skip` statement: trusted without a signature, so never merged with other
    /// authorities (it would make them pointless).
    skip: bool,
}

#[derive(Default)]
struct Cx {
    resources: Vec<Resource>,
    findings: Vec<Finding>,
    /// By name, and by `namespace/name` for namespaced providers.
    providers: BTreeMap<String, Provider>,
    /// Client IDs the stores authenticate with.
    store_clients: Vec<(String, String)>,
    /// Providers in the input that could not be read (already reported).
    unreadable: BTreeSet<String>,
}

/// A string field, `None` when absent, null or empty (Helm renders unset values as empty).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    match field(v, key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn keys_of(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A policy or authority name: lower case letters, digits and '-'.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_string()
}

impl Cx {
    fn find(&mut self, severity: Severity, r: &Resource, field: &str, message: &str) {
        self.findings.push(Finding {
            severity,
            resource: r.id(),
            field: field.to_string(),
            message: message.to_string(),
        });
    }

    /// Files a top-level document: a Ratify resource, a `List` of them, or something else
    /// (reported).
    fn collect(&mut self, v: Value) {
        if v.is_null() {
            return;
        }
        let api = text(v.get("apiVersion")).unwrap_or_default();
        let kind = text(v.get("kind")).unwrap_or_default();
        let name = v
            .get("metadata")
            .and_then(|m| text(m.get("name")))
            .unwrap_or_default();
        if kind == "List" || kind.ends_with("List") && v.get("items").is_some() {
            if let Some(items) = v.get("items").and_then(Value::as_sequence) {
                for item in items.clone() {
                    self.collect(item);
                }
            }
            return;
        }
        let other = |message: String| Finding {
            severity: Severity::Note,
            resource: format!("{kind}/{name}"),
            field: String::new(),
            message,
        };
        if api.starts_with(RATIFY_GROUP) {
            let namespace = v.get("metadata").and_then(|m| text(m.get("namespace")));
            self.resources.push(Resource {
                kind,
                name,
                namespace,
                spec: v.get("spec").cloned().unwrap_or(Value::Null),
            });
        } else if api.starts_with("constraints.gatekeeper.sh/") {
            let action = v
                .get("spec")
                .and_then(|s| text(s.get("enforcementAction")))
                .unwrap_or_else(|| "deny".into());
            let mode = match action.as_str() {
                "dryrun" => "audit",
                "warn" => "warn",
                _ => "enforce",
            };
            self.findings.push(other(format!(
                "Gatekeeper constraint (enforcementAction {action}, the equivalent of --mode {mode}); signet is the webhook itself: delete the constraint once signet enforces, and exclude namespaces with the webhook's namespaceSelector"
            )));
        } else if api.starts_with("templates.gatekeeper.sh/")
            || api.starts_with("externaldata.gatekeeper.sh/")
            || api.starts_with("mutations.gatekeeper.sh/")
        {
            self.findings.push(other(
                "Gatekeeper plumbing for Ratify; not needed with signet (delete it after the migration)"
                    .into(),
            ));
        } else {
            self.findings.push(other(format!(
                "apiVersion {api:?} is not a Ratify resource; ignored"
            )));
        }
    }

    /// Reads a `KeyManagementProvider` or `CertificateStore` into `providers`.
    fn provider(&mut self, r: &Resource) {
        let kind = text(field(&r.spec, "type"))
            .or_else(|| text(field(&r.spec, "provider")))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let Some(params) = r.params().cloned() else {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters",
                "missing: the provider holds nothing",
            );
            self.unreadable.insert(r.name.clone());
            return;
        };
        let mut p = Provider {
            id: r.id(),
            ..Provider::default()
        };
        let known: &[&str] = match kind.as_str() {
            "inline" => {
                self.inline_provider(r, &params, &mut p);
                &["contentType", "value"]
            }
            "azurekeyvault" => {
                self.vault_provider(r, &params, &mut p);
                &[
                    "vaultURI",
                    "vaultUri",
                    "tenantID",
                    "tenantId",
                    "clientID",
                    "clientId",
                    "certificates",
                    "keys",
                    "refreshInterval",
                ]
            }
            other => {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.type",
                    &format!(
                        "provider type {other:?} is not supported (inline and azurekeyvault are): copy its certificates or keys into the policies as inline PEM"
                    ),
                );
                self.unreadable.insert(r.name.clone());
                return;
            }
        };
        for k in keys_of(&params) {
            if !known.contains(&k.as_str()) {
                self.find(
                    Severity::Note,
                    r,
                    &format!("spec.parameters.{k}"),
                    "unknown parameter; ignored",
                );
            }
        }
        if p.inline_certificates.is_none() && p.inline_key.is_none() && p.vault.is_none() {
            self.unreadable.insert(r.name.clone());
            return;
        }
        if let Some(ns) = &r.namespace
            && r.kind.starts_with("Namespaced")
        {
            self.providers.insert(format!("{ns}/{}", r.name), p.clone());
        }
        self.providers.insert(r.name.clone(), p);
    }

    /// Why provider `name`'s `what` are missing.
    fn missing(&self, name: &str, what: &str) -> String {
        let short = name.rsplit_once('/').map_or(name, |(_, n)| n);
        if self.unreadable.contains(short) {
            format!(
                "provider {name:?} could not be converted (reported above); its {what} are missing"
            )
        } else {
            format!(
                "provider {name:?} is not in the input (export KeyManagementProviders and CertificateStores too); its {what} are missing"
            )
        }
    }

    fn inline_provider(&mut self, r: &Resource, params: &Value, p: &mut Provider) {
        let Some(value) = text(field(params, "value")) else {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.value",
                "missing: the provider holds nothing",
            );
            return;
        };
        let content = text(field(params, "contentType")).unwrap_or_else(|| {
            if value.contains("PUBLIC KEY") && !value.contains("CERTIFICATE") {
                "key".into()
            } else {
                "certificate".into()
            }
        });
        match content.as_str() {
            "certificate" => match crate::policy::notation::parse_certificates(value.as_bytes()) {
                Ok(c) if !c.is_empty() => p.inline_certificates = Some(value + "\n"),
                Ok(_) => self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.value",
                    "holds no certificate",
                ),
                Err(e) => self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.value",
                    &format!("not usable as certificates: {e}"),
                ),
            },
            "key" => match PublicKey::from_pem(&value) {
                Ok(_) => p.inline_key = Some(value + "\n"),
                Err(e) => self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.value",
                    &format!("not usable as a Cosign public key: {e}"),
                ),
            },
            other => self.find(
                Severity::Dropped,
                r,
                "spec.parameters.contentType",
                &format!("{other:?} is neither certificate nor key"),
            ),
        }
    }

    fn vault_provider(&mut self, r: &Resource, params: &Value, p: &mut Provider) {
        let Some(uri) = text(field(params, "vaultURI")).or_else(|| text(field(params, "vaultUri")))
        else {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.vaultURI",
                "missing: the vault cannot be named",
            );
            return;
        };
        if !uri.starts_with("https://") {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.vaultURI",
                &format!("{uri:?} is not an https:// vault URI"),
            );
            return;
        }
        let certificates = match field(params, "certificates") {
            None => Vec::new(),
            Some(v) => self.vault_objects(r, "certificates", v),
        };
        let keys = match field(params, "keys") {
            None => Vec::new(),
            Some(v) => self.vault_objects(r, "keys", v),
        };
        if certificates.is_empty() && keys.is_empty() {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters",
                "lists no certificates and no keys",
            );
        }
        if field(params, "refreshInterval").is_some() {
            self.find(
                Severity::Note,
                r,
                "spec.parameters.refreshInterval",
                "signet refreshes Key Vault material on its own interval (a version that is disabled or deleted stops being trusted at the next refresh)",
            );
        }
        p.vault = Some(Vault {
            uri,
            tenant: text(field(params, "tenantID")).or_else(|| text(field(params, "tenantId"))),
            client: text(field(params, "clientID")).or_else(|| text(field(params, "clientId"))),
            certificates,
            keys,
        });
    }

    /// `[{name, version}]` (KeyManagementProvider) or the CertificateStore's string holding a
    /// YAML `array:` of `certificateName`/`certificateVersion` documents.
    fn vault_objects(&mut self, r: &Resource, what: &str, v: &Value) -> Vec<VaultObject> {
        let at = format!("spec.parameters.{what}");
        let items: Vec<Value> = match v {
            Value::Sequence(s) => s.clone(),
            Value::String(s) => match serde_yaml::from_str::<Value>(s) {
                Ok(doc) => doc
                    .get("array")
                    .and_then(Value::as_sequence)
                    .cloned()
                    .unwrap_or_default(),
                Err(e) => {
                    self.find(Severity::Dropped, r, &at, &format!("not a YAML array: {e}"));
                    return Vec::new();
                }
            },
            _ => {
                self.find(Severity::Dropped, r, &at, "not a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            // CertificateStore items are YAML documents inside strings.
            let item = match item {
                Value::String(s) => serde_yaml::from_str(&s).unwrap_or(Value::Null),
                other => other,
            };
            let name = text(field(&item, "name")).or_else(|| text(field(&item, "certificateName")));
            let version =
                text(field(&item, "version")).or_else(|| text(field(&item, "certificateVersion")));
            match name {
                Some(name) => out.push(VaultObject { name, version }),
                None => self.find(Severity::Dropped, r, &format!("{at}[{i}]"), "has no name"),
            }
        }
        out
    }

    fn store(&mut self, r: &Resource) {
        let kind = text(field(&r.spec, "type"))
            .or_else(|| text(field(&r.spec, "name")))
            .unwrap_or_default();
        if kind != "oras" {
            self.find(
                Severity::Note,
                r,
                "spec.name",
                &format!(
                    "store {kind:?}: signet reads signatures from the image's own registry (OCI referrers API, the referrers tag schema and Cosign .sig tags)"
                ),
            );
            return;
        }
        let Some(params) = r.params().cloned() else {
            return;
        };
        for k in keys_of(&params) {
            let at = format!("spec.parameters.{k}");
            match k.as_str() {
                "cosignEnabled" => {
                    if flag(&params, "cosignEnabled") == Some(false) {
                        self.find(
                            Severity::Changed,
                            r,
                            &at,
                            "false: Ratify ignored Cosign .sig tags; signet always reads them (with the same keys, so no signer gains trust)",
                        );
                    }
                }
                "useHttp" => {
                    if flag(&params, "useHttp") == Some(true) {
                        self.find(
                            Severity::Note,
                            r,
                            &at,
                            "plain-HTTP registries are named one by one with --insecure-registry HOST[:PORT]",
                        );
                    }
                }
                "authProvider" => self.auth_provider(r, &params),
                "cacheEnabled" | "ttl" | "capacity" | "keyNumber" | "localCachePath"
                | "cacheTTL" => self.find(
                    Severity::Note,
                    r,
                    &at,
                    "signet keeps its own bounded caches (tag to digest 30 s, verdicts 5 min trusted / 30 s untrusted)",
                ),
                _ => self.find(Severity::Note, r, &at, "unknown parameter; ignored"),
            }
        }
    }

    fn auth_provider(&mut self, r: &Resource, params: &Value) {
        let Some(auth) = field(params, "authProvider") else {
            return;
        };
        let name = text(field(auth, "name")).unwrap_or_default();
        let at = "spec.parameters.authProvider";
        match name.as_str() {
            "azureWorkloadIdentity" => {
                if let Some(client) =
                    text(field(auth, "clientID")).or_else(|| text(field(auth, "clientId")))
                {
                    self.store_clients.push((r.id(), client));
                }
                self.find(
                    Severity::Note,
                    r,
                    at,
                    "azureWorkloadIdentity: signet exchanges its own workload identity for ACR tokens (registries *.azurecr.io by default); give signet's service account the azure.workload.identity/client-id annotation and its pods the azure.workload.identity/use label",
                );
            }
            "azureManagedIdentity" => self.find(
                Severity::Note,
                r,
                at,
                "azureManagedIdentity is not supported: use workload identity (or a docker config with --docker-config); until then registry reads fail and the policy's onError (deny) applies",
            ),
            "k8Secrets" => {
                let secrets: Vec<String> = field(auth, "secrets")
                    .and_then(Value::as_sequence)
                    .map(|s| {
                        s.iter()
                            .filter_map(|x| {
                                let n = text(x.get("secretName"))?;
                                Some(match text(x.get("namespace")) {
                                    Some(ns) => format!("{ns}/{n}"),
                                    None => n,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.find(
                    Severity::Note,
                    r,
                    at,
                    &format!(
                        "k8Secrets ({}): mount the .dockerconfigjson of those secrets into signet and pass it with --docker-config FILE",
                        if secrets.is_empty() {
                            "the service account's image pull secrets".to_string()
                        } else {
                            secrets.join(", ")
                        }
                    ),
                );
            }
            "dockerConfig" => self.find(
                Severity::Note,
                r,
                at,
                "dockerConfig: pass the same config.json with --docker-config FILE",
            ),
            other => self.find(
                Severity::Note,
                r,
                at,
                &format!(
                    "{other:?} has no signet counterpart: use --docker-config with credentials for the registry; until then registry reads fail and onError (deny) applies"
                ),
            ),
        }
    }

    /// Reads the `Policy` named `ratify-policy` (the one Ratify applies).
    fn policy(&mut self, r: &Resource) -> Option<Combine> {
        if r.name != "ratify-policy" {
            self.find(
                Severity::Note,
                r,
                "metadata.name",
                "Ratify applies only the Policy named ratify-policy; ignored",
            );
            return None;
        }
        // The Ratify documentation spells it both `spec.type` and `spec.spec`.
        let kind = text(field(&r.spec, "type"))
            .or_else(|| text(field(&r.spec, "spec")))
            .unwrap_or_default();
        let params = r.params().cloned().unwrap_or(Value::Null);
        if flag(&params, "passthroughEnabled") == Some(true) {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.passthroughEnabled",
                "true: the Gatekeeper constraint's Rego decided from Ratify's reports; that logic is not converted (signet decides itself: a policy passes when one of its authorities verifies)",
            );
        }
        match kind.as_str() {
            "config-policy" | "configpolicy" => {
                let Some(map) = field(&params, "artifactVerificationPolicies")
                    .and_then(Value::as_mapping)
                    .cloned()
                else {
                    return Some(Combine::AnyVerifier);
                };
                let mut required = BTreeSet::new();
                for (k, v) in &map {
                    let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                        continue;
                    };
                    let at = format!("spec.parameters.artifactVerificationPolicies.{k:?}");
                    let kind = match k {
                        "default" => {
                            if v == "all" {
                                self.find(
                                    Severity::Changed,
                                    r,
                                    &at,
                                    "all: Ratify failed an image when any signature found did not verify; signet trusts an image when one signature by a trusted signer verifies and ignores the others",
                                );
                            }
                            continue;
                        }
                        NOTATION_ARTIFACT => Kind::Notation,
                        COSIGN_ARTIFACT => Kind::Cosign,
                        other => {
                            self.find(
                                Severity::Dropped,
                                r,
                                &at,
                                &format!(
                                    "Ratify required a verified {other} artifact; signet verifies signatures only"
                                ),
                            );
                            continue;
                        }
                    };
                    if v == "all" {
                        self.find(
                            Severity::Changed,
                            r,
                            &at,
                            "all: Ratify failed an image when any signature of this type did not verify; signet needs one verified signature of it",
                        );
                    }
                    required.insert(kind);
                }
                Some(if required.is_empty() {
                    Combine::AnyVerifier
                } else {
                    Combine::Required(required)
                })
            }
            "rego-policy" | "regopolicy" => {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.policy",
                    "Rego policies are not converted: the converted policies trust an image when one signature of any configured verifier verifies; compare that with your Rego",
                );
                Some(Combine::AnyVerifier)
            }
            other => {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.type",
                    &format!("policy type {other:?} is not known; assumed config-policy with default: all"),
                );
                Some(Combine::AnyVerifier)
            }
        }
    }

    fn verifier(&mut self, r: &Resource) -> Vec<Unit> {
        let kind = text(field(&r.spec, "type"))
            .or_else(|| text(field(&r.spec, "name")))
            .unwrap_or_default()
            .to_ascii_lowercase();
        match kind.as_str() {
            "notation" | "notaryv2" | "notary" => self.notation(r),
            "cosign" => self.cosign(r),
            other => {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.name",
                    &format!(
                        "verifier {other:?} has no signet counterpart (signet verifies Notation and Cosign signatures); what it checked is not checked"
                    ),
                );
                Vec::new()
            }
        }
    }
}

/// Turns units into policies, grouped as the `Policy` combines verifiers.
impl Cx {
    fn emit(
        &mut self,
        units: Vec<Unit>,
        combine: &Combine,
        options: &Options,
        conversion: &mut Conversion,
    ) -> Result<(), ImportError> {
        // (images, kind when types are required separately) → units, in input order.
        let mut groups: Vec<(GroupKey, Vec<Unit>)> = Vec::new();
        for u in units {
            let kind = match combine {
                Combine::AnyVerifier => None,
                Combine::Required(set) => {
                    if !set.contains(&u.kind) {
                        self.findings.push(Finding {
                            severity: Severity::Changed,
                            resource: format!("Verifier/{}", u.verifier),
                            field: format!("trust policy {:?}", u.statement),
                            message: "its artifact type is not required by the Policy (artifactVerificationPolicies), so signet does not check it; Ratify failed images carrying such a signature that did not verify".into(),
                        });
                        continue;
                    }
                    Some(u.kind)
                }
            };
            let mut images = u.images.clone();
            images.sort();
            images.dedup();
            let key = (images, kind, u.skip);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, list)) => list.push(u),
                None => groups.push((key, vec![u])),
            }
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        // (name, images, the signature type when types are required separately).
        let mut emitted: Vec<(String, Vec<String>, Option<Kind>, bool)> = Vec::new();
        for ((images, required, skip), list) in groups {
            let base = sanitize(&format!(
                "ratify-{}",
                list.iter()
                    .map(|u| format!("{}-{}", u.verifier, u.statement))
                    .collect::<Vec<_>>()
                    .join("-or-")
            ));
            let name = unique(&mut names, &base);
            let mut authority_names = BTreeSet::new();
            let mut authorities = Vec::new();
            let mut sources = Vec::new();
            for u in list {
                let mut a = u.authority;
                a.name = unique(
                    &mut authority_names,
                    &sanitize(&format!("{}-{}", u.verifier, u.statement)),
                );
                sources.push(format!(
                    "Verifier/{} trust policy {:?}",
                    u.verifier, u.statement
                ));
                authorities.push(a);
            }
            let doc = PolicyDoc {
                api_version: output::API_VERSION,
                kind: "ClusterImagePolicy",
                metadata: Metadata { name: name.clone() },
                spec: PolicySpec {
                    images: images.clone(),
                    mode: options.mode,
                    on_error: crate::policy::OnError::Deny,
                    authorities,
                },
            };
            let body = serde_yaml::to_string(&doc).map_err(|source| ImportError::Render {
                name: name.clone(),
                source,
            })?;
            conversion.outputs.push(Output {
                file_stem: name.clone(),
                yaml: format!(
                    "# Converted by signet import ratify from {}.\n{body}",
                    sources.join(", ")
                ),
            });
            emitted.push((name, images, required, skip));
        }
        for (i, (a, ga, ka, sa)) in emitted.iter().enumerate() {
            for (b, gb, kb, sb) in &emitted[i + 1..] {
                // Policies for two required signature types apply together, as in Ratify; a
                // skip policy passes anyway.
                if ka != kb || *sa || *sb {
                    continue;
                }
                if let Some((x, y)) = ga
                    .iter()
                    .flat_map(|x| gb.iter().map(move |y| (x, y)))
                    .find(|(x, y)| overlaps(x, y))
                {
                    self.findings.push(Finding {
                        severity: Severity::Changed,
                        resource: format!("ClusterImagePolicy/{a}"),
                        field: String::new(),
                        message: format!(
                            "images matched by both {x:?} (policy {a}) and {y:?} (policy {b}) must satisfy both policies in signet; Ratify let one trust policy or one signature type decide (stricter)"
                        ),
                    });
                }
            }
        }
        self.azure(conversion)?;
        Ok(())
    }

    /// The `SignetConfig` carrying the Key Vault providers' identity.
    fn azure(&mut self, conversion: &mut Conversion) -> Result<(), ImportError> {
        let mut ids: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for p in self.providers.values() {
            if let Some(v) = &p.vault
                && seen.insert(p.id.clone())
            {
                ids.push((p.id.clone(), v.tenant.clone(), v.client.clone()));
            }
        }
        let Some((first, tenant, client)) = ids.first().cloned() else {
            return Ok(());
        };
        for (id, t, c) in &ids[1..] {
            if (t, c) != (&tenant, &client) {
                self.findings.push(Finding {
                    severity: Severity::Changed,
                    resource: id.clone(),
                    field: "spec.parameters.tenantID/clientID".into(),
                    message: format!(
                        "differs from {first}'s; signet reads every vault with one Azure identity (the one in SignetConfig, from {first}): grant it access to this vault too"
                    ),
                });
            }
        }
        for (store, c) in &self.store_clients {
            if client.as_ref().is_some_and(|k| k != c) {
                self.findings.push(Finding {
                    severity: Severity::Note,
                    resource: store.clone(),
                    field: "spec.parameters.authProvider.clientID".into(),
                    message: format!(
                        "differs from the Key Vault identity; signet uses one identity for the vault and the registry: grant {first}'s identity AcrPull"
                    ),
                });
            }
        }
        if tenant.is_none() || client.is_none() {
            self.findings.push(Finding {
                severity: Severity::Note,
                resource: first.clone(),
                field: "spec.parameters.tenantID/clientID".into(),
                message: "missing: signet takes them from the environment the workload-identity webhook injects (AZURE_TENANT_ID, AZURE_CLIENT_ID)".into(),
            });
        }
        let doc = ConfigDoc {
            api_version: output::API_VERSION,
            kind: "SignetConfig",
            metadata: Metadata {
                name: "signet".into(),
            },
            spec: ConfigSpec {
                azure: AzureOut {
                    tenant_id: tenant,
                    client_id: client,
                },
            },
        };
        let body = serde_yaml::to_string(&doc).map_err(|source| ImportError::Render {
            name: "signet-config".into(),
            source,
        })?;
        conversion.outputs.push(Output {
            file_stem: "signet-config".into(),
            yaml: format!(
                "# Converted by signet import ratify: the Azure identity of {first}. One SignetConfig per policy directory: merge it with yours.\n{body}"
            ),
        });
        Ok(())
    }
}

fn unique(taken: &mut BTreeSet<String>, base: &str) -> String {
    let base = if base.is_empty() { "ratify" } else { base };
    let mut name = base.to_string();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// Whether two globs may match a common image (a cheap over-approximation on their text).
fn overlaps(a: &str, b: &str) -> bool {
    if a == "**" || b == "**" || a == b {
        return true;
    }
    let stem = |g: &str| -> (String, bool) {
        let s = g.trim_end_matches("/**").trim_end_matches('*');
        (s.to_string(), s.len() != g.len())
    };
    let (x, xw) = stem(a);
    let (y, yw) = stem(b);
    (xw && b.starts_with(&x)) || (yw && a.starts_with(&y))
}
