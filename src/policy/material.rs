//! Trust material named by a policy (public keys, certificates, Sigstore trust roots), and the
//! [`Resolver`] that turns a name into bytes.
//!
//! A policy never says *how* to read its keys: each place that takes material holds a
//! [`MaterialSpec`] naming exactly one origin (`inline` text, a `file` relative to the policy
//! file, and the origins further sources add). The loaders in `policy::cosign` and
//! `policy::notation` ask the resolver for the bytes and parse them; they read no file and call
//! no API themselves. A source that keeps material fresh (a watched object store, a refreshed
//! secret store) answers from what it holds and bumps [`Resolver::version`] when that changes,
//! which makes the policy source load again: the new bytes go into the policy's generation, so
//! verdicts cached under the old material are not reused.
//!
//! Must not import `decision`, `registry`, `verify` or `server`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::keyvault::KeyVaultSpec;
use super::keyvault::KeyVaultStore;

/// Where one piece of trust material comes from. Exactly one field is set.
///
/// ```yaml
/// {inline: "-----BEGIN PUBLIC KEY-----..."}   # the material itself
/// {file: keys/release.pub}                    # relative to the policy file
/// {secretRef: {name: cosign, key: cosign.pub}}         # a watched Secret (--kubernetes)
/// {configMapRef: {name: ca, key: ca.crt, namespace: x}} # a watched ConfigMap (--kubernetes)
/// {keyVault: {vaultURI: https://v.vault.azure.net/, name: k}}   # Azure Key Vault
/// ```
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaterialSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A key of a Secret, read from signet's watch of Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectKeyRef>,
    /// A key of a ConfigMap, read from signet's watch of ConfigMaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ObjectKeyRef>,
    /// A Key Vault key (Cosign) or certificate (Notation), kept fresh by the Key Vault store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<KeyVaultSpec>,
}

/// A key of a Secret or ConfigMap. The namespace defaults to the policy's: an `ImagePolicy`'s
/// own, signet's for a `ClusterImagePolicy`; the tenant rules decide which others are allowed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ObjectKeyRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The kinds of object trust material can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Secret,
    ConfigMap,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "Secret",
            ObjectKind::ConfigMap => "ConfigMap",
        }
    }

    /// The field of a [`MaterialSpec`] that names it.
    pub fn field(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secretRef",
            ObjectKind::ConfigMap => "configMapRef",
        }
    }
}

/// The origin a [`MaterialSpec`] names, once it is known to name exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    Inline(&'a str),
    File(&'a str),
    Object(ObjectKind, &'a ObjectKeyRef),
    KeyVault(&'a KeyVaultSpec),
}

impl MaterialSpec {
    /// The field names, in the order messages list them.
    pub const FIELDS: &'static [&'static str] =
        &["inline", "file", "secretRef", "configMapRef", "keyVault"];

    pub fn inline(text: impl Into<String>) -> Self {
        MaterialSpec {
            inline: Some(text.into()),
            ..MaterialSpec::default()
        }
    }

    pub fn file(path: impl Into<String>) -> Self {
        MaterialSpec {
            file: Some(path.into()),
            ..MaterialSpec::default()
        }
    }

    /// The one origin this names, or an error listing the fields to choose from.
    pub fn reference(&self) -> Result<Reference<'_>, MaterialError> {
        let mut found = Vec::with_capacity(1);
        if let Some(text) = &self.inline {
            found.push(Reference::Inline(text));
        }
        if let Some(path) = &self.file {
            found.push(Reference::File(path));
        }
        if let Some(r) = &self.secret_ref {
            found.push(Reference::Object(ObjectKind::Secret, r));
        }
        if let Some(r) = &self.config_map_ref {
            found.push(Reference::Object(ObjectKind::ConfigMap, r));
        }
        if let Some(kv) = &self.key_vault {
            found.push(Reference::KeyVault(kv));
        }
        match found.as_slice() {
            [one] => Ok(*one),
            _ => Err(MaterialError::NotExactlyOne),
        }
    }
}

