//! The `notation` authority: Notary Project trust-policy semantics (verification levels and
//! overrides, trust stores of type `ca`, `signingAuthority` and `tsa`, trusted identities).
//!
//! Two ways in, one result ([`NotationAuthority`]): the YAML `notation:` block of a signet
//! policy ([`NotationSpec`]), and an unchanged Notation `trustpolicy.json` plus its trust-store
//! directory ([`import_trust_policy`], in `notation/import.rs`). The YAML form:
//!
//! ```yaml
//! notation:
//!   signatureVerification: {level: strict, override: {revocation: log}}
//!   trustStores:
//!     - {type: ca, name: release, certificates: [{file: certs/release-ca.pem}, {inline: "-----BEGIN CERTIFICATE-----..."}]}
//!     - {type: tsa, name: tsa, directory: truststore/x509/tsa/tsa}
//!   trustedIdentities: ["x509.subject: C=US, ST=WA, O=Example, CN=release"]
//! ```
//!
//! `level` is `strict | permissive | audit | skip`; `override` maps `authenticity`,
//! `authenticTimestamp`, `expiry` to `enforce | log` and `revocation` to `enforce | log |
//! skip` (integrity cannot be overridden; `skip` takes no override, stores or identities);
//! `verifyTimestamp` is `always` (default) or `afterCertExpiry`. Paths are relative to the
//! policy file. Everything a verification needs
//! is read and validated here, at load time, so that a bad certificate or identity is a load
//! error with a precise message and never a surprise at admission time. No I/O after load.

mod dn;
mod import;

use std::path::{Path, PathBuf};

use der::Decode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_cert::Certificate;

use super::material::{Context, MaterialError, MaterialSpec, Resolver, Want};
pub use dn::{DistinguishedName, DnError};
pub use import::{
    ImportedStatement, RegistryScopes, ScopeError, TrustPolicyError, import_trust_policy,
};

/// The most certificates one trust store may hold.
const MAX_STORE_CERTS: usize = 1000;

/// The YAML form of a Notation authority, field names as in Notation's `trustpolicy.json`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NotationSpec {
    pub signature_verification: SignatureVerificationSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_stores: Vec<TrustStoreSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_identities: Vec<String>,
}

/// `signatureVerification: {level, override, verifyTimestamp}`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignatureVerificationSpec {
    pub level: Level,
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub overrides: Option<OverrideSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timestamp: Option<VerifyTimestamp>,
}

/// `override`: per-check actions replacing the level's defaults. `integrity` is accepted by
/// the parser only so that the load error can say why it is not allowed.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverrideSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticity: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentic_timestamp: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Action>,
}

/// A Notation verification level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Strict => "strict",
            Level::Permissive => "permissive",
            Level::Audit => "audit",
            Level::Skip => "skip",
        }
    }
}

/// What a failed check does: fail the signature, be recorded, or not run at all.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

/// When the RFC 3161 timestamp of a `notary.x509` signature is checked (trust policy 1.1).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum VerifyTimestamp {
    #[default]
    Always,
    AfterCertExpiry,
}

/// One trust store: certificates listed one by one, or a Notation trust-store directory.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustStoreSpec {
    #[serde(rename = "type")]
    pub kind: StoreType,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<MaterialSpec>,
    /// A directory of PEM or DER files (`.pem`, `.crt`, `.cer`), relative to the policy file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
}

/// Trust store types. `ca` roots `notary.x509` signatures, `signingAuthority` roots
/// `notary.x509.signingAuthority` signatures, `tsa` roots RFC 3161 timestamps.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
pub enum StoreType {
    #[serde(rename = "ca")]
    Ca,
    #[serde(rename = "signingAuthority")]
    SigningAuthority,
    #[serde(rename = "tsa")]
    Tsa,
}

impl StoreType {
    /// The name used in trust policies and as the trust-store directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreType::Ca => "ca",
            StoreType::SigningAuthority => "signingAuthority",
            StoreType::Tsa => "tsa",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ca" => Some(StoreType::Ca),
            "signingAuthority" => Some(StoreType::SigningAuthority),
            "tsa" => Some(StoreType::Tsa),
            _ => None,
        }
    }
}

/// A resolved Notation authority: everything verification needs, validated.
#[derive(Debug, Clone)]
pub struct NotationAuthority {
    pub level: Level,
    /// The effective action of each check after the level and its overrides.
    pub actions: Actions,
    pub verify_timestamp: VerifyTimestamp,
    pub trust_stores: Vec<TrustStore>,
    pub identities: TrustedIdentities,
}

