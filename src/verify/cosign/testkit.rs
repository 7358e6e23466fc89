//! The unit tests' Sigstore: the test kit's Fulcio-like CA, Rekor-like log and CT log
//! (signet-testkit, which shares no code with the verifier, only the wire formats) set at a
//! fixed time, T0, and turned into signet's own trust-root and policy types.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{KeyPair, SigningKey};
use signet_testkit::cosign::simple_signing_payload;
use signet_testkit::sigstore as tk;

use crate::image::Digest;
use crate::policy::cosign::trust_root::{CertificateAuthority, LogKey, TrustRoot, ValidFor};
use crate::policy::cosign::{CosignAuthority, Identity, Keyless, Matcher, PublicKey};
use crate::verify::Context;
use crate::verify::cosign::CosignSignature;

/// The start of the test world: 2025-01-01T00:00:00Z.
pub const T0: u64 = 1_735_689_600;

pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A transparency log key (Rekor or CT): the test kit's, with what signet's trust root makes
/// of it.
pub struct Log(tk::Log);

impl std::ops::Deref for Log {
    type Target = tk::Log;
    fn deref(&self) -> &tk::Log {
        &self.0
    }
}

impl Log {
    pub fn new() -> Self {
        Log(tk::Log::new("https://rekor.test"))
    }

    pub fn log_key(&self, name: &str) -> LogKey {
        LogKey {
            name: name.into(),
            log_id: self.id.clone(),
            key: PublicKey::from_der(&self.spki).unwrap(),
            valid_for: ValidFor {
                start: None,
                end: None,
            },
        }
    }
}

/// A Fulcio-like CA at the test world's time: the test kit's, with what signet's trust root
/// makes of it.
pub struct Fulcio(tk::Fulcio);

impl std::ops::Deref for Fulcio {
    type Target = tk::Fulcio;
    fn deref(&self) -> &tk::Fulcio {
        &self.0
    }
}

impl Fulcio {
    /// Root valid for years around T0; the intermediate valid from `inter_from` to `inter_to`.
    pub fn with_intermediate_validity(inter_from: u64, inter_to: u64) -> Self {
        Fulcio(tk::Fulcio::with_validity(
            "test-fulcio",
            T0 - 365 * 86400,
            inter_from,
            inter_to,
        ))
    }

    pub fn new() -> Self {
        Self::with_intermediate_validity(T0 - 30 * 86400, T0 + 5 * 365 * 86400)
    }

    pub fn authority(&self) -> CertificateAuthority {
        CertificateAuthority {
            name: "test-fulcio".into(),
            chain: vec![self.inter_der.clone(), self.root_der.clone()],
            valid_for: ValidFor {
                start: None,
                end: None,
            },
        }
    }

    /// A leaf for `san` (email or URI) and OIDC `issuer`, valid for ten minutes from
    /// `from`, with an embedded SCT from `ct` when given.
    pub fn leaf(&self, key: &KeyPair, spec: &LeafSpec<'_>, ct: Option<&Log>) -> Vec<u8> {
        let spec = tk::LeafSpec {
            san: spec.san.to_owned(),
            issuer: spec.issuer.map(str::to_owned),
            legacy_issuer: spec.legacy_issuer,
            not_before: spec.from,
            sct: ct.is_some(),
            code_signing: spec.code_signing,
        };
        self.0.certificate(key, &spec, ct.map(|log| &log.0))
    }
}

pub struct LeafSpec<'a> {
    pub san: &'a str,
    pub issuer: Option<&'a str>,
    pub from: u64,
    pub code_signing: bool,
    pub legacy_issuer: bool,
}

pub const EMAIL: &str = "signer@example.com";
pub const ISSUER: &str = "https://accounts.example.com";

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        LeafSpec {
            san: EMAIL,
            issuer: Some(ISSUER),
            from: T0,
            code_signing: true,
            legacy_issuer: false,
        }
    }
}

/// The whole test world.
pub struct World {
    pub fulcio: Fulcio,
    pub rekor: Log,
    pub ct: Log,
}

impl World {
    pub fn new() -> Self {
        World {
            fulcio: Fulcio::new(),
            rekor: Log::new(),
            ct: Log::new(),
        }
    }

