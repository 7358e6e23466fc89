//! The `cosign` authority: which public keys and which keyless identities are trusted.
//!
//! Keys are parsed at load time so that a bad key is a load error naming the file and line, not
//! a failure at admission time. What is kept is the DER `SubjectPublicKeyInfo` and its algorithm;
//! `verify::cosign` builds verifiers from that. Keyless identities are compiled once: regular
//! expressions are always anchored (`^(?:…)$`), so `.*@example.com` can never match
//! `evil@example.com.attacker`. Keys and the Sigstore trust root come from the policy's
//! [`Resolver`] (inline text, files, and further sources); nothing is fetched at admission time.
//!
//! Like `policy`: must not import `registry` or `verify`.

pub mod trust_root;

use std::collections::BTreeMap;
use std::sync::Arc;

use der::Decode;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use super::material::{Context, MaterialError, MaterialSpec, Resolver, Want};
use crate::image::Digest;
pub use trust_root::{TrustRoot, TrustRootError};

/// The YAML form:
///
/// ```yaml
/// cosign:
///   keys: [{inline: PEM} | {file: path}]
///   keyless:
///     identities: [{issuer: …, subject: …} | {issuerRegExp: …, subjectRegExp: …}]
///     trustRoot: {file: trusted_root.json}
///     ctlog: {required: true}      # embedded SCT check (default true)
///   tlog: {required: true}         # default: true with keyless, false with keys only
/// ```
///
/// `keys` and `keyless` may both be present; any signature satisfying either suffices.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CosignSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog: Option<TlogSpec>,
}

/// Keyless (Fulcio certificate) signatures: who may sign, and the trust root.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeylessSpec {
    pub identities: Vec<IdentitySpec>,
    pub trust_root: MaterialSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtlogSpec>,
}

/// One trusted signer identity. Both parts are required: an issuer (`issuer` exact or
/// `issuerRegExp`) and a subject (`subject` exact or `subjectRegExp`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

/// Transparency-log (Rekor) requirement for key-based signatures. Keyless signatures always
/// need a verified Rekor entry whatever this says: it binds the signature to the public log
/// and, for `.sig` signatures, is their only trusted signing time (bundles may add RFC 3161
/// timestamps). Relaxing it for keyless would mean trusting certificates nobody can audit.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlogSpec {
    pub required: bool,
}

/// Certificate-transparency (SCT) requirement for keyless certificates.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CtlogSpec {
    pub required: bool,
}

/// One trusted public key: where its PEM comes from (see [`MaterialSpec`]), and whether RSA-PSS
/// signatures by it count.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySpec {
    #[serde(flatten)]
    pub material: MaterialSpec,
    /// Accept RSA-PSS signatures (SHA-256, salt length 32) by this RSA key besides PKCS#1 v1.5.
    /// Off by default: `cosign verify --key` accepts PKCS#1 v1.5 only, and signet's verdicts
    /// agree with cosign's unless a key says otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rsa_pss: bool,
    /// Fields nothing above knows. Kept so that a misspelt field is a load error naming it
    /// (the strict parsing every other part of a policy gets), which `flatten` cannot give.
    #[serde(flatten, skip_serializing)]
    #[schemars(skip)]
    pub unknown: BTreeMap<String, serde_yaml::Value>,
}

impl KeySpec {
    pub fn material(material: MaterialSpec) -> Self {
        KeySpec {
            material,
            ..KeySpec::default()
        }
    }
}