/// The action of each check. Integrity has none: it is always enforced (unless the level is
/// `skip`, when nothing runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
    pub revocation: Action,
}

/// A named set of trusted certificates.
#[derive(Debug, Clone)]
pub struct TrustStore {
    pub kind: StoreType,
    pub name: String,
    pub certificates: Vec<TrustedCertificate>,
}

/// One certificate of a trust store.
#[derive(Debug, Clone)]
pub struct TrustedCertificate {
    pub der: Vec<u8>,
    /// The subject, for messages.
    pub subject: String,
    /// The end of its validity: trust that rests on it lapses then.
    pub not_after: std::time::SystemTime,
}

/// `trustedIdentities`: any signer the stores vouch for, or one of these subjects.
#[derive(Debug, Clone)]
pub enum TrustedIdentities {
    Any,
    Subjects(Vec<DistinguishedName>),
}

impl TrustedIdentities {
    /// Whether a leaf certificate subject is trusted.
    pub fn allows(&self, subject: &DistinguishedName) -> bool {
        match self {
            TrustedIdentities::Any => true,
            TrustedIdentities::Subjects(ids) => ids.iter().any(|id| id.is_subset_of(subject)),
        }
    }
}

/// Why a Notation authority (the YAML form or an imported `trustpolicy.json`) did not load.
/// The policy loader prefixes the message with the file and the authority it belongs to.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `signatureVerification` is inconsistent: level skip with checks to make, an override
    /// the trust-policy spec forbids, or a level that verifies with no trust store.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// One trust store is malformed or its certificates cannot be read.
    #[error("{at}: {source}")]
    Store {
        /// `trustStores[i] (type:name)`, or `trust policy "name"` for an imported store name.
        at: String,
        #[source]
        source: StoreError,
    },
    /// Every trust store is a tsa store, so no signing certificate can chain to any of them.
    #[error(
        "trustStores has only tsa stores: add a ca or signingAuthority store that signing \
         certificates chain to"
    )]
    OnlyTsaStores,
    /// `trustedIdentities` is empty, malformed or overlapping.
    #[error(transparent)]
    Identities(#[from] IdentityError),
    /// An imported `trustpolicy.json` is malformed (size, JSON, version, names, scopes).
    #[error(transparent)]
    TrustPolicy(#[from] import::TrustPolicyError),
    /// A statement of an imported `trustpolicy.json` did not load.
    #[error("{at}: {source}")]
    Statement {
        /// `trust policy "name"`.
        at: String,
        #[source]
        source: Box<LoadError>,
    },
}

/// Why one trust store did not load: its name, its certificate sources or its certificates.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the trust store name is empty")]
    EmptyName,
    #[error("trust store name {0:?} may only contain letters, digits, '_', '.' and '-'")]
    Name(String),
    #[error("this trust store is listed twice")]
    Twice,
    #[error("give certificates or a directory")]
    NoSource,
    #[error("certificates[{index}]: {source}")]
    Source {
        index: usize,
        #[source]
        source: MaterialError,
    },
    #[error("certificates[{index}] ({shown}): {source}")]
    Certificates {
        index: usize,
        /// Where the certificates came from, as the resolver shows it.
        shown: String,
        #[source]
        source: CertificateError,
    },
    #[error("directory: {0}")]
    DirectoryPath(#[source] MaterialError),
    #[error(transparent)]
    Directory(#[from] StoreDirError),
    #[error("the trust store holds no certificate")]
    Empty,
    #[error("the trust store holds {0} certificates, more than {MAX_STORE_CERTS}")]
    TooMany(usize),
}

/// Why a trust-store directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreDirError {
    #[error("cannot read trust store directory {}: {source}", .dir.display())]
    Stat {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("trust store directory {} is a symbolic link, which is not allowed", .0.display())]
    DirectoryLink(PathBuf),
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot list trust store directory {}: {source}", .dir.display())]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list {}: {source}", .dir.display())]
    Entry {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot stat {}: {source}", .path.display())]
    StatEntry {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is a symbolic link, which trust stores do not allow", .0.display())]
    FileLink(PathBuf),
    #[error(transparent)]
    Read(#[from] MaterialError),
    #[error("{}: {source}", .path.display())]
    Certificates {
        path: PathBuf,
        #[source]
        source: CertificateError,
    },
    #[error("trust store directory {} holds no .pem, .crt or .cer certificate", .0.display())]
    Empty(PathBuf),
}

/// Why bytes are not trusted certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("neither PEM nor DER")]
    NotPemOrDer,
    #[error("contains a private key; a trust store holds certificates only")]
    PrivateKey,
    #[error("cannot read the PEM certificate: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("no -----BEGIN CERTIFICATE----- block found")]
    NoCertificate,
    #[error("not a valid X.509 certificate: {0}")]
    X509(#[source] der::Error),
}

/// Why `signatureVerification` is inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error("signatureVerification: level skip cannot have an override")]
    SkipWithOverride,
    #[error("signatureVerification: level skip cannot have verifyTimestamp")]
    SkipWithVerifyTimestamp,
    #[error("level skip verifies nothing, so it cannot have trustStores")]
    SkipWithTrustStores,
    #[error("level skip verifies nothing, so it cannot have trustedIdentities")]
    SkipWithIdentities,
    #[error("level {} needs trustStores: list at least one ca or signingAuthority store", .0.as_str())]
    NoTrustStores(Level),
    #[error(
        "signatureVerification.override: integrity cannot be overridden (it is always enforced)"
    )]
    IntegrityOverride,
    #[error(
        "signatureVerification.override.{0}: skip is not allowed (use enforce or log; only \
         revocation can be skipped)"
    )]
    SkipOverride(&'static str),
}

