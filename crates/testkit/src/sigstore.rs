//! A Sigstore made at test time, written independently of signet's verifier (nothing here
//! imports `signet::verify` or `signet::policy`): a Fulcio-like CA, a Rekor-like log and a CT
//! log, a `trusted_root.json` for signet to load, and signers that write what cosign writes.
//!
//! - **Fulcio**: a P-384 root and a P-256 intermediate (rcgen). Leaves carry an email or URI SAN,
//!   the codeSigning EKU, digitalSignature KeyUsage, the OIDC issuer in extension
//!   1.3.6.1.4.1.57264.1.8 (a DER UTF8String) or the legacy .1.1 (raw bytes), and optionally an
//!   embedded SCT list (1.3.6.1.4.1.11129.2.4.2) signed by the CT log over the precertificate.
//! - **Rekor / CT**: ECDSA P-256 keys (aws-lc-rs); the log id is SHA-256 of the DER key. A
//!   signed entry timestamp (SET) is the log's signature over the RFC 8785 canonical JSON of
//!   `{"body","integratedTime","logID","logIndex"}` (keys sorted, no spaces, `logID` in hex).
//! - **Keyless `.sig`** (cosign v2 tag storage): a simple-signing layer with annotations
//!   `dev.cosignproject.cosign/signature`, `dev.sigstore.cosign/certificate` (leaf PEM),
//!   `/chain` (intermediate and root PEM) and `/bundle` (`{"SignedEntryTimestamp", "Payload":
//!   {"body" = base64 hashedrekord, "integratedTime", "logIndex", "logID"}}`).
//! - **Sigstore bundles** (cosign v3): v0.3 JSON with a DSSE envelope around an in-toto v1
//!   statement, the certificate (or a public-key hint), and a `dsse` 0.0.1 tlog entry with an
//!   inclusion promise (SET) and an inclusion proof with a signed checkpoint; pushed as an OCI
//!   1.1 referrer ([`push_bundle`]).
//!
//! Times are real (signet judges with the wall clock): certificates are valid around "now",
//! entries are integrated a minute ago.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber, SigningKey,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cosign::{CosignKey, SIGNATURE_ANNOTATION, SIMPLESIGNING, SignatureLayer};
use crate::oci::{Annotations, OCI_EMPTY, PushedImage, Pusher};

/// Annotation: the PEM Fulcio certificate of a keyless `.sig` layer.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Annotation: the PEM chain (intermediate, root) of a keyless `.sig` layer.
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Annotation: the Rekor bundle (SET and entry) of a `.sig` layer.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// The media type (and referrer `artifactType`) of a Sigstore bundle v0.3.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of a cosign v3 image signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// A predicate type of an attestation (not a signature).
pub const SLSA_PREDICATE: &str = "https://slsa.dev/provenance/v1";
const IN_TOTO: &str = "application/vnd.in-toto+json";
const TRUSTED_ROOT_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

/// The default signer identity.
pub const EMAIL: &str = "signer@example.com";
/// The default OIDC issuer.
pub const ISSUER: &str = "https://accounts.example.com";

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn odt(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).expect("time in range")
}

