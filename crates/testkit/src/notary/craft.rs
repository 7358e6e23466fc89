//! The one place the kit's Notation signatures are made: the test PKI (every certificate of
//! the signing chain and of the TSA), the leaf's signing, and the JWS and COSE envelope
//! assembly. [`SigningChain::new`] and [`SigningChain::sign`] are the everyday signer built on
//! it; [`Pki`] and [`Envelope`] expose every knob, for tests that need a chain or an envelope
//! a verifier must refuse: a leaf EKU or keyUsage, names, an expired intermediate, an RSA leaf
//! (PS256), a tampered payload, an unknown critical header, another `alg`, the
//! `notary.x509.signingAuthority` scheme, an expiry, an edited JWS header, a countersignature
//! over other bytes.
//!
//! Its API speaks in bytes and std types only, so that signet's unit tests can use it.

use std::time::{Duration as StdDuration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RsaKeyPair;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PSS_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::cbor::Value;
use coset::{CoseSign1Builder, HeaderBuilder, Label, RegisteredLabelWithPrivate};
use coset::{TaggedCborSerializable, iana};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
pub use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{
    Authority, Format, INTERMEDIATE_SERIAL, LEAF_SERIAL, PAYLOAD_CONTENT_TYPE, RevocationUrls,
    SigningChain, Tsa, der_tlv,
};

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";
const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
const UNKNOWN_CRITICAL: &str = "com.example.unknown";
const AGENT: &str = "signet-testkit/1";
/// COSE header label of the certificate chain (RFC 9360 `x5chain`).
const COSE_X5CHAIN: i64 = 33;

/// Everything a signing chain root → intermediate → leaf can vary. Names are
/// `C=US, ST=WA, O=<org>, CN=<cn>`; validity is in days before and after now (a negative
/// `after`: already expired). The default is the chain [`SigningChain::new`] makes.
#[derive(Clone, Debug)]
pub struct Pki {
    /// O of the root and the intermediate.
    pub org: &'static str,
    pub root_cn: &'static str,
    pub intermediate_cn: &'static str,
    /// `None`: a random serial.
    pub intermediate_serial: Option<u64>,
    /// (days before now, days after now).
    pub intermediate_valid: (i64, i64),
    pub intermediate: RevocationUrls,
    pub leaf_org: &'static str,
    pub leaf_cn: &'static str,
    pub leaf_serial: u64,
    pub leaf_valid: (i64, i64),
    pub leaf_eku: Vec<ExtendedKeyUsagePurpose>,
    /// rcgen writes keyUsage critical.
    pub leaf_key_usages: Vec<KeyUsagePurpose>,
    /// An RSA-2048 leaf (PS256) instead of P-256 (ES256).
    pub leaf_rsa: bool,
    pub leaf: RevocationUrls,
}

impl Default for Pki {
    fn default() -> Pki {
        Pki {
            org: "Signet Test",
            root_cn: super::ROOT_CN,
            intermediate_cn: super::INTERMEDIATE_CN,
            intermediate_serial: Some(INTERMEDIATE_SERIAL),
            intermediate_valid: (3650, 1000),
            intermediate: RevocationUrls::default(),
            leaf_org: "Signet Test",
            leaf_cn: "signet e2e signer",
            leaf_serial: LEAF_SERIAL,
            leaf_valid: (30, 365),
            leaf_eku: vec![ExtendedKeyUsagePurpose::CodeSigning],
            leaf_key_usages: vec![KeyUsagePurpose::DigitalSignature],
            leaf_rsa: false,
            leaf: RevocationUrls::default(),
        }
    }
}

/// Everything a TSA can vary; the default is the TSA [`Tsa::new`] makes.
#[derive(Clone, Debug)]
pub struct TsaSpec {
    pub org: &'static str,
    pub root_cn: &'static str,
    pub cn: &'static str,
    pub serial: u64,
    /// (days before now, days after now) of the TSA certificate.
    pub valid: (i64, i64),
    /// The `accuracy` line of `openssl ts`'s configuration.
    pub accuracy: &'static str,
    pub revocation: RevocationUrls,
}

impl Default for TsaSpec {
    fn default() -> TsaSpec {
        TsaSpec {
            org: "Signet Test",
            root_cn: "signet e2e tsa root",
            cn: "signet e2e tsa",
            serial: LEAF_SERIAL,
            valid: (30, 365),
            accuracy: "secs:1",
            revocation: RevocationUrls::default(),
        }
    }
}

/// What to vary in an envelope; the default is a well-formed `notary.x509` signature made a
/// day ago.
#[derive(Clone, Default)]
pub struct Envelope<'a> {
    /// Sign these bytes instead of the payload given.
    pub payload: Option<Vec<u8>>,
    /// `None`: a day ago.
    pub signing_time: Option<SystemTime>,
    /// A critical `io.cncf.notary.expiry`.
    pub expiry: Option<SystemTime>,
    /// A critical header nobody knows.
    pub unknown_critical: bool,
    /// Change the payload after signing.
    pub tamper: bool,
    /// Another `alg` than the key's (COSE knows ES256/384/512 and PS256/384/512; others keep
    /// the key's).
    pub alg_override: Option<&'static str>,
    /// The `notary.x509.signingAuthority` scheme with this authentic signing time.
    pub authentic_time: Option<SystemTime>,
    /// Countersign with this TSA; `true` stamps other bytes than the signature.
    pub timestamp: Option<(&'a Tsa, bool)>,
    /// Edits the JWS protected header before it is signed.
    pub jws_header: Option<fn(&mut serde_json::Value)>,
}

impl Envelope<'_> {
    fn token(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let (tsa, wrong) = self.timestamp?;
        Some(if wrong {
            tsa.stamp(b"some other bytes")
        } else {
            tsa.stamp(signature)
        })
    }
}