/// Why `trustedIdentities` did not load.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "trustedIdentities is empty: list x509.subject identities, or \"*\" to trust any \
         signer the trust stores vouch for"
    )]
    Empty,
    #[error("trustedIdentities: \"*\" cannot be combined with other identities")]
    AnyWithOthers,
    #[error("trustedIdentities[{index}] {item:?}: identities must start with \"x509.subject:\"")]
    NotASubject { index: usize, item: String },
    #[error("trustedIdentities[{index}]: {source}")]
    Subject {
        index: usize,
        #[source]
        source: DnError,
    },
    #[error(
        "trustedIdentities[{index}] {item:?}: an identity must have C, ST and O; {required} is missing"
    )]
    Incomplete {
        index: usize,
        item: String,
        required: &'static str,
    },
    #[error(
        "trustedIdentities[{index}] overlaps trustedIdentities[{other}]: one certificate \
         subject would match both, which the trust-policy spec forbids"
    )]
    Overlap { index: usize, other: usize },
}

impl NotationAuthority {
    /// Resolves a spec, asking `resolver` for the trust stores' certificates. The returned
    /// bytes (the DER of every trusted certificate) go into the policy generation hash, so that
    /// replacing a certificate invalidates cached verdicts.
    pub fn load(
        spec: &NotationSpec,
        resolver: &Resolver,
        cx: &Context<'_>,
    ) -> Result<(Self, Vec<u8>), LoadError> {
        let sv = &spec.signature_verification;
        let level = sv.level;
        if level == Level::Skip {
            if sv.overrides.is_some() {
                return Err(VerificationError::SkipWithOverride.into());
            }
            if sv.verify_timestamp.is_some() {
                return Err(VerificationError::SkipWithVerifyTimestamp.into());
            }
            if !spec.trust_stores.is_empty() {
                return Err(VerificationError::SkipWithTrustStores.into());
            }
            if !spec.trusted_identities.is_empty() {
                return Err(VerificationError::SkipWithIdentities.into());
            }
            let authority = NotationAuthority {
                level,
                actions: Actions {
                    authenticity: Action::Skip,
                    authentic_timestamp: Action::Skip,
                    expiry: Action::Skip,
                    revocation: Action::Skip,
                },
                verify_timestamp: VerifyTimestamp::Always,
                trust_stores: Vec::new(),
                identities: TrustedIdentities::Any,
            };
            return Ok((authority, Vec::new()));
        }
        let actions = resolve_actions(level, sv.overrides.as_ref())?;

        if spec.trust_stores.is_empty() {
            return Err(VerificationError::NoTrustStores(level).into());
        }
        let mut stores: Vec<TrustStore> = Vec::with_capacity(spec.trust_stores.len());
        let mut material = Vec::new();
        for (i, s) in spec.trust_stores.iter().enumerate() {
            let at = format!("trustStores[{i}] ({}:{})", s.kind.as_str(), s.name);
            let store = validate_store_name(&s.name)
                .and_then(|()| {
                    if stores.iter().any(|t| t.kind == s.kind && t.name == s.name) {
                        return Err(StoreError::Twice);
                    }
                    load_store(s, resolver, cx)
                })
                .map_err(|source| LoadError::Store { at, source })?;
            for c in &store.certificates {
                material.extend_from_slice(&c.der);
            }
            stores.push(store);
        }
        if !stores
            .iter()
            .any(|s| matches!(s.kind, StoreType::Ca | StoreType::SigningAuthority))
        {
            return Err(LoadError::OnlyTsaStores);
        }
        let identities = parse_identities(&spec.trusted_identities)?;
        let authority = NotationAuthority {
            level,
            actions,
            verify_timestamp: sv.verify_timestamp.unwrap_or_default(),
            trust_stores: stores,
            identities,
        };
        Ok((authority, material))
    }