/// What the bytes are for: the resolver may convert (a key store's JSON key to PEM) or apply a
/// size limit that suits the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A PEM `PUBLIC KEY` (a Cosign key).
    PublicKey,
    /// One or more certificates, PEM or DER (a Notation trust store).
    Certificates,
    /// A Sigstore `trusted_root.json`.
    TrustRoot,
}

impl Want {
    fn what(self) -> &'static str {
        match self {
            Want::PublicKey => "key files",
            Want::Certificates => "certificate files",
            Want::TrustRoot => "trust roots",
        }
    }

    /// The largest material of this kind that is read; real ones are far smaller.
    pub fn max_len(self) -> u64 {
        match self {
            Want::PublicKey => 64 * 1024,
            Want::Certificates => 1024 * 1024,
            Want::TrustRoot => 8 * 1024 * 1024,
        }
    }
}

/// Where the reference is written: relative paths and namespace rules depend on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The directory of the policy file, for relative paths; `None` for policies that do not
    /// come from a file (they cannot name files).
    pub base: Option<&'a Path>,
    /// The namespace of an `ImagePolicy`; `None` for a `ClusterImagePolicy`.
    pub namespace: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A policy read from a file in `base`.
    pub fn file(base: &'a Path) -> Self {
        Context {
            base: Some(base),
            namespace: None,
        }
    }
}

/// Material as read, with how to name its origin in messages (`inline`, a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub bytes: Vec<u8>,
    pub shown: String,
    /// The source says this material is trusted no more (a disabled or deleted Key Vault
    /// version, or one unreadable for longer than allowed): `bytes` is empty, and the place
    /// that names it trusts nothing through it. Loaders skip it rather than fail, so that the
    /// policy loads without it instead of the previous policies (which trusted it) staying.
    pub withdrawn: bool,
}

impl Resolved {
    /// Material the source withdrew; `shown` says which and why.
    pub fn withdrawn(shown: String) -> Self {
        Resolved {
            bytes: Vec::new(),
            shown,
            withdrawn: true,
        }
    }
}

/// Why material could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("give exactly one of {}", one_of(MaterialSpec::FIELDS))]
    NotExactlyOne,
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {len} bytes, larger than the {max}-byte limit for {what}")]
    TooLarge {
        path: String,
        len: u64,
        max: u64,
        what: &'static str,
    },
    #[error("{path}: a file is named, but this policy does not come from a file")]
    NoBaseDirectory { path: String },
    #[error(
        "{field} needs signet serve --kubernetes (Secrets and ConfigMaps are read from the API server)"
    )]
    NoObjects { field: &'static str },
    /// The tenant rules forbid the reference.
    #[error(transparent)]
    NotAllowed(#[from] TenantError),
    /// The object or its key does not exist (or is not watched).
    #[error("{0}")]
    NotFound(String),
    /// Not read: the resolver has no objects and was told to accept references unchecked.
    #[error("{shown}: not checked here (signet serve --kubernetes reads it from the cluster)")]
    Unchecked { shown: String },
    #[error("{shown}: {detail}")]
    KeyVault { shown: String, detail: String },
    #[error(
        "keyVault material needs an Azure identity: set AZURE_TENANT_ID, AZURE_CLIENT_ID and \
         AZURE_FEDERATED_TOKEN_FILE (workload identity) or AZURE_CLIENT_SECRET"
    )]
    NoKeyVault,
}