fn rfc3339(secs: u64) -> String {
    odt(secs).format(&Rfc3339).expect("RFC 3339")
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

/// PEM of a DER block.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A transparency log's signing key (Rekor or CT): ECDSA P-256 with SHA-256.
pub struct Log {
    key: EcdsaKeyPair,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// SHA-256 of `spki`: the log id.
    pub id: Vec<u8>,
    pub url: String,
}

impl Log {
    pub fn new(url: &str) -> Log {
        let key = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .expect("generate log key");
        let spki = key
            .public_key()
            .as_der()
            .expect("log SPKI")
            .as_ref()
            .to_vec();
        let id = sha256(&spki);
        Log {
            key,
            spki,
            id,
            url: url.to_owned(),
        }
    }

    /// ASN.1 ECDSA signature over SHA-256 of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&SystemRandom::new(), message)
            .expect("log signs")
            .as_ref()
            .to_vec()
    }

    /// The public key as PEM (for `openssl` cross-checks).
    pub fn public_key_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }

    /// The RFC 8785 canonical JSON a SET signs, written out by hand (key order matters).
    pub fn set_message(&self, body_b64: &str, integrated_time: u64, log_index: u64) -> Vec<u8> {
        format!(
            "{{\"body\":\"{body_b64}\",\"integratedTime\":{integrated_time},\"logID\":\"{}\",\"logIndex\":{log_index}}}",
            hex::encode(&self.id)
        )
        .into_bytes()
    }

    /// The `dev.sigstore.cosign/bundle` annotation (a legacy Rekor bundle) for an entry
    /// with `body_b64` in this log.
    pub fn legacy_bundle(&self, body_b64: &str, entry: LogEntry) -> String {
        let set = self.set(body_b64, entry.integrated_time, entry.log_index);
        json!({
            "SignedEntryTimestamp": BASE64.encode(set),
            "Payload": {
                "body": body_b64,
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": hex::encode(&self.id)
            }
        })
        .to_string()
    }

    /// The signed entry timestamp of an entry.
    pub fn set(&self, body_b64: &str, integrated_time: u64, log_index: u64) -> Vec<u8> {
        self.sign(&self.set_message(body_b64, integrated_time, log_index))
    }

    fn trusted_root_entry(&self, start: u64) -> Value {
        json!({
            "baseUrl": self.url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": BASE64.encode(&self.spki),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": rfc3339(start)}
            },
            "logId": {"keyId": BASE64.encode(&self.id)}
        })
    }
}

/// What a leaf certificate says and when it lives.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Email (Rfc822Name SAN) or, when it contains `://`, URI SAN.
    pub san: String,
    /// The OIDC issuer; `None` writes no issuer extension.
    pub issuer: Option<String>,
    /// Write the issuer as the legacy extension .1.1 (raw bytes) instead of .1.8.
    pub legacy_issuer: bool,
    /// notBefore (seconds since the epoch); notAfter is ten minutes later, as Fulcio does.
    pub not_before: u64,
    /// Embed an SCT from the CT log.
    pub sct: bool,
    /// The codeSigning EKU, as Fulcio writes; `false` writes serverAuth instead.
    pub code_signing: bool,
}

impl Default for LeafSpec {
    fn default() -> Self {
        LeafSpec {
            san: EMAIL.to_owned(),
            issuer: Some(ISSUER.to_owned()),
            legacy_issuer: false,
            not_before: now() - 300,
            sct: true,
            code_signing: true,
        }
    }
}

impl LeafSpec {
    /// The default leaf for another subject.
    pub fn subject(san: &str) -> LeafSpec {
        LeafSpec {
            san: san.to_owned(),
            ..LeafSpec::default()
        }
    }
}

/// A Fulcio-issued leaf and its private key.
pub struct Leaf {
    pub key: KeyPair,
    pub der: Vec<u8>,
    pub spec: LeafSpec,
    /// The chain the CA hands out with it: intermediate, root (DER).
    pub chain: Vec<Vec<u8>>,
}

impl Leaf {
    pub fn pem(&self) -> String {
        pem("CERTIFICATE", &self.der)
    }

    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    /// ASN.1 ECDSA P-256 signature over SHA-256 of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).expect("leaf signs")
    }
}

/// A Fulcio-like certificate authority: a root and an intermediate that issues leaves.
pub struct Fulcio {
    pub name: String,
    pub root_der: Vec<u8>,
    pub inter_der: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the intermediate (the SCT's issuer key hash is over it).
    inter_spki: Vec<u8>,
    inter: Issuer<'static, KeyPair>,
}

impl Fulcio {
    pub fn new(name: &str) -> Fulcio {
        let start = now() - 365 * 86400;
        Self::with_validity(name, start, start, start + 5 * 365 * 86400)
    }