/// Why a `cosign` authority could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cosign needs keys or keyless (or both)")]
    Empty,
    #[error("cosign.keys[{index}]: {source}")]
    KeyMaterial {
        index: usize,
        #[source]
        source: MaterialError,
    },
    #[error("cosign.keys[{index}]: unknown field `{field}`, expected one of {expected}")]
    KeyField {
        index: usize,
        field: String,
        expected: String,
    },
    #[error("cosign.keys[{index}]: {shown} is not PEM text")]
    KeyText { index: usize, shown: String },
    #[error("cosign.keys[{index}]: {source}")]
    Key {
        index: usize,
        #[source]
        source: KeyError,
    },
    #[error("cosign.keys[{index}]: rsaPss applies to RSA keys only; this key is {algorithm}")]
    RsaPssNotRsa {
        index: usize,
        algorithm: &'static str,
    },
    #[error("cosign.keyless.identities is empty: list at least one issuer and subject")]
    NoIdentities,
    #[error("cosign.keyless.identities[{index}]: give exactly one of {a} or {b}")]
    IdentityPart {
        index: usize,
        a: &'static str,
        b: &'static str,
    },
    #[error("cosign.keyless.identities[{index}].{field}: invalid regular expression: {source}")]
    Regex {
        index: usize,
        field: &'static str,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("cosign.keyless.identities[{index}].{field} is empty")]
    EmptyIdentity { index: usize, field: &'static str },
    #[error("cosign.keyless.trustRoot: {source}")]
    TrustRootMaterial {
        #[source]
        source: MaterialError,
    },
    #[error("cosign.keyless.trustRoot {path}: {source}")]
    TrustRoot {
        path: String,
        #[source]
        source: TrustRootError,
    },
    #[error(
        "cosign.keyless.trustRoot {path}: no certificateAuthorities, so no certificate can be trusted"
    )]
    NoCertificateAuthorities { path: String },
    #[error(
        "cosign.keyless.trustRoot {path}: no tlogs, but keyless signatures need a Rekor entry for their signing time"
    )]
    NoTlogs { path: String },
    #[error(
        "cosign.keyless.trustRoot {path}: no ctlogs, but SCTs are required (set keyless.ctlog.required: false to skip them)"
    )]
    NoCtlogs { path: String },
    #[error(
        "cosign.tlog.required for key-based signatures needs the Rekor keys of a trust root: add keyless.trustRoot"
    )]
    TlogWithoutTrustRoot,
}

/// A trusted Cosign authority, parsed: keys, keyless identities, or both.
#[derive(Debug, Clone)]
pub struct CosignAuthority {
    pub keys: Vec<PublicKey>,
    /// Keyless (Fulcio) verification, when configured.
    pub keyless: Option<Keyless>,
    /// Whether key-based signatures need a verified Rekor entry too. Keyless signatures always
    /// need one: it binds the signature to the public log and gives `.sig` signatures their time.
    pub tlog_required: bool,
    /// The trust root (Rekor keys for key-based tlog checks, Fulcio CAs for keyless).
    pub trust_root: Option<Arc<TrustRoot>>,
}

/// Compiled keyless settings.
#[derive(Debug, Clone)]
pub struct Keyless {
    pub identities: Vec<Identity>,
    /// Whether the leaf must carry a valid embedded SCT from a `ctlogs` key.
    pub ctlog_required: bool,
}

/// One trusted identity: an issuer and a subject matcher.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
}

/// Exact string, or a regular expression anchored at both ends.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    /// Compiled from `^(?:…)$`; `source` is what the policy wrote.
    Regex {
        source: String,
        regex: regex::Regex,
    },
}

impl Matcher {
    /// An anchored matcher for `pattern`. Wrapping in `^(?:…)$` anchors even patterns with a
    /// top-level alternation (`a|b` must not become `^a|b$`). The pattern is first compiled on
    /// its own: a pattern with unbalanced parentheses such as `x)|(.*` would otherwise close the
    /// wrapper group and turn into `^(?:x)|(.*)$`, which matches everything.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(pattern)?;
        let regex = regex::Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(Matcher::Regex {
            source: pattern.to_string(),
            regex,
        })
    }

    /// Whether `value` is matched in full.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex { regex, .. } => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex { source, .. } => write!(f, "/{source}/"),
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "issuer {} subject {}", self.issuer, self.subject)
    }
}

/// Public-key algorithms signet verifies Cosign signatures with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::EcdsaP521 => "ecdsa-p521",
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// Why a Cosign public key (PEM or DER `SubjectPublicKeyInfo`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM block (expected -----BEGIN PUBLIC KEY-----)")]
    NotPem,
    /// Pasting `cosign.key` instead of `cosign.pub` is the common mistake.
    #[error("this is a private key ({label}); the policy needs the public key (cosign.pub)")]
    PrivateKey { label: String },
    #[error("this is a certificate; the policy needs a PEM PUBLIC KEY")]
    Certificate,
    #[error("PEM block {label:?} is not a PUBLIC KEY")]
    OtherBlock { label: String },
    #[error("cannot read the PEM public key: {0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("not a valid SubjectPublicKeyInfo: {0}")]
    Spki(#[source] der::Error),
    #[error("EC key without a named curve")]
    NoNamedCurve,
    #[error("EC curve {oid} is not supported (P-256, P-384, P-521 are)")]
    Curve { oid: String },
    #[error("key algorithm {oid} is not supported")]
    Algorithm { oid: String },
}