    /// The trusted certificates of every store of one type.
    pub fn certificates(&self, kind: StoreType) -> impl Iterator<Item = &TrustedCertificate> {
        self.trust_stores
            .iter()
            .filter(move |s| s.kind == kind)
            .flat_map(|s| s.certificates.iter())
    }

    /// Whether verification needs revocation material (CRLs) for chains that name it: only
    /// then does a check plan revocation fetches (`crate::verify::format::Plan`).
    pub fn checks_revocation(&self) -> bool {
        self.level != Level::Skip && self.actions.revocation != Action::Skip
    }

    /// Whether the authority has any store of this type.
    pub fn has_store(&self, kind: StoreType) -> bool {
        self.trust_stores.iter().any(|s| s.kind == kind)
    }
}

/// The level's default actions, with the overrides applied (per the trust-policy spec: integrity
/// cannot be overridden; only revocation may be skipped).
fn resolve_actions(level: Level, overrides: Option<&OverrideSpec>) -> Result<Actions, LoadError> {
    use Action::{Enforce, Log};
    let mut actions = match level {
        Level::Strict => Actions {
            authenticity: Enforce,
            authentic_timestamp: Enforce,
            expiry: Enforce,
            revocation: Enforce,
        },
        Level::Permissive => Actions {
            authenticity: Enforce,
            authentic_timestamp: Log,
            expiry: Log,
            revocation: Log,
        },
        Level::Audit | Level::Skip => Actions {
            authenticity: Log,
            authentic_timestamp: Log,
            expiry: Log,
            revocation: Log,
        },
    };
    let Some(o) = overrides else {
        return Ok(actions);
    };
    if o.integrity.is_some() {
        return Err(VerificationError::IntegrityOverride.into());
    }
    let no_skip = |name: &'static str, a: Option<Action>| -> Result<Option<Action>, LoadError> {
        if a == Some(Action::Skip) {
            return Err(VerificationError::SkipOverride(name).into());
        }
        Ok(a)
    };
    if let Some(a) = no_skip("authenticity", o.authenticity)? {
        actions.authenticity = a;
    }
    if let Some(a) = no_skip("authenticTimestamp", o.authentic_timestamp)? {
        actions.authentic_timestamp = a;
    }
    if let Some(a) = no_skip("expiry", o.expiry)? {
        actions.expiry = a;
    }
    if let Some(a) = o.revocation {
        actions.revocation = a;
    }
    Ok(actions)
}

/// Notation store names are file names: keep them to a safe character set.
fn validate_store_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::EmptyName);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        || name == "."
        || name == ".."
    {
        return Err(StoreError::Name(name.to_string()));
    }
    Ok(())
}

fn load_store(
    spec: &TrustStoreSpec,
    resolver: &Resolver,
    cx: &Context<'_>,
) -> Result<TrustStore, StoreError> {
    if spec.certificates.is_empty() && spec.directory.is_none() {
        return Err(StoreError::NoSource);
    }
    let mut certificates = Vec::new();
    let mut withdrawn = false;
    for (i, source) in spec.certificates.iter().enumerate() {
        let found = resolver
            .resolve(source, Want::Certificates, cx)
            .map_err(|source| StoreError::Source { index: i, source })?;
        if found.withdrawn {
            // Trusted no more: the store loads without it (see `Resolved::withdrawn`).
            withdrawn = true;
            continue;
        }
        certificates.extend(parse_certificates(&found.bytes).map_err(|source| {
            StoreError::Certificates {
                index: i,
                shown: found.shown.clone(),
                source,
            }
        })?);
    }
    if let Some(dir) = &spec.directory {
        let dir = resolver.path(dir, cx).map_err(StoreError::DirectoryPath)?;
        certificates.extend(read_store_dir(&dir)?);
    }
    if certificates.is_empty() && !withdrawn {
        return Err(StoreError::Empty);
    }
    if certificates.len() > MAX_STORE_CERTS {
        return Err(StoreError::TooMany(certificates.len()));
    }
    Ok(TrustStore {
        kind: spec.kind,
        name: spec.name.clone(),
        certificates,
    })
}