    /// A CA whose root is valid for ten years from `start` and whose intermediate is valid
    /// from `inter_from` to `inter_to` (seconds since the epoch), e.g. for a test world at a
    /// fixed time, or an intermediate that expires.
    pub fn with_validity(name: &str, start: u64, inter_from: u64, inter_to: u64) -> Fulcio {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("root key");
        let mut rp = CertificateParams::new(Vec::<String>::new()).expect("params");
        rp.distinguished_name
            .push(DnType::OrganizationName, "signet-test");
        rp.distinguished_name
            .push(DnType::CommonName, format!("{name} root"));
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        rp.not_before = odt(start);
        rp.not_after = odt(start + 10 * 365 * 86400);
        let root_cert = rp.self_signed(&root_key).expect("root certificate");
        let root = Issuer::new(rp, root_key);

        let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("inter key");
        let mut ip = CertificateParams::new(Vec::<String>::new()).expect("params");
        ip.distinguished_name
            .push(DnType::OrganizationName, "signet-test");
        ip.distinguished_name
            .push(DnType::CommonName, format!("{name} intermediate"));
        ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ip.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Fulcio's intermediate carries the codeSigning EKU too.
        ip.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        ip.not_before = odt(inter_from);
        ip.not_after = odt(inter_to);
        let inter_cert = ip
            .signed_by(&inter_key, &root)
            .expect("intermediate certificate");
        let inter_spki = inter_key.subject_public_key_info();
        Fulcio {
            name: name.to_owned(),
            root_der: root_cert.der().to_vec(),
            inter_der: inter_cert.der().to_vec(),
            inter_spki,
            inter: Issuer::new(ip, inter_key),
        }
    }

    /// A leaf for `spec`; its SCT (when `spec.sct`) is signed by `ct`.
    pub fn issue(&self, spec: &LeafSpec, ct: &Log) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key");
        let der = self.certificate(&key, spec, spec.sct.then_some(ct));
        Leaf {
            key,
            der,
            spec: spec.clone(),
            chain: vec![self.inter_der.clone(), self.root_der.clone()],
        }
    }

    /// The DER certificate [`Fulcio::issue`] makes, for a key of the caller's, with an SCT by
    /// `ct` when given (whatever `spec.sct` says).
    pub fn certificate(&self, key: &KeyPair, spec: &LeafSpec, ct: Option<&Log>) -> Vec<u8> {
        let mut serial = [0u8; 16];
        serial.copy_from_slice(&sha256(&key.subject_public_key_info())[..16]);
        serial[0] &= 0x7f;
        let params = || {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.distinguished_name = DistinguishedName::new();
            p.serial_number = Some(SerialNumber::from(serial.to_vec()));
            p.not_before = odt(spec.not_before);
            p.not_after = odt(spec.not_before + 600);
            let san = if spec.san.contains("://") {
                SanType::URI(spec.san.as_str().try_into().expect("IA5 URI"))
            } else {
                SanType::Rfc822Name(spec.san.as_str().try_into().expect("IA5 email"))
            };
            p.subject_alt_names = vec![san];
            p.extended_key_usages = vec![if spec.code_signing {
                ExtendedKeyUsagePurpose::CodeSigning
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            match (&spec.issuer, spec.legacy_issuer) {
                (Some(issuer), false) => {
                    p.custom_extensions.push(CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
                        der_utf8_string(issuer),
                    ))
                }
                (Some(issuer), true) => {
                    p.custom_extensions.push(CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                        issuer.as_bytes().to_vec(),
                    ))
                }
                (None, _) => {}
            }
            p
        };
        let Some(ct) = ct else {
            return params()
                .signed_by(key, &self.inter)
                .expect("leaf")
                .der()
                .to_vec();
        };
        // The CT log signs the precertificate's TBS, which is the final TBS without the SCT
        // extension: rcgen writes the same TBS for the same parameters (fixed serial), so the
        // TBS of a certificate made without the extension is that TBS.
        let pre = params()
            .signed_by(key, &self.inter)
            .expect("precertificate");
        let tbs = first_element(pre.der()).to_vec();
        let sct_list = self.sct_list(ct, &tbs, spec.not_before * 1000 + 1000);
        let mut p = params();
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
            der_octet_string(&sct_list),
        ));
        p.signed_by(key, &self.inter).expect("leaf").der().to_vec()
    }

    /// A TLS-encoded SignedCertificateTimestampList with one v1 SCT over the precertificate
    /// `tbs` (RFC 6962 §3.2, §3.3).
    fn sct_list(&self, ct: &Log, tbs: &[u8], timestamp_ms: u64) -> Vec<u8> {
        let mut signed = vec![0u8, 0u8]; // v1, certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(&sha256(&self.inter_spki));
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
        let sig = ct.sign(&signed);
        let mut sct = vec![0u8]; // v1
        sct.extend_from_slice(&ct.id);
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sig);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        list
    }

    fn trusted_root_entry(&self) -> Value {
        json!({
            "subject": {"organization": "signet-test", "commonName": self.name},
            "uri": format!("https://{}.test", self.name),
            "certChain": {"certificates": [
                {"rawBytes": BASE64.encode(&self.inter_der)},
                {"rawBytes": BASE64.encode(&self.root_der)}
            ]},
            "validFor": {"start": rfc3339(now() - 365 * 86400)}
        })
    }
}

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der_utf8_string(s: &str) -> Vec<u8> {
    let mut v = vec![0x0c];
    v.extend(der_len(s.len()));
    v.extend_from_slice(s.as_bytes());
    v
}

