//! A Sigstore made at test time: a Fulcio-like CA (rcgen), a Rekor-like log and a CT log
//! (aws-lc-rs ECDSA P-256), and helpers that sign like cosign does. Nothing here is shared with
//! the verifier's code paths except the wire formats, which are written out independently.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SigningKey,
};
use time::OffsetDateTime;

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

fn odt(secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

/// A transparency log key (Rekor or CT).
pub struct Log {
    pub key: EcdsaKeyPair,
    pub spki: Vec<u8>,
    pub id: Vec<u8>,
}

impl Log {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
        let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
        spki.extend_from_slice(key.public_key().as_ref());
        let id = digest(&SHA256, &spki).as_ref().to_vec();
        Log { key, spki, id }
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key
            .sign(&SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
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

/// A Fulcio-like CA: root and intermediate.
pub struct Fulcio {
    pub root_der: Vec<u8>,
    pub inter_der: Vec<u8>,
    inter: Issuer<'static, KeyPair>,
}

impl Fulcio {
    /// Root valid for years around T0; the intermediate valid from `inter_from` to `inter_to`.
    pub fn with_intermediate_validity(inter_from: u64, inter_to: u64) -> Self {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
        rp.distinguished_name
            .push(DnType::CommonName, "test fulcio root");
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        rp.not_before = odt(T0 - 365 * 86400);
        rp.not_after = odt(T0 + 10 * 365 * 86400);
        let root_cert = rp.self_signed(&root_key).unwrap();
        let root = Issuer::new(rp, root_key);

        let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ip = CertificateParams::new(Vec::<String>::new()).unwrap();
        ip.distinguished_name
            .push(DnType::CommonName, "test fulcio intermediate");
        ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ip.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ip.not_before = odt(inter_from);
        ip.not_after = odt(inter_to);
        let inter_cert = ip.signed_by(&inter_key, &root).unwrap();
        Fulcio {
            root_der: root_cert.der().to_vec(),
            inter_der: inter_cert.der().to_vec(),
            inter: Issuer::new(ip, inter_key),
        }
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
        let params = || {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.serial_number = Some(rcgen::SerialNumber::from(vec![1, 2, 3, 4]));
            p.not_before = odt(spec.from);
            p.not_after = odt(spec.from + 600);
            let san = if spec.san.contains("://") {
                SanType::URI(spec.san.try_into().unwrap())
            } else {
                SanType::Rfc822Name(spec.san.try_into().unwrap())
            };
            p.subject_alt_names = vec![san];
            if spec.code_signing {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
            } else {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            match (spec.issuer, spec.legacy_issuer) {
                // DER UTF8String, as Fulcio writes extension .1.8.
                (Some(issuer), false) => {
                    let mut v = vec![0x0c, issuer.len() as u8];
                    v.extend_from_slice(issuer.as_bytes());
                    p.custom_extensions = vec![CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
                        v,
                    )];
                }
                // Raw bytes, as certificates from before 2023 carry extension .1.1.
                (Some(issuer), true) => {
                    p.custom_extensions = vec![CustomExtension::from_oid_content(
                        &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                        issuer.as_bytes().to_vec(),
                    )];
                }
                (None, _) => {}
            }
            p
        };
        let Some(ct) = ct else {
            return params().signed_by(key, &self.inter).unwrap().der().to_vec();
        };
        // The CT log signs the precertificate TBS; rcgen is deterministic apart from the
        // signature, so the TBS of a certificate without the SCT extension is that TBS.
        let pre = params().signed_by(key, &self.inter).unwrap();
        let tbs = {
            use der::{Decode, Encode};
            x509_cert::Certificate::from_der(pre.der())
                .unwrap()
                .tbs_certificate()
                .to_der()
                .unwrap()
        };
        let issuer_spki = {
            use der::{Decode, Encode};
            x509_cert::Certificate::from_der(&self.inter_der)
                .unwrap()
                .tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .unwrap()
        };
        let ts = (spec.from + 1) * 1000;
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&ts.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(digest(&SHA256, &issuer_spki).as_ref());
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(&tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let sct_sig = ct.sign(&signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&ct.id);
        sct.extend_from_slice(&ts.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(sct_sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sct_sig);
        let mut list = (sct.len() as u16 + 2).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        let octets = {
            use der::Encode;
            der::asn1::OctetString::new(list).unwrap().to_der().unwrap()
        };
        let mut p = params();
        p.custom_extensions.push(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
            octets,
        ));
        p.signed_by(key, &self.inter).unwrap().der().to_vec()
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
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest(&SHA256, payload))}},
                "signature": {"content": STANDARD.encode(sig), "publicKey": {"content": STANDARD.encode(signer_pem)}}
            }
        });
        STANDARD.encode(body.to_string())
    }

    /// The legacy bundle annotation for `body_b64` at `time`, signed by `log`.
    pub fn legacy_bundle(log: &Log, body_b64: &str, time: u64, index: i64) -> String {
        let msg = format!(
            r#"{{"body":"{body_b64}","integratedTime":{time},"logID":"{}","logIndex":{index}}}"#,
            hex::encode(&log.id)
        );
        serde_json::json!({
            "SignedEntryTimestamp": STANDARD.encode(log.sign(msg.as_bytes())),
            "Payload": {"body": body_b64, "integratedTime": time, "logIndex": index, "logID": hex::encode(&log.id)}
        })
        .to_string()
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
        let payload = super::simple_signing_payload("registry.test/app", digest);
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
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

pub fn ctx() -> Context {
    Context {
        now: at(T0 + 86400),
    }
}

/// A throwaway RFC 3161 timestamp authority: certificates from rcgen, tokens from `openssl ts`
/// (an independent implementation of the format). `None` where the openssl CLI is absent.
pub struct Tsa {
    dir: tempfile::TempDir,
    pub root_der: Vec<u8>,
    pub leaf_der: Vec<u8>,
}

impl Tsa {
    pub fn new() -> Option<Self> {
        use std::process::Command;
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("skipping the timestamp part: no openssl CLI");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
        rp.distinguished_name.push(DnType::CommonName, "tsa root");
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let root_cert = rp.self_signed(&root_key).unwrap();
        let root = Issuer::new(rp, root_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
        lp.distinguished_name.push(DnType::CommonName, "tsa");
        // openssl signs only with a critical EKU of exactly timeStamping; rcgen writes EKUs
        // non-critical, so the extension is written by hand.
        let mut eku = CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            vec![
                0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
            ],
        );
        eku.set_criticality(true);
        lp.custom_extensions = vec![eku];
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = lp.signed_by(&key, &root).unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("tsa.key"), key.serialize_pem()).unwrap();
        std::fs::write(p("tsa.pem"), leaf.pem()).unwrap();
        std::fs::write(
            p("ts.cnf"),
            "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = ./serial\ncrypto_device = builtin\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.2\ndigests = sha256, sha384\naccuracy = secs:1\nordering = yes\ntsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\ncerts = ./tsa.pem\n",
        )
        .unwrap();
        std::fs::write(p("serial"), "01\n").unwrap();
        Some(Tsa {
            dir,
            root_der: root_cert.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
        })
    }

    /// A timestamp token (DER TimeStampToken) over `data`, at the current time.
    pub fn stamp(&self, data: &[u8]) -> Vec<u8> {
        let p = |n: &str| self.dir.path().join(n);
        std::fs::write(p("data.bin"), data).unwrap();
        for args in [
            &[
                "ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "req.tsq",
            ][..],
            &[
                "ts",
                "-reply",
                "-queryfile",
                "req.tsq",
                "-signer",
                "tsa.pem",
                "-inkey",
                "tsa.key",
                "-config",
                "ts.cnf",
                "-token_out",
                "-out",
                "token.der",
            ],
        ] {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::read(p("token.der")).unwrap()
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