/// Reads a Notation trust-store directory: every `.pem`, `.crt` or `.cer` file directly in it.
/// Symbolic links are refused (the trust-store spec requires it: a link could point outside the
/// store an administrator reviewed); subdirectories and other files are ignored.
pub(crate) fn read_store_dir(dir: &Path) -> Result<Vec<TrustedCertificate>, StoreDirError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| StoreDirError::Stat {
        dir: dir.to_path_buf(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(StoreDirError::DirectoryLink(dir.to_path_buf()));
    }
    if !meta.is_dir() {
        return Err(StoreDirError::NotADirectory(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir).map_err(|source| StoreDirError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StoreDirError::Entry {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .map_err(|source| StoreDirError::StatEntry {
                path: path.clone(),
                source,
            })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("pem" | "crt" | "cer")) {
            continue;
        }
        if ft.is_symlink() {
            return Err(StoreDirError::FileLink(path));
        }
        if ft.is_file() {
            paths.push(path);
        }
    }
    // Sorted so that the generation hash does not depend on directory order.
    paths.sort();
    let mut certificates = Vec::new();
    for path in paths {
        let bytes = super::material::read_limited(&path, Want::Certificates)?;
        certificates.extend(
            parse_certificates(&bytes)
                .map_err(|source| StoreDirError::Certificates { path, source })?,
        );
    }
    if certificates.is_empty() {
        return Err(StoreDirError::Empty(dir.to_path_buf()));
    }
    Ok(certificates)
}

/// Parses one or more PEM certificates, or one DER certificate.
pub(crate) fn parse_certificates(
    bytes: &[u8],
) -> Result<Vec<TrustedCertificate>, CertificateError> {
    let ders: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| CertificateError::NotPemOrDer)?;
        if text.contains("PRIVATE KEY-----") {
            return Err(CertificateError::PrivateKey);
        }
        let mut ders = Vec::new();
        for item in CertificateDer::pem_slice_iter(bytes) {
            let der = item.map_err(CertificateError::Pem)?;
            ders.push(der.as_ref().to_vec());
        }
        if ders.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        ders
    };
    ders.into_iter()
        .map(|der| {
            let cert = Certificate::from_der(&der).map_err(CertificateError::X509)?;
            let subject = cert.tbs_certificate().subject().to_string();
            let not_after = cert.tbs_certificate().validity().not_after.to_system_time();
            Ok(TrustedCertificate {
                der,
                subject,
                not_after,
            })
        })
        .collect()
}

fn parse_identities(list: &[String]) -> Result<TrustedIdentities, LoadError> {
    if list.is_empty() {
        return Err(IdentityError::Empty.into());
    }
    if list.iter().any(|s| s.trim() == "*") {
        if list.len() > 1 {
            return Err(IdentityError::AnyWithOthers.into());
        }
        return Ok(TrustedIdentities::Any);
    }
    let mut subjects: Vec<DistinguishedName> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(dn) = item.trim().strip_prefix("x509.subject:") else {
            return Err(IdentityError::NotASubject {
                index: i,
                item: item.clone(),
            }
            .into());
        };
        let dn = DistinguishedName::parse(dn.trim())
            .map_err(|source| IdentityError::Subject { index: i, source })?;
        for required in ["C", "ST", "O"] {
            if dn.get(required).is_none() {
                return Err(IdentityError::Incomplete {
                    index: i,
                    item: item.clone(),
                    required,
                }
                .into());
            }
        }
        if let Some(j) = subjects
            .iter()
            .position(|o| o.is_subset_of(&dn) || dn.is_subset_of(o))
        {
            return Err(IdentityError::Overlap { index: i, other: j }.into());
        }
        subjects.push(dn);
    }
    Ok(TrustedIdentities::Subjects(subjects))
}

#[cfg(test)]
mod tests;