fn der_octet_string(b: &[u8]) -> Vec<u8> {
    let mut v = vec![0x04];
    v.extend(der_len(b.len()));
    v.extend_from_slice(b);
    v
}

/// The first element (tag, length, value) inside the outer DER SEQUENCE: a certificate's TBS.
fn first_element(der: &[u8]) -> &[u8] {
    fn header(b: &[u8]) -> (usize, usize) {
        assert_eq!(b[0], 0x30, "a SEQUENCE");
        match b[1] {
            n @ 0..=0x7f => (2, n as usize),
            0x81 => (3, b[2] as usize),
            0x82 => (4, ((b[2] as usize) << 8) | b[3] as usize),
            0x83 => (
                5,
                ((b[2] as usize) << 16) | ((b[3] as usize) << 8) | b[4] as usize,
            ),
            l => panic!("unexpected DER length byte {l:#x}"),
        }
    }
    let (outer, _) = header(der);
    let inner = &der[outer..];
    let (h, len) = header(inner);
    &inner[..h + len]
}

/// When and where a log entry claims to be.
#[derive(Clone, Copy, Debug)]
pub struct LogEntry {
    pub integrated_time: u64,
    pub log_index: u64,
}

impl Default for LogEntry {
    fn default() -> Self {
        LogEntry {
            integrated_time: now() - 60,
            log_index: 4242,
        }
    }
}

/// Who signs a bundle: a Fulcio leaf (keyless) or a key (`cosign sign --key`).
pub enum BundleSigner<'a> {
    Certificate(&'a Leaf),
    Key(&'a CosignKey),
}

impl BundleSigner<'_> {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            BundleSigner::Certificate(leaf) => leaf.sign(message),
            BundleSigner::Key(key) => key.sign(message),
        }
    }

    /// The PEM the log records as the verifier.
    fn verifier_pem(&self) -> String {
        match self {
            BundleSigner::Certificate(leaf) => leaf.pem(),
            BundleSigner::Key(key) => key.public_key_pem(),
        }
    }
}

/// The test world: a trusted Fulcio, Rekor and CT log, and the `trusted_root.json` naming them.
pub struct Sigstore {
    pub fulcio: Fulcio,
    pub rekor: Log,
    pub ct: Log,
    dir: tempfile::TempDir,
}

impl Default for Sigstore {
    fn default() -> Self {
        Self::new()
    }
}