/// One trusted public key.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// DER `SubjectPublicKeyInfo`.
    pub der: Vec<u8>,
    pub algorithm: KeyAlgorithm,
    /// SHA-256 of the DER, to name the key in messages without printing it.
    pub fingerprint: Digest,
    /// RSA-PSS signatures count too (`rsaPss: true` on the key entry); PKCS#1 v1.5 only
    /// otherwise, as cosign.
    pub rsa_pss: bool,
}

impl PublicKey {
    /// Parses one PEM `PUBLIC KEY`. Private keys and certificates are rejected by name, since
    /// pasting the wrong file is the common mistake.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let label = pem
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"));
        match label {
            None => return Err(KeyError::NotPem),
            Some("PUBLIC KEY") => {}
            Some(l) if l.contains("PRIVATE KEY") => {
                return Err(KeyError::PrivateKey { label: l.into() });
            }
            Some("CERTIFICATE") => {
                return Err(KeyError::Certificate);
            }
            Some(l) => return Err(KeyError::OtherBlock { label: l.into() }),
        }
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(KeyError::Pem)?;
        Self::from_der(der.as_ref())
    }

    /// Parses a DER `SubjectPublicKeyInfo`.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der).map_err(KeyError::Spki)?;
        let oid = spki.algorithm.oid.to_string();
        let algorithm = match oid.as_str() {
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .ok_or(KeyError::NoNamedCurve)?;
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => KeyAlgorithm::EcdsaP256,
                    "1.3.132.0.34" => KeyAlgorithm::EcdsaP384,
                    "1.3.132.0.35" => KeyAlgorithm::EcdsaP521,
                    c => {
                        return Err(KeyError::Curve { oid: c.into() });
                    }
                }
            }
            "1.2.840.113549.1.1.1" => KeyAlgorithm::Rsa,
            "1.3.101.112" => KeyAlgorithm::Ed25519,
            o => return Err(KeyError::Algorithm { oid: o.into() }),
        };
        Ok(PublicKey {
            der: der.to_vec(),
            algorithm,
            fingerprint: Digest::sha256_of(der),
            rsa_pss: false,
        })
    }
}

impl CosignAuthority {
    /// An authority of keys only, without a transparency-log requirement (for tests).
    #[cfg(test)]
    pub(crate) fn from_keys(keys: Vec<PublicKey>) -> Self {
        CosignAuthority {
            keys,
            keyless: None,
            tlog_required: false,
            trust_root: None,
        }
    }

    /// Resolves a spec, asking `resolver` for the keys and the trust root. Returns the
    /// authority and the bytes that identify it (for the policy generation hash).
    pub fn load(
        spec: &CosignSpec,
        resolver: &Resolver,
        cx: &Context<'_>,
    ) -> Result<(Self, Vec<u8>), LoadError> {
        if spec.keys.is_empty() && spec.keyless.is_none() {
            return Err(LoadError::Empty);
        }
        let mut keys = Vec::with_capacity(spec.keys.len());
        let mut material = Vec::new();
        for (index, entry) in spec.keys.iter().enumerate() {
            if let Some(field) = entry.unknown.keys().next() {
                return Err(LoadError::KeyField {
                    index,
                    field: field.clone(),
                    expected: [MaterialSpec::FIELDS, &["rsaPss"]].concat().join(", "),
                });
            }
            let found = resolver
                .resolve(&entry.material, Want::PublicKey, cx)
                .map_err(|source| LoadError::KeyMaterial { index, source })?;
            if found.withdrawn {
                // Trusted no more: the authority loads without it (and trusts nothing through
                // it), rather than the previous policies, which trusted it, staying in force.
                material.extend_from_slice(found.shown.as_bytes());
                continue;
            }
            let pem = String::from_utf8(found.bytes).map_err(|_| LoadError::KeyText {
                index,
                shown: found.shown.clone(),
            })?;
            let mut key =
                PublicKey::from_pem(&pem).map_err(|source| LoadError::Key { index, source })?;
            if entry.rsa_pss {
                if key.algorithm != KeyAlgorithm::Rsa {
                    return Err(LoadError::RsaPssNotRsa {
                        index,
                        algorithm: key.algorithm.as_str(),
                    });
                }
                key.rsa_pss = true;
                material.extend_from_slice(b"rsaPss");
            }
            material.extend_from_slice(&key.der);
            keys.push(key);
        }
        let (keyless, trust_root) = match &spec.keyless {
            None => (None, None),
            Some(k) => {
                let (keyless, root, bytes) = load_keyless(k, resolver, cx)?;
                material.extend_from_slice(&bytes);
                (Some(keyless), Some(Arc::new(root)))
            }
        };
        let tlog_required = spec.tlog.as_ref().map_or(keyless.is_some(), |t| t.required);
        if tlog_required && !keys.is_empty() && trust_root.is_none() {
            return Err(LoadError::TlogWithoutTrustRoot);
        }
        material.push(u8::from(tlog_required));
        Ok((
            CosignAuthority {
                keys,
                keyless,
                tlog_required,
                trust_root,
            },
            material,
        ))
    }
}