fn name(org: &str, cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CountryName, "US");
    name.push(DnType::StateOrProvinceName, "WA");
    name.push(DnType::OrganizationName, org);
    name.push(DnType::CommonName, cn);
    name
}

fn days(now: OffsetDateTime, n: i64) -> OffsetDateTime {
    now + Duration::days(n)
}

/// A CA certificate's parameters: keyCertSign and cRLSign, valid from ten years ago.
pub(super) fn ca_params(org: &str, cn: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name = name(org, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = days(now, -3650);
    params.not_after = days(now, 1000);
    params
}

/// A self-signed root valid ten years either side of now, with a `key` of `alg`.
fn root(org: &str, cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> (Authority, Vec<u8>) {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate_for(alg).expect("root key");
    let mut params = ca_params(org, cn, now);
    params.not_after = days(now, 3650);
    let cert = params.self_signed(&key).expect("self-sign root");
    let der = cert.der().to_vec();
    (
        Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        },
        der,
    )
}

/// A self-signed P-256 CA certificate `C=US, ST=WA, O=<org>, CN=<cn>` (PEM), e.g. for a trust
/// store that is only loaded.
pub fn ca_certificate_pem(org: &str, cn: &str) -> String {
    root(org, cn, &rcgen::PKCS_ECDSA_P256_SHA256).0.cert_pem
}

/// RSA key generation takes seconds: one key per process.
fn rsa_key() -> KeyPair {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let der = KEY.get_or_init(|| {
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA key")
            .serialize_der()
    });
    KeyPair::try_from(der.as_slice()).expect("RSA key")
}

impl SigningChain {
    /// A chain as `pki` says.
    pub fn craft(pki: &Pki) -> SigningChain {
        let now = OffsetDateTime::now_utc();
        let (root, root_der) = root(pki.org, pki.root_cn, &rcgen::PKCS_ECDSA_P384_SHA384);

        let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut inter = ca_params(pki.org, pki.intermediate_cn, now);
        inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        inter.serial_number = pki.intermediate_serial.map(SerialNumber::from);
        inter.not_before = days(now, -pki.intermediate_valid.0);
        inter.not_after = days(now, pki.intermediate_valid.1);
        pki.intermediate.apply(&mut inter);
        let inter_cert = inter
            .signed_by(&inter_key, &root.issuer)
            .expect("sign intermediate");
        let intermediate = Authority {
            cert_pem: inter_cert.pem(),
            key_pem: inter_key.serialize_pem(),
            issuer: Issuer::new(inter, inter_key),
        };

        let mut chain = SigningChain {
            ders: vec![Vec::new(), inter_cert.der().to_vec(), root_der],
            root,
            intermediate,
            leaf_pkcs8: Vec::new(),
            leaf_rsa: false,
        };
        chain.issue_leaf(pki);
        chain
    }

    /// Replaces the leaf with one from the same intermediate as `pki` says.
    pub fn issue_leaf(&mut self, pki: &Pki) {
        let now = OffsetDateTime::now_utc();
        let key = if pki.leaf_rsa {
            rsa_key()
        } else {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("leaf key")
        };
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        leaf.distinguished_name = name(pki.leaf_org, pki.leaf_cn);
        leaf.key_usages = pki.leaf_key_usages.clone();
        leaf.extended_key_usages = pki.leaf_eku.clone();
        leaf.not_before = days(now, -pki.leaf_valid.0);
        leaf.not_after = days(now, pki.leaf_valid.1);
        leaf.serial_number = Some(SerialNumber::from(pki.leaf_serial));
        pki.leaf.apply(&mut leaf);
        let cert = leaf
            .signed_by(&key, &self.intermediate.issuer)
            .expect("sign leaf");
        self.ders[0] = cert.der().to_vec();
        self.leaf_pkcs8 = key.serialize_der();
        self.leaf_rsa = pki.leaf_rsa;
    }

    /// A Notary envelope in `format` over `payload` (unless `opts` replaces it).
    pub fn envelope(&self, format: Format, payload: &[u8], opts: &Envelope) -> Vec<u8> {
        let payload = opts.payload.as_deref().unwrap_or(payload);
        match format {
            Format::Jws => self.jws(payload, opts),
            Format::Cose => self.cose(payload, opts),
        }
    }

    fn jws(&self, payload_bytes: &[u8], e: &Envelope) -> Vec<u8> {
        let key_alg = if self.leaf_rsa { "PS256" } else { "ES256" };
        let mut header = json!({
            "alg": e.alg_override.unwrap_or(key_alg),
            "cty": PAYLOAD_CONTENT_TYPE,
            "crit": [SIGNING_SCHEME],
            SIGNING_SCHEME: "notary.x509",
            SIGNING_TIME: rfc3339(signing_time(e)),
        });
        let critical = |header: &mut serde_json::Value, label: &str, value: serde_json::Value| {
            header[label] = value;
            header["crit"]
                .as_array_mut()
                .expect("crit")
                .push(json!(label));
        };
        if let Some(at) = e.authentic_time {
            let h = header.as_object_mut().expect("header");
            h.remove(SIGNING_TIME);
            h.insert(SIGNING_SCHEME.into(), json!("notary.x509.signingAuthority"));
            critical(&mut header, AUTHENTIC_SIGNING_TIME, json!(rfc3339(at)));
        }
        if let Some(x) = e.expiry {
            critical(&mut header, EXPIRY, json!(rfc3339(x)));
        }
        if e.unknown_critical {
            critical(&mut header, UNKNOWN_CRITICAL, json!("x"));
        }
        if let Some(edit) = e.jws_header {
            edit(&mut header);
        }
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header"));
        let payload = URL_SAFE_NO_PAD.encode(payload_bytes);
        let signature = self.sign_bytes(format!("{protected}.{payload}").as_bytes());
        let payload = if e.tamper {
            URL_SAFE_NO_PAD.encode([payload_bytes, b" "].concat())
        } else {
            payload
        };
        let mut envelope = json!({
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": self.ders.iter().map(|der| STANDARD.encode(der)).collect::<Vec<_>>(),
                SIGNING_AGENT: AGENT,
            },
            "signature": URL_SAFE_NO_PAD.encode(&signature),
        });
        if let Some(token) = e.token(&signature) {
            envelope["header"][TIMESTAMP_SIGNATURE] = json!(STANDARD.encode(token));
        }
        serde_json::to_vec(&envelope).expect("JWS JSON")
    }

    fn cose(&self, payload: &[u8], e: &Envelope) -> Vec<u8> {
        let epoch = |t: SystemTime| {
            let secs = t
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            Value::Tag(1, Box::new(Value::Integer(secs.into())))
        };
        let text = |s: &str| Value::Text(s.into());
        let crit = |label: &str| RegisteredLabelWithPrivate::Text(label.into());
        let alg = match e.alg_override {
            Some("ES256") => iana::Algorithm::ES256,
            Some("ES384") => iana::Algorithm::ES384,
            Some("ES512") => iana::Algorithm::ES512,
            Some("PS256") => iana::Algorithm::PS256,
            Some("PS384") => iana::Algorithm::PS384,
            Some("PS512") => iana::Algorithm::PS512,
            _ if self.leaf_rsa => iana::Algorithm::PS256,
            _ => iana::Algorithm::ES256,
        };
        let mut protected = HeaderBuilder::new()
            .algorithm(alg)
            .content_type(PAYLOAD_CONTENT_TYPE.into())
            .add_critical_label(crit(SIGNING_SCHEME));
        protected = match e.authentic_time {
            None => protected
                .text_value(SIGNING_SCHEME.into(), text("notary.x509"))
                .text_value(SIGNING_TIME.into(), epoch(signing_time(e))),
            Some(at) => protected
                .add_critical_label(crit(AUTHENTIC_SIGNING_TIME))
                .text_value(SIGNING_SCHEME.into(), text("notary.x509.signingAuthority"))
                .text_value(AUTHENTIC_SIGNING_TIME.into(), epoch(at)),
        };
        if let Some(x) = e.expiry {
            protected = protected
                .add_critical_label(crit(EXPIRY))
                .text_value(EXPIRY.into(), epoch(x));
        }
        if e.unknown_critical {
            protected = protected
                .add_critical_label(crit(UNKNOWN_CRITICAL))
                .text_value(UNKNOWN_CRITICAL.into(), text("x"));
        }
        let mut unprotected = HeaderBuilder::new()
            .text_value(SIGNING_AGENT.into(), text(AGENT))
            .build();
        unprotected.rest.push((
            Label::Int(COSE_X5CHAIN),
            Value::Array(self.ders.iter().cloned().map(Value::Bytes).collect()),
        ));
        let mut sign1 = CoseSign1Builder::new()
            .protected(protected.build())
            .unprotected(unprotected)
            .payload(payload.to_vec())
            .create_signature(b"", |to_be_signed| self.sign_bytes(to_be_signed))
            .build();
        if e.tamper
            && let Some(p) = sign1.payload.as_mut()
        {
            p.push(b' ');
        }
        if let Some(token) = e.token(&sign1.signature) {
            sign1
                .unprotected
                .rest
                .push((Label::Text(TIMESTAMP_SIGNATURE.into()), Value::Bytes(token)));
        }
        sign1.to_tagged_vec().expect("COSE encoding")
    }

    /// The leaf key's signature as JWS and COSE carry it: ES256 fixed-length `r || s`, or
    /// PS256.
    fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        if self.leaf_rsa {
            let key = RsaKeyPair::from_pkcs8(&self.leaf_pkcs8).expect("leaf key");
            let mut out = vec![0; key.public_modulus_len()];
            key.sign(&RSA_PSS_SHA256, &SystemRandom::new(), message, &mut out)
                .expect("sign");
            return out;
        }
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.leaf_pkcs8)
            .expect("leaf key");
        key.sign(&SystemRandom::new(), message)
            .expect("sign")
            .as_ref()
            .to_vec()
    }
}