/// Why the tenant rules refuse a Secret or ConfigMap reference: `field` is the reference's
/// field (`secretRef`, `configMapRef`), `own` signet's namespace (or the `ImagePolicy`'s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error(
        "{field}: an ImagePolicy may only reference objects in its own namespace {own:?}, not \
         {named:?}"
    )]
    OtherNamespace {
        field: &'static str,
        own: String,
        named: String,
    },
    #[error(
        "{field}: a cluster-wide policy may only reference objects in signet's namespace \
         {own:?} (--cluster-policy-namespace allows more), not {named:?}"
    )]
    NotClusterAllowed {
        field: &'static str,
        own: String,
        named: String,
    },
    #[error(
        "{field}: signet reads Secrets and ConfigMaps in {own:?} only; namespace {namespace:?} \
         needs --secrets-all-namespaces (and its RBAC component)"
    )]
    Unwatched {
        field: &'static str,
        own: String,
        namespace: String,
    },
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(fields: &[&str]) -> String {
    match fields {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Secrets and ConfigMaps as a material source (the Kubernetes policy source implements it
/// from its watches). It applies the tenant rules: which namespaces `cx` may read.
pub trait ObjectMaterial: Send + Sync + std::fmt::Debug {
    /// The bytes under `r.key`, and the object as named in messages (`Secret ns/name`).
    fn get(
        &self,
        kind: ObjectKind,
        r: &ObjectKeyRef,
        cx: &Context<'_>,
    ) -> Result<(Vec<u8>, String), MaterialError>;
    /// Changes whenever a watched object changes.
    fn version(&self) -> u64;
}

/// Turns a [`MaterialSpec`] into bytes. Inline text and files are always available; further
/// sources plug in here.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    objects: Option<std::sync::Arc<dyn ObjectMaterial>>,
    keyvault: Option<Arc<KeyVaultStore>>,
    /// `keyVault` references are checked, not fetched (`signet policy check`).
    keyvault_unfetched: bool,
    /// Secret and ConfigMap references are accepted without objects to read them from, as
    /// [`MaterialError::Unchecked`] (`signet policy check`).
    objects_unchecked: bool,
}

impl Resolver {
    /// Inline material and files only.
    pub fn files() -> Self {
        Resolver::default()
    }

    /// Also Secrets and ConfigMaps, from `objects`.
    pub fn with_objects(mut self, objects: std::sync::Arc<dyn ObjectMaterial>) -> Self {
        self.objects = Some(objects);
        self
    }

    /// Checks `keyVault` references (syntax, and a key for Cosign, a certificate for Notation)
    /// without fetching them: they load as withdrawn material. For checking policies offline.
    pub fn key_vault_unfetched(mut self) -> Self {
        self.keyvault_unfetched = true;
        self
    }

    /// Accepts Secret and ConfigMap references without reading them: each is an
    /// [`MaterialError::Unchecked`], which loading treats like a missing object (the policy
    /// loads without the authority, and the reference is listed). For checking policies
    /// offline.
    pub fn objects_unchecked(mut self) -> Self {
        self.objects_unchecked = true;
        self
    }

    /// Also answers `keyVault` references, from `store`.
    pub fn with_key_vault(mut self, store: Arc<KeyVaultStore>) -> Self {
        self.keyvault = Some(store);
        self
    }

    /// The bytes `spec` names.
    pub fn resolve(
        &self,
        spec: &MaterialSpec,
        want: Want,
        cx: &Context<'_>,
    ) -> Result<Resolved, MaterialError> {
        match spec.reference()? {
            Reference::Inline(text) => Ok(Resolved {
                bytes: text.as_bytes().to_vec(),
                shown: "inline".into(),
                withdrawn: false,
            }),
            Reference::KeyVault(kv) => match &self.keyvault {
                Some(store) => store.resolve(kv, want),
                None if self.keyvault_unfetched => {
                    let entry = super::keyvault::entry_for(kv, want)?;
                    Ok(Resolved::withdrawn(format!(
                        "{} (not fetched)",
                        entry.object
                    )))
                }
                None => Err(MaterialError::NoKeyVault),
            },
            Reference::File(path) => {
                let full = self.path(path, cx)?;
                let bytes = read_limited(&full, want)?;
                Ok(Resolved {
                    bytes,
                    shown: full.display().to_string(),
                    withdrawn: false,
                })
            }
            Reference::Object(kind, r) => {
                let objects = match &self.objects {
                    Some(objects) => objects,
                    None if self.objects_unchecked => {
                        let ns = r
                            .namespace
                            .as_ref()
                            .map_or(String::new(), |n| format!("{n}/"));
                        return Err(MaterialError::Unchecked {
                            shown: format!("{} {ns}{} key {:?}", kind.as_str(), r.name, r.key),
                        });
                    }
                    None => {
                        return Err(MaterialError::NoObjects {
                            field: kind.field(),
                        });
                    }
                };
                let (bytes, shown) = objects.get(kind, r, cx)?;
                let max = want.max_len();
                if bytes.len() as u64 > max {
                    return Err(MaterialError::TooLarge {
                        path: shown,
                        len: bytes.len() as u64,
                        max,
                        what: want.what(),
                    });
                }
                Ok(Resolved {
                    bytes,
                    shown,
                    withdrawn: false,
                })
            }
        }
    }

    /// A path relative to the policy file, for material that only files can hold (a Notation
    /// trust-store directory).
    pub fn path(&self, path: &str, cx: &Context<'_>) -> Result<PathBuf, MaterialError> {
        match cx.base {
            Some(base) => Ok(base.join(path)),
            None => Err(MaterialError::NoBaseDirectory { path: path.into() }),
        }
    }

    /// Changes whenever material this resolver answers from may have changed (inline text and
    /// files never move it: file changes are seen by the directory source itself; the Key
    /// Vault store moves it when a refresh changed an answer).
    pub fn version(&self) -> u64 {
        self.objects.as_ref().map_or(0, |o| o.version())
            + self.keyvault.as_ref().map_or(0, |k| k.version())
    }
}

/// Reads a file of at most `want.max_len()` bytes.
pub fn read_limited(path: &Path, want: Want) -> Result<Vec<u8>, MaterialError> {
    let shown = || path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| MaterialError::Read {
        path: shown(),
        source,
    })?;
    let max = want.max_len();
    if meta.len() > max {
        return Err(MaterialError::TooLarge {
            path: shown(),
            len: meta.len(),
            max,
            what: want.what(),
        });
    }
    std::fs::read(path).map_err(|source| MaterialError::Read {
        path: shown(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_origin() {
        let both = MaterialSpec {
            inline: Some("x".into()),
            file: Some("y".into()),
            ..MaterialSpec::default()
        };
        assert_eq!(
            both.reference().unwrap_err().to_string(),
            "give exactly one of inline, file, secretRef, configMapRef or keyVault"
        );
        assert!(MaterialSpec::default().reference().is_err());
        assert_eq!(
            MaterialSpec::file("k.pub").reference().unwrap(),
            Reference::File("k.pub")
        );
    }

    #[test]
    fn files_are_relative_to_the_policy_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pub"), b"key").unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; 70 * 1024]).unwrap();
        let r = Resolver::files();
        let cx = Context::file(dir.path());
        let got = r
            .resolve(&MaterialSpec::file("k.pub"), Want::PublicKey, &cx)
            .unwrap();
        assert_eq!(got.bytes, b"key");
        assert!(got.shown.ends_with("k.pub"));
        let e = r
            .resolve(&MaterialSpec::file("big"), Want::PublicKey, &cx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("larger than the 65536-byte limit for key files"),
            "{e}"
        );
        let e = r
            .resolve(&MaterialSpec::file("missing"), Want::PublicKey, &cx)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn a_policy_without_a_file_cannot_name_files() {
        let e = Resolver::files()
            .resolve(
                &MaterialSpec::file("k.pub"),
                Want::PublicKey,
                &Context::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not come from a file"), "{e}");
        let inline = Resolver::files()
            .resolve(
                &MaterialSpec::inline("pem"),
                Want::PublicKey,
                &Context::default(),
            )
            .unwrap();
        assert_eq!(inline.shown, "inline");
    }
}