    pub fn trust_root(&self) -> TrustRoot {
        TrustRoot {
            certificate_authorities: vec![self.fulcio.authority()],
            tlogs: vec![self.rekor.log_key("https://rekor.test")],
            ctlogs: vec![self.ct.log_key("https://ct.test")],
            timestamp_authorities: Vec::new(),
        }
    }

    /// A keyless authority trusting `identities` (issuer, subject) exactly.
    pub fn authority(&self, identities: &[Identity], ctlog_required: bool) -> CosignAuthority {
        CosignAuthority {
            keys: Vec::new(),
            keyless: Some(Keyless {
                identities: identities.to_vec(),
                ctlog_required,
            }),
            tlog_required: true,
            trust_root: Some(Arc::new(self.trust_root())),
        }
    }

    pub fn default_authority(&self) -> CosignAuthority {
        self.authority(
            &[Identity {
                issuer: Matcher::Exact(ISSUER.into()),
                subject: Matcher::Exact(EMAIL.into()),
            }],
            true,
        )
    }

    /// A hashedrekord body for `sig` over `payload` by the PEM `signer`.
    pub fn hashedrekord(sig: &[u8], payload: &[u8], signer_pem: &str) -> String {
        tk::Sigstore::hashedrekord_body(sig, payload, signer_pem)
    }

    /// The legacy bundle annotation for `body_b64` at `time`, signed by `log`.
    pub fn legacy_bundle(log: &Log, body_b64: &str, time: u64, index: i64) -> String {
        let entry = tk::LogEntry {
            integrated_time: time,
            log_index: index as u64,
        };
        log.0.legacy_bundle(body_b64, entry)
    }

    /// A complete keyless `.sig` signature of `digest`, logged at `T0 + 60`.
    pub fn keyless_signature(&self, digest: &Digest, spec: &LeafSpec<'_>) -> KeylessSig {
        self.keyless_signature_by(&self.fulcio, digest, spec)
    }

    /// As [`World::keyless_signature`], with a certificate from `fulcio`.
    pub fn keyless_signature_by(
        &self,
        fulcio: &Fulcio,
        digest: &Digest,
        spec: &LeafSpec<'_>,
    ) -> KeylessSig {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = fulcio.leaf(&key, spec, Some(&self.ct));
        let pem = pem_cert(&cert);
        let payload = simple_signing_payload("registry.test/app", digest.as_str());
        let raw = key.sign(&payload).unwrap();
        let body = Self::hashedrekord(&raw, &payload, &pem);
        let bundle = Self::legacy_bundle(&self.rekor, &body, T0 + 60, 42);
        KeylessSig {
            key,
            sig: CosignSignature {
                payload: payload.into(),
                signature: STANDARD.encode(&raw),
                certificate: Some(pem),
                chain: None,
                bundle: Some(bundle),
            },
        }
    }
}

pub struct KeylessSig {
    pub key: KeyPair,
    pub sig: CosignSignature,
}

pub fn pem_cert(der: &[u8]) -> String {
    tk::pem("CERTIFICATE", der)
}

pub fn ctx() -> Context {
    Context {
        now: at(T0 + 86400),
    }
}

/// A throwaway RFC 3161 timestamp authority (the test kit's: certificates from rcgen, tokens
/// from `openssl ts`, an independent implementation of the format). `None` where the openssl
/// CLI is absent.
pub struct Tsa(signet_testkit::notary::Tsa);

impl std::ops::Deref for Tsa {
    type Target = signet_testkit::notary::Tsa;
    fn deref(&self) -> &signet_testkit::notary::Tsa {
        &self.0
    }
}

impl Tsa {
    pub fn new() -> Option<Self> {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("skipping the timestamp part: no openssl CLI");
            return None;
        }
        Some(Tsa(signet_testkit::notary::Tsa::new(
            &signet_testkit::notary::RevocationUrls::default(),
        )))
    }

    pub fn authority(&self, chain: Vec<Vec<u8>>) -> CertificateAuthority {
        CertificateAuthority {
            name: "test tsa".into(),
            chain,
            valid_for: ValidFor {
                start: None,
                end: None,
            },
        }
    }
}