fn load_keyless(
    spec: &KeylessSpec,
    resolver: &Resolver,
    cx: &Context<'_>,
) -> Result<(Keyless, TrustRoot, Vec<u8>), LoadError> {
    if spec.identities.is_empty() {
        return Err(LoadError::NoIdentities);
    }
    let mut identities = Vec::with_capacity(spec.identities.len());
    for (index, id) in spec.identities.iter().enumerate() {
        let part = |exact: &Option<String>,
                    re: &Option<String>,
                    a: &'static str,
                    b: &'static str|
         -> Result<Matcher, LoadError> {
            match (exact, re) {
                (Some(s), None) if s.is_empty() => {
                    Err(LoadError::EmptyIdentity { index, field: a })
                }
                (Some(s), None) => Ok(Matcher::Exact(s.clone())),
                (None, Some(r)) if r.is_empty() => {
                    Err(LoadError::EmptyIdentity { index, field: b })
                }
                (None, Some(r)) => Matcher::regex(r).map_err(|source| LoadError::Regex {
                    index,
                    field: b,
                    source: Box::new(source),
                }),
                _ => Err(LoadError::IdentityPart { index, a, b }),
            }
        };
        identities.push(Identity {
            issuer: part(&id.issuer, &id.issuer_reg_exp, "issuer", "issuerRegExp")?,
            subject: part(&id.subject, &id.subject_reg_exp, "subject", "subjectRegExp")?,
        });
    }
    let found = resolver
        .resolve(&spec.trust_root, Want::TrustRoot, cx)
        .map_err(|source| LoadError::TrustRootMaterial { source })?;
    let (shown, bytes) = (found.shown, found.bytes);
    let root = TrustRoot::from_json(&bytes).map_err(|source| LoadError::TrustRoot {
        path: shown.clone(),
        source,
    })?;
    if root.certificate_authorities.is_empty() {
        return Err(LoadError::NoCertificateAuthorities { path: shown });
    }
    if root.tlogs.is_empty() {
        return Err(LoadError::NoTlogs { path: shown });
    }
    let ctlog_required = spec.ctlog.as_ref().is_none_or(|c| c.required);
    if ctlog_required && root.ctlogs.is_empty() {
        return Err(LoadError::NoCtlogs { path: shown });
    }
    Ok((
        Keyless {
            identities,
            ctlog_required,
        },
        root,
        bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    /// A minimal trusted_root.json with one CA, one Rekor key and optionally one CT key.
    fn trusted_root_json(with_ctlog: bool) -> String {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = STANDARD.encode(rcgen::PublicKeyData::subject_public_key_info(&kp));
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = STANDARD.encode(params.self_signed(&kp).unwrap().der());
        let log = format!(
            r#"{{"baseUrl": "https://log.test", "hashAlgorithm": "SHA2_256",
                "publicKey": {{"rawBytes": "{key}", "keyDetails": "PKIX_ECDSA_P256_SHA_256"}},
                "logId": {{"keyId": "AAEC"}}}}"#
        );
        let ctlogs = if with_ctlog {
            log.clone()
        } else {
            String::new()
        };
        format!(
            r#"{{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{log}],
                "certificateAuthorities": [{{"subject": {{"commonName": "ca"}},
                    "certChain": {{"certificates": [{{"rawBytes": "{cert}"}}]}}}}],
                "ctlogs": [{ctlogs}], "timestampAuthorities": []}}"#
        )
    }

    fn spec(yaml: &str) -> CosignSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn dir_with_root(with_ctlog: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("trusted_root.json"),
            trusted_root_json(with_ctlog),
        )
        .unwrap();
        dir
    }

    #[test]
    fn keyless_spec_loads_with_anchored_regexes_and_defaults() {
        let dir = dir_with_root(true);
        let s = spec(
            "keyless:\n  identities:\n    - {issuer: https://accounts.example.com, subject: a@example.com}\n    - {issuerRegExp: 'https://token\\.actions\\..*', subjectRegExp: '.*@example\\.com'}\n  trustRoot: {file: trusted_root.json}\n",
        );
        let (auth, material) =
            CosignAuthority::load(&s, &Resolver::files(), &Context::file(dir.path())).unwrap();
        assert!(auth.keys.is_empty());
        assert!(auth.tlog_required, "tlog defaults to required with keyless");
        let keyless = auth.keyless.as_ref().unwrap();
        assert!(keyless.ctlog_required, "SCTs default to required");
        assert_eq!(keyless.identities.len(), 2);
        let re = &keyless.identities[1].subject;
        assert!(re.matches("x@example.com"));
        assert!(!re.matches("evil@example.com.attacker"));
        assert!(!re.matches("x@example.com\n"));
        assert!(keyless.identities[0].subject.matches("a@example.com"));
        // A pattern that tries to close the anchoring group is refused, not widened.
        assert!(Matcher::regex("x)|(.*").is_err());
        assert!(
            Matcher::regex("(?m).*@example\\.com")
                .unwrap()
                .matches("a@example.com")
        );
        assert!(
            !Matcher::regex("(?m).*@example\\.com")
                .unwrap()
                .matches("a@example.com\nb")
        );
        assert!(!keyless.identities[0].subject.matches("A@example.com"));
        assert!(!material.is_empty());
    }

    #[test]
    fn keys_and_keyless_together_and_tlog_settings() {
        let dir = dir_with_root(false);
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("cosign.pub"), kp.public_key_pem()).unwrap();
        let s = spec(
            "keys: [{file: cosign.pub}]\nkeyless:\n  identities: [{issuer: i, subject: s}]\n  trustRoot: {file: trusted_root.json}\n  ctlog: {required: false}\ntlog: {required: false}\n",
        );
        let (auth, _) =
            CosignAuthority::load(&s, &Resolver::files(), &Context::file(dir.path())).unwrap();
        assert_eq!(auth.keys.len(), 1);
        assert!(!auth.tlog_required);
        assert!(!auth.keyless.unwrap().ctlog_required);
        // Keys only: no tlog by default (compatible with existing key policies); asking for
        // one without a trust root is an error.
        let (auth, _) = CosignAuthority::load(
            &spec("keys: [{file: cosign.pub}]\n"),
            &Resolver::files(),
            &Context::file(dir.path()),
        )
        .unwrap();
        assert!(!auth.tlog_required);
        let err = CosignAuthority::load(
            &spec("keys: [{file: cosign.pub}]\ntlog: {required: true}\n"),
            &Resolver::files(),
            &Context::file(dir.path()),
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::TlogWithoutTrustRoot), "{err}");
    }

    #[test]
    fn keyless_spec_errors_are_precise() {
        let dir = dir_with_root(false);
        let load = |y: &str| {
            CosignAuthority::load(&spec(y), &Resolver::files(), &Context::file(dir.path()))
                .unwrap_err()
                .to_string()
        };
        let root = "  trustRoot: {file: trusted_root.json}\n  ctlog: {required: false}\n";
        let e = load(&format!(
            "keyless:\n  identities: [{{issuer: i, subjectRegExp: 'a(b'}}]\n{root}"
        ));
        assert!(
            e.contains("identities[0].subjectRegExp: invalid regular expression"),
            "{e}"
        );
        let e = load(&format!("keyless:\n  identities: [{{issuer: i}}]\n{root}"));
        assert!(e.contains("exactly one of subject or subjectRegExp"), "{e}");
        let e = load(&format!(
            "keyless:\n  identities: [{{issuer: i, issuerRegExp: j, subject: s}}]\n{root}"
        ));
        assert!(e.contains("exactly one of issuer or issuerRegExp"), "{e}");
        let e = load(&format!(
            "keyless:\n  identities: [{{issuer: '', subject: s}}]\n{root}"
        ));
        assert!(e.contains("identities[0].issuer is empty"), "{e}");
        let e = load(&format!("keyless:\n  identities: []\n{root}"));
        assert!(e.contains("identities is empty"), "{e}");
        let e = load(
            "keyless:\n  identities: [{issuer: i, subject: s}]\n  trustRoot: {file: missing.json}\n",
        );
        assert!(
            e.contains("cannot read") && e.contains("missing.json"),
            "{e}"
        );
        std::fs::write(dir.path().join("bad.json"), "{\"mediaType\": 1}").unwrap();
        let e = load(
            "keyless:\n  identities: [{issuer: i, subject: s}]\n  trustRoot: {file: bad.json}\n",
        );
        assert!(
            e.contains("bad.json") && e.contains("trusted_root.json shape"),
            "{e}"
        );
        // SCTs are required by default, and this trust root has no CT log.
        let e = load(
            "keyless:\n  identities: [{issuer: i, subject: s}]\n  trustRoot: {file: trusted_root.json}\n",
        );
        assert!(e.contains("no ctlogs"), "{e}");
        assert!(load("{}").contains("keys or keyless"));
        // Unknown fields are errors, not silently ignored.
        assert!(
            serde_yaml::from_str::<CosignSpec>(
                "keyless: {identities: [], trustRoot: {file: x}, rekor: {}}"
            )
            .is_err()
        );
        assert!(
            serde_yaml::from_str::<CosignSpec>(
                "keyless: {identities: [{issuer: i, subject: s, sub: x}], trustRoot: {file: x}}"
            )
            .is_err()
        );
    }

    /// `rsaPss: true` opts one RSA key into RSA-PSS signatures, changes the generation
    /// material, and is refused on a key that is not RSA.
    #[test]
    fn rsa_pss_is_opt_in_per_rsa_key() {
        let dir = tempfile::tempdir().unwrap();
        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join("rsa.pub"), rsa.public_key_pem()).unwrap();
        std::fs::write(dir.path().join("ec.pub"), ec.public_key_pem()).unwrap();
        let load = |yaml: &str| {
            CosignAuthority::load(&spec(yaml), &Resolver::files(), &Context::file(dir.path()))
        };
        let (plain, plain_bytes) = load("keys: [{file: rsa.pub}]\n").unwrap();
        assert!(!plain.keys[0].rsa_pss);
        let (pss, pss_bytes) = load("keys: [{file: rsa.pub, rsaPss: true}]\n").unwrap();
        assert!(pss.keys[0].rsa_pss);
        assert_ne!(plain_bytes, pss_bytes);
        let err = load("keys: [{file: ec.pub, rsaPss: true}]\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("rsaPss applies to RSA keys only; this key is ecdsa-p256"),
            "{err}"
        );
    }

    #[test]
    fn parses_generated_keys_and_rejects_wrong_pem() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = PublicKey::from_pem(&kp.public_key_pem()).unwrap();
        assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP256);
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            PublicKey::from_pem(&kp.public_key_pem()).unwrap().algorithm,
            KeyAlgorithm::EcdsaP384
        );
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(
            PublicKey::from_pem(&kp.public_key_pem()).unwrap().algorithm,
            KeyAlgorithm::Ed25519
        );

        let err = PublicKey::from_pem(&kp.serialize_pem()).unwrap_err();
        assert!(matches!(err, KeyError::PrivateKey { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "this is a private key (PRIVATE KEY); the policy needs the public key (cosign.pub)"
        );
        let err = PublicKey::from_pem("hello").unwrap_err();
        assert!(matches!(err, KeyError::NotPem), "{err:?}");
        assert_eq!(
            err.to_string(),
            "not a PEM block (expected -----BEGIN PUBLIC KEY-----)"
        );
        let err =
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .unwrap_err();
        assert!(matches!(err, KeyError::Spki(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("not a valid SubjectPublicKeyInfo: "),
            "{err}"
        );
    }

    /// The whole policy loader with a keyless authority: camelCase fields, the trust root read
    /// relative to the policy file, and a precise error with the authority name otherwise.
    #[test]
    fn keyless_policy_loads_through_the_policy_loader() {
        let dir = dir_with_root(true);
        let yaml = |identity: &str| {
            format!(
                "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: prod\nspec:\n  images: [\"registry.example.com/**\"]\n  authorities:\n    - name: release\n      cosign:\n        keyless:\n          identities:\n            - {identity}\n          trustRoot: {{file: trusted_root.json}}\n"
            )
        };
        let file = dir.path().join("p.yaml");
        let set = crate::policy::load_str(
            &file,
            &yaml("{issuer: https://token.actions.githubusercontent.com, subjectRegExp: 'https://github\\.com/org/.*'}"),
        )
        .unwrap();
        assert_eq!(set.policies.len(), 1);
        let errs =
            crate::policy::load_str(&file, &yaml("{issuer: i, subjectRegExp: '(('}")).unwrap_err();
        let msg = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            msg.contains("release") && msg.contains("subjectRegExp: invalid regular expression"),
            "{msg}"
        );
    }
}