impl Sigstore {
    pub fn new() -> Sigstore {
        Sigstore {
            fulcio: Fulcio::new("signet-test-fulcio"),
            rekor: Log::new("https://rekor.signet.test"),
            ct: Log::new("https://ct.signet.test"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The `trusted_root.json` document.
    pub fn trusted_root(&self) -> Value {
        self.trusted_root_with_cas(&[&self.fulcio])
    }

    /// A `trusted_root.json` with these certificate authorities (and this Rekor and CT log).
    pub fn trusted_root_with_cas(&self, cas: &[&Fulcio]) -> Value {
        let start = now() - 365 * 86400;
        let cas: Vec<Value> = cas.iter().map(|ca| ca.trusted_root_entry()).collect();
        json!({
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [self.rekor.trusted_root_entry(start)],
            "certificateAuthorities": cas,
            "ctlogs": [self.ct.trusted_root_entry(start)],
            "timestampAuthorities": []
        })
    }

    /// Writes `trusted_root.json` into a temp dir; returns its (absolute) path.
    pub fn write_trusted_root(&self) -> PathBuf {
        let path = self.dir.path().join("trusted_root.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&self.trusted_root()).expect("JSON"),
        )
        .expect("write trusted_root.json");
        path
    }

    /// A leaf from the trusted Fulcio.
    pub fn leaf(&self, spec: &LeafSpec) -> Leaf {
        self.fulcio.issue(spec, &self.ct)
    }

    /// A hashedrekord 0.0.1 entry body (base64) recording `signature` over `payload` by the
    /// PEM `signer`.
    pub fn hashedrekord_body(signature: &[u8], payload: &[u8], signer_pem: &str) -> String {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha256(payload))}},
                "signature": {
                    "content": BASE64.encode(signature),
                    "publicKey": {"content": BASE64.encode(signer_pem)}
                }
            }
        });
        BASE64.encode(body.to_string())
    }

    /// The `dev.sigstore.cosign/bundle` annotation for an entry with `body_b64`.
    pub fn legacy_bundle(&self, body_b64: &str, entry: LogEntry) -> String {
        self.rekor.legacy_bundle(body_b64, entry)
    }

    /// A keyless `.sig` layer: `leaf` signs the simple-signing payload naming `digest` in
    /// `docker_reference`, the entry is logged in Rekor.
    pub fn keyless_layer(
        &self,
        leaf: &Leaf,
        docker_reference: &str,
        digest: &str,
        entry: LogEntry,
    ) -> SignatureLayer {
        let payload = crate::cosign::simple_signing_payload(docker_reference, digest);
        let signature = leaf.sign(&payload);
        let body = Self::hashedrekord_body(&signature, &payload, &leaf.pem());
        let mut annotations = Annotations::new();
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), BASE64.encode(&signature));
        annotations.insert(CERTIFICATE_ANNOTATION.to_owned(), leaf.pem());
        annotations.insert(CHAIN_ANNOTATION.to_owned(), leaf.chain_pem());
        annotations.insert(
            BUNDLE_ANNOTATION.to_owned(),
            self.legacy_bundle(&body, entry),
        );
        SignatureLayer {
            media_type: SIMPLESIGNING.to_owned(),
            payload,
            annotations,
        }
    }

    /// A Sigstore bundle v0.3 as `cosign sign` (v3) writes it: DSSE over an in-toto statement
    /// naming `subject_digest` with `predicate_type`, signed by `signer`, with a `dsse` tlog
    /// entry carrying an inclusion promise and an inclusion proof (a two-leaf tree).
    pub fn bundle(
        &self,
        signer: &BundleSigner<'_>,
        subject_name: &str,
        subject_digest: &str,
        predicate_type: &str,
        entry: LogEntry,
    ) -> Vec<u8> {
        let (algorithm, hex_digest) = subject_digest.split_once(':').expect("algo:hex");
        let mut digests = serde_json::Map::new();
        digests.insert(algorithm.to_owned(), json!(hex_digest));
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": subject_name, "digest": digests}],
            "predicateType": predicate_type,
            "predicate": {}
        })
        .to_string()
        .into_bytes();
        let signature = signer.sign(&pae(IN_TOTO, &statement));
        let envelope = json!({
            "payload": BASE64.encode(&statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": BASE64.encode(&signature), "keyid": ""}]
        });
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(envelope.to_string().as_bytes()))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha256(&statement))},
                "signatures": [{
                    "signature": BASE64.encode(&signature),
                    "verifier": BASE64.encode(signer.verifier_pem())
                }]
            }
        })
        .to_string();
        let body_b64 = BASE64.encode(&body);
        let set = self
            .rekor
            .set(&body_b64, entry.integrated_time, entry.log_index);
        // A two-leaf tree (RFC 9162): another entry at index 0, ours at index 1.
        let other = sha256(b"\x00another entry");
        let ours = sha256(&[b"\x00".as_slice(), body.as_bytes()].concat());
        let root = sha256(&[b"\x01".as_slice(), &other, &ours].concat());
        let note = format!("rekor.signet.test - 1\n2\n{}\n", BASE64.encode(&root));
        let mut note_sig = self.rekor.id[..4].to_vec();
        note_sig.extend_from_slice(&self.rekor.sign(note.as_bytes()));
        let checkpoint = format!(
            "{note}\n\u{2014} rekor.signet.test {}\n",
            BASE64.encode(note_sig)
        );
        let mut material = match signer {
            BundleSigner::Certificate(leaf) => {
                json!({"certificate": {"rawBytes": BASE64.encode(&leaf.der)}})
            }
            BundleSigner::Key(key) => {
                json!({"publicKey": {"hint": BASE64.encode(sha256(key.public_key_der()))}})
            }
        };
        material["tlogEntries"] = json!([{
            "logIndex": entry.log_index.to_string(),
            "logId": {"keyId": BASE64.encode(&self.rekor.id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": entry.integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": BASE64.encode(set)},
            "inclusionProof": {
                "logIndex": "1",
                "rootHash": BASE64.encode(&root),
                "treeSize": "2",
                "hashes": [BASE64.encode(&other)],
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": body_b64
        }]);
        serde_json::to_vec(&json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": material,
            "dsseEnvelope": envelope
        }))
        .expect("bundle JSON")
    }
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Pushes `bundle` as cosign v3 does: an OCI 1.1 referrer of `subject` with artifactType
/// [`BUNDLE_V03`], an empty config, one layer holding the bundle, and the
/// `dev.sigstore.bundle.*` annotations. Returns the referrer's digest.
pub async fn push_bundle(
    pusher: &Pusher,
    repo: &str,
    subject: &PushedImage,
    bundle: Vec<u8>,
    predicate_type: &str,
) -> String {
    let manifest_annotations: Annotations = [
        ("dev.sigstore.bundle.content", "dsse-envelope"),
        ("dev.sigstore.bundle.predicateType", predicate_type),
        ("org.opencontainers.image.created", "2026-01-01T00:00:00Z"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    pusher
        .push_referrer(
            repo,
            subject,
            BUNDLE_V03,
            OCI_EMPTY,
            vec![(BUNDLE_V03, bundle, Annotations::new())],
            manifest_annotations,
        )
        .await
}

/// A `ClusterImagePolicy` with one keyless authority over `trust_root`, trusting
/// `identities` (YAML flow mappings such as `{issuer: …, subject: …}`).
pub fn keyless_policy(name: &str, images: &str, trust_root: &Path, identities: &[&str]) -> String {
    let ids: String = identities
        .iter()
        .map(|i| format!("            - {i}\n"))
        .collect();
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images: [\"{images}\"]\n  mode: enforce\n  onError: deny\n  authorities:\n    - name: sigstore\n      cosign:\n        keyless:\n          trustRoot: {{file: {}}}\n          identities:\n{ids}          ctlog: {{required: true}}\n        tlog: {{required: true}}\n",
        trust_root.display()
    )
}

/// The default identity as a policy entry.
pub fn default_identity() -> String {
    format!("{{issuer: '{ISSUER}', subject: '{EMAIL}'}}")
}