fn signing_time(e: &Envelope) -> SystemTime {
    e.signing_time
        .unwrap_or_else(|| SystemTime::now() - StdDuration::from_secs(86_400))
}

/// RFC 3339 in whole seconds, UTC.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .expect("a representable time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

impl Authority {
    /// A CRL by this authority for `this_update`..`next_update`, revoking `serials` (revoked
    /// yesterday, key compromise).
    pub fn crl_between(
        &self,
        revoked: &[u64],
        this_update: SystemTime,
        next_update: SystemTime,
    ) -> Vec<u8> {
        let yesterday = OffsetDateTime::now_utc() - Duration::days(1);
        CertificateRevocationListParams {
            this_update: this_update.into(),
            next_update: next_update.into(),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from(*serial),
                    revocation_time: yesterday,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("sign CRL")
        .der()
        .to_vec()
    }
}

impl Tsa {
    /// A TSA as `spec` says: a self-signed P-256 root and a TSA certificate (critical EKU
    /// timeStamping only, critical keyUsage digitalSignature).
    pub fn craft(spec: &TsaSpec) -> Tsa {
        let now = OffsetDateTime::now_utc();
        let (root, root_der) = root(spec.org, spec.root_cn, &rcgen::PKCS_ECDSA_P256_SHA256);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("TSA key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("TSA params");
        leaf.distinguished_name = name(spec.org, spec.cn);
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = days(now, -spec.valid.0);
        leaf.not_after = days(now, spec.valid.1);
        leaf.serial_number = Some(SerialNumber::from(spec.serial));
        // RFC 3161 (and `openssl ts`) want the EKU critical and timeStamping only; rcgen's own
        // EKU field is not critical, so it is written by hand.
        let mut eku = CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            der_tlv(0x30, &der_tlv(0x06, &[0x2b, 6, 1, 5, 5, 7, 3, 8])),
        );
        eku.set_criticality(true);
        leaf.custom_extensions.push(eku);
        spec.revocation.apply(&mut leaf);
        let cert = leaf.signed_by(&key, &root.issuer).expect("sign TSA cert");

        let dir = tempfile::Builder::new()
            .prefix("signet-tsa-")
            .tempdir()
            .expect("TSA dir");
        let d = dir.path();
        std::fs::write(d.join("tsa.pem"), cert.pem()).expect("write TSA cert");
        std::fs::write(d.join("tsa.key"), key.serialize_pem()).expect("write TSA key");
        std::fs::write(d.join("serial"), "01\n").expect("write TSA serial");
        std::fs::write(
            d.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {}/serial\nsigner_digest = sha256\n\
                 default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\n\
                 accuracy = {}\ness_cert_id_alg = sha256\n",
                d.display(),
                spec.accuracy,
            ),
        )
        .expect("write ts.cnf");
        Tsa {
            root,
            root_der,
            leaf_der: cert.der().to_vec(),
            dir,
        }
    }
}
