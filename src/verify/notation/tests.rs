//! signet's own Notation test signer: certificates made with rcgen at test time, JWS and COSE
//! envelopes signed with aws-lc-rs, one case per rule. Every case runs in both formats.

use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::{CoseSign1Builder, HeaderBuilder, Label, TaggedCborSerializable, iana};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::json;

use super::*;
use crate::image::Digest;
use crate::policy::notation::{NotationAuthority, NotationSpec};
use crate::verify::format;

/// The fetch plan of `signatures` through the format seam, as the engine gathers it: each
/// signature checked once ([`format::check`]), the plans merged in order without repeats.
fn seam_plan(
    auth: &NotationAuthority,
    subject: &Subject,
    signatures: &[NotationSignature],
    ctx: &Context,
) -> Vec<RevocationLocation> {
    let authorities = [seam_authority(auth)];
    let mut out: Vec<RevocationLocation> = Vec::new();
    for (n, sig) in signatures.iter().enumerate() {
        let checked = format::check(&authorities, subject, seam_artifact(sig), n, ctx);
        for l in &checked.plan().revocation {
            if !out.contains(l) {
                out.push(l.clone());
            }
        }
    }
    out
}

/// The outcome of `signatures` through the format seam with `revocation` as what was
/// fetched, as the engine reaches it: "no signature" ([`format::no_signature`]) until a
/// signature's verdict ([`format::Checked::verdicts`]) says more ([`format::keep`]).
fn seam_verdict(
    auth: &NotationAuthority,
    subject: &Subject,
    signatures: &[NotationSignature],
    ctx: &Context,
    revocation: &RevocationData,
) -> Outcome {
    let authorities = [seam_authority(auth)];
    let fetched = format::Fetched {
        revocation: revocation.clone(),
    };
    let mut outcome = format::no_signature(&authorities[0].verifier, subject, ctx);
    for (n, sig) in signatures.iter().enumerate() {
        let checked = format::check(&authorities, subject, seam_artifact(sig), n, ctx);
        for (_, o) in checked.verdicts(&authorities, &fetched, ctx) {
            format::keep(&mut outcome, o);
        }
    }
    outcome
}

fn seam_authority(auth: &NotationAuthority) -> crate::policy::Authority {
    crate::policy::Authority {
        name: "test".into(),
        verifier: crate::policy::Verifier::Notation(Box::new(auth.clone())),
    }
}

/// A signature as discovery hands it to the seam.
fn seam_artifact(sig: &NotationSignature) -> format::Artifact {
    format::Artifact {
        kind: format::Kind::Notation,
        manifest: Some(sig.manifest_digest.clone()),
        layer_digest: Digest::sha256_of(&sig.envelope),
        media_type: sig.media_type.clone(),
        annotations: Default::default(),
        bytes: sig.envelope.clone(),
    }
}

const DAY: Duration = Duration::from_secs(86_400);
const CRL_URL: &str = "http://crl.example.com/intermediate.crl";
const OCSP_URL: &str = "http://ocsp.example.com";

fn now() -> SystemTime {
    SystemTime::now()
}

fn odt(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// What to vary in the test PKI.
#[derive(Clone)]
struct Pki {
    leaf_eku: Vec<ExtendedKeyUsagePurpose>,
    leaf_org: &'static str,
    /// The intermediate's notAfter relative to now (negative: already expired).
    intermediate_ends_in_days: i64,
    /// An RSA-2048 leaf (PS256) instead of P-256 (ES256).
    leaf_rsa: bool,
    /// The leaf names a CRL distribution point; CRLs by the intermediate are made.
    with_crl: bool,
    /// The leaf names an OCSP responder (authorityInfoAccess).
    with_ocsp: bool,
}

/// RSA key generation takes seconds: one key per test binary.
fn rsa_key() -> KeyPair {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let der = KEY.get_or_init(|| {
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .unwrap()
            .serialize_der()
    });
    KeyPair::try_from(der.as_slice()).unwrap()
}

impl Default for Pki {
    fn default() -> Self {
        Pki {
            leaf_eku: vec![ExtendedKeyUsagePurpose::CodeSigning],
            leaf_org: "Example",
            intermediate_ends_in_days: 365,
            leaf_rsa: false,
            with_crl: false,
            with_ocsp: false,
        }
    }
}

/// A chain root → intermediate → leaf (P-256), and the leaf's PKCS#8 key.
struct Chain {
    leaf_pkcs8: Vec<u8>,
    leaf_rsa: bool,
    /// CRLs by the intermediate: (clean, revoking the leaf, past nextUpdate).
    crls: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// The intermediate's certificate and key (PEM), to run an OCSP responder.
    inter_pem: String,
    inter_key_pem: String,
    ders: Vec<Vec<u8>>,
    root_pem: String,
}

fn name(params: &mut CertificateParams, org: &str, cn: &str) {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::StateOrProvinceName, "WA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.distinguished_name.push(DnType::CommonName, cn);
}

fn make_chain(pki: &Pki) -> Chain {
    let t = now();
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    name(&mut root, "Example", "root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = odt(t - 3650 * DAY);
    root.not_after = odt(t + 3650 * DAY);
    let root_cert = root.self_signed(&root_key).unwrap();

    let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut inter = CertificateParams::new(Vec::<String>::new()).unwrap();
    name(&mut inter, "Example", "intermediate");
    inter.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    inter.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    inter.not_before = odt(t - 3000 * DAY);
    let ends = pki.intermediate_ends_in_days;
    inter.not_after = if ends >= 0 {
        odt(t + DAY * ends.unsigned_abs() as u32)
    } else {
        odt(t - DAY * ends.unsigned_abs() as u32)
    };
    let root_issuer = Issuer::from_params(&root, &root_key);
    let inter_cert = inter.signed_by(&inter_key, &root_issuer).unwrap();

    let leaf_key = if pki.leaf_rsa {
        rsa_key()
    } else {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    };
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    name(&mut leaf, pki.leaf_org, "signer");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = pki.leaf_eku.clone();
    leaf.not_before = odt(t - 2000 * DAY);
    leaf.not_after = odt(t + 365 * DAY);
    leaf.serial_number = Some(rcgen::SerialNumber::from(42u64));
    if pki.with_ocsp {
        // authorityInfoAccess: SEQUENCE { SEQUENCE { id-ad-ocsp, [6] URI } }
        let uri = OCSP_URL.as_bytes();
        let mut ad = vec![
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x86,
        ];
        ad.push(uri.len() as u8);
        ad.extend_from_slice(uri);
        let mut seq = vec![0x30, ad.len() as u8];
        seq.extend(ad);
        let mut aia = vec![0x30, seq.len() as u8];
        aia.extend(seq);
        leaf.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 1],
            aia,
        )];
    }
    if pki.with_crl {
        leaf.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![CRL_URL.into()],
        }];
    }
    let inter_issuer = Issuer::from_params(&inter, &inter_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &inter_issuer).unwrap();
    let crl = |revoked: bool, next_update: SystemTime| {
        rcgen::CertificateRevocationListParams {
            this_update: odt(t - 2 * DAY),
            next_update: odt(next_update),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: if revoked {
                vec![rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(42u64),
                    revocation_time: odt(t - DAY),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }]
            } else {
                Vec::new()
            },
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&inter_issuer)
        .unwrap()
        .der()
        .to_vec()
    };
    let crls = pki
        .with_crl
        .then(|| (crl(false, t + DAY), crl(true, t + DAY), crl(false, t - DAY)));

    Chain {
        leaf_pkcs8: leaf_key.serialize_der(),
        leaf_rsa: pki.leaf_rsa,
        crls,
        inter_pem: inter_cert.pem(),
        inter_key_pem: inter_key.serialize_pem(),
        ders: vec![
            leaf_cert.der().to_vec(),
            inter_cert.der().to_vec(),
            root_cert.der().to_vec(),
        ],
        root_pem: root_cert.pem(),
    }
}

fn subject() -> Subject {
    let manifest = br#"{"schemaVersion":2}"#;
    Subject {
        digest: Digest::sha256_of(manifest),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: manifest.len() as u64,
    }
}

fn payload_for(s: &Subject) -> Vec<u8> {
    serde_json::to_vec(&json!({"targetArtifact": {
        "mediaType": s.media_type, "digest": s.digest.as_str(), "size": s.size,
    }}))
    .unwrap()
}

/// What to vary in the envelope.
#[derive(Clone, Default)]
struct Env {
    payload: Option<Vec<u8>>,
    expiry: Option<SystemTime>,
    unknown_critical: bool,
    tamper: bool,
    alg_override: Option<&'static str>,
    /// Sign with the notary.x509.signingAuthority scheme and this authentic signing time.
    authentic_time: Option<SystemTime>,
    /// Countersign with this TSA; `true` stamps other bytes than the signature.
    timestamp: Option<(std::rc::Rc<Tsa>, bool)>,
    /// Edits the JWS protected header before it is signed.
    jws_header: Option<fn(&mut serde_json::Value)>,
}

impl Env {
    fn token(&self, signature: &[u8]) -> Option<Vec<u8>> {
        let (tsa, wrong) = self.timestamp.as_ref()?;
        Some(if *wrong {
            tsa.stamp(b"some other bytes")
        } else {
            tsa.stamp(signature)
        })
    }
}

/// A throwaway RFC 3161 TSA: rcgen certificates, `openssl ts -reply` tokens.
struct Tsa {
    dir: tempfile::TempDir,
    root_pem: String,
    /// The root's key, to sign CRLs about the TSA certificate (serial 7).
    root_key_pem: String,
}

impl Tsa {
    fn new() -> Tsa {
        Tsa::naming_crl(None)
    }

    /// A TSA whose certificate names this CRL distribution point.
    fn naming_crl(crl_url: Option<&str>) -> Tsa {
        let t = now();
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
        name(&mut root, "Example", "tsa root");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = odt(t - 3650 * DAY);
        root.not_after = odt(t + 3650 * DAY);
        let root_cert = root.self_signed(&root_key).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        name(&mut leaf, "Example", "tsa");
        leaf.serial_number = Some(rcgen::SerialNumber::from(7u64));
        if let Some(url) = crl_url {
            leaf.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![url.into()],
            }];
        }
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = odt(t - 365 * DAY);
        leaf.not_after = odt(t + 365 * DAY);
        // RFC 3161 wants the EKU critical, which rcgen's own EKU field is not.
        let mut eku = rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 37],
            vec![
                0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
            ],
        );
        eku.set_criticality(true);
        leaf.custom_extensions = vec![eku];
        let issuer = Issuer::from_params(&root, &root_key);
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("tsa.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("tsa.key"), key.serialize_pem()).unwrap();
        std::fs::write(d.join("serial"), "01\n").unwrap();
        std::fs::write(
            d.join("ts.cnf"),
            format!(
                "[ tsa ]\ndefault_tsa = t\n[ t ]\nserial = {}/serial\nsigner_digest = sha256\n\
                 default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\n\
                 accuracy = secs:1, millisecs:500\ness_cert_id_alg = sha256\n",
                d.display()
            ),
        )
        .unwrap();
        Tsa {
            dir,
            root_pem: root_cert.pem(),
            root_key_pem: root_key.serialize_pem(),
        }
    }

    fn stamp(&self, data: &[u8]) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("data"), data).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl is installed");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        run(&[
            "ts", "-query", "-data", "data", "-sha256", "-cert", "-out", "req.tsq",
        ]);
        run(&[
            "ts",
            "-reply",
            "-config",
            "ts.cnf",
            "-queryfile",
            "req.tsq",
            "-signer",
            "tsa.pem",
            "-inkey",
            "tsa.key",
            "-token_out",
            "-out",
            "token.der",
        ]);
        std::fs::read(d.join("token.der")).unwrap()
    }
}

fn sign(chain: &Chain, msg: &[u8]) -> Vec<u8> {
    let pkcs8 = chain.leaf_pkcs8.as_slice();
    if chain.leaf_rsa {
        let kp = sig::RsaKeyPair::from_pkcs8(pkcs8).unwrap();
        let mut out = vec![0; kp.public_modulus_len()];
        kp.sign(&sig::RSA_PSS_SHA256, &SystemRandom::new(), msg, &mut out)
            .unwrap();
        return out;
    }
    let kp = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
    let _ = kp.public_key();
    kp.sign(&SystemRandom::new(), msg)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn jws(chain: &Chain, e: &Env) -> NotationSignature {
    let signing_time = now() - DAY;
    let mut header = json!({
        "alg": e.alg_override.unwrap_or(if chain.leaf_rsa { "PS256" } else { "ES256" }),
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": fmt_time(signing_time),
    });
    if let Some(at) = e.authentic_time {
        let h = header.as_object_mut().unwrap();
        h.remove("io.cncf.notary.signingTime");
        h.insert(
            "io.cncf.notary.signingScheme".into(),
            json!("notary.x509.signingAuthority"),
        );
        h.insert(
            "io.cncf.notary.authenticSigningTime".into(),
            json!(fmt_time(at)),
        );
        header["crit"]
            .as_array_mut()
            .unwrap()
            .push(json!("io.cncf.notary.authenticSigningTime"));
    }
    if let Some(x) = e.expiry {
        header["io.cncf.notary.expiry"] = json!(fmt_time(x));
        header["crit"]
            .as_array_mut()
            .unwrap()
            .push(json!("io.cncf.notary.expiry"));
    }
    if e.unknown_critical {
        header["com.example.unknown"] = json!("x");
        header["crit"]
            .as_array_mut()
            .unwrap()
            .push(json!("com.example.unknown"));
    }
    if let Some(edit) = e.jws_header {
        edit(&mut header);
    }
    let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
    let payload_bytes = e.payload.clone().unwrap_or_else(|| payload_for(&subject()));
    let payload = URL_SAFE_NO_PAD.encode(&payload_bytes);
    let signature = sign(chain, format!("{protected}.{payload}").as_bytes());
    let payload = if e.tamper {
        let mut p = payload_bytes.clone();
        p.extend_from_slice(b" ");
        URL_SAFE_NO_PAD.encode(p)
    } else {
        payload
    };
    let mut envelope = json!({
        "payload": payload,
        "protected": protected,
        "header": {
            "x5c": chain.ders.iter().map(|d| STANDARD.encode(d)).collect::<Vec<_>>(),
            "io.cncf.notary.signingAgent": "signet-test/1",
        },
        "signature": URL_SAFE_NO_PAD.encode(&signature),
    });
    if let Some(token) = e.token(&signature) {
        envelope["header"]["io.cncf.notary.timestampSignature"] = json!(STANDARD.encode(token));
    }
    let bytes = serde_json::to_vec(&envelope).unwrap();
    NotationSignature {
        manifest_digest: Digest::sha256_of(&bytes),
        media_type: MEDIA_TYPE_JWS.into(),
        envelope: bytes.into(),
    }
}

fn cose(chain: &Chain, e: &Env) -> NotationSignature {
    let epoch = |t: SystemTime| {
        coset::cbor::Value::Tag(
            1,
            Box::new(coset::cbor::Value::Integer(
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    .into(),
            )),
        )
    };
    let text = |s: &str| coset::cbor::Value::Text(s.into());
    let alg = match e.alg_override {
        Some("ES384") => iana::Algorithm::ES384,
        _ if chain.leaf_rsa => iana::Algorithm::PS256,
        _ => iana::Algorithm::ES256,
    };
    let mut protected = HeaderBuilder::new()
        .algorithm(alg)
        .content_type("application/vnd.cncf.notary.payload.v1+json".into())
        .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
            "io.cncf.notary.signingScheme".into(),
        ));
    protected = match e.authentic_time {
        None => protected
            .text_value("io.cncf.notary.signingScheme".into(), text("notary.x509"))
            .text_value("io.cncf.notary.signingTime".into(), epoch(now() - DAY)),
        Some(at) => protected
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "io.cncf.notary.authenticSigningTime".into(),
            ))
            .text_value(
                "io.cncf.notary.signingScheme".into(),
                text("notary.x509.signingAuthority"),
            )
            .text_value("io.cncf.notary.authenticSigningTime".into(), epoch(at)),
    };
    if let Some(x) = e.expiry {
        protected = protected
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "io.cncf.notary.expiry".into(),
            ))
            .text_value("io.cncf.notary.expiry".into(), epoch(x));
    }
    if e.unknown_critical {
        protected = protected
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "com.example.unknown".into(),
            ))
            .text_value("com.example.unknown".into(), text("x"));
    }
    let mut unprotected = HeaderBuilder::new().build();
    unprotected.rest.push((
        Label::Int(33),
        coset::cbor::Value::Array(
            chain
                .ders
                .iter()
                .map(|d| coset::cbor::Value::Bytes(d.clone()))
                .collect(),
        ),
    ));
    let payload = e.payload.clone().unwrap_or_else(|| payload_for(&subject()));
    let mut sign1 = CoseSign1Builder::new()
        .protected(protected.build())
        .unprotected(unprotected)
        .payload(payload)
        .create_signature(b"", |m| sign(chain, m))
        .build();
    if e.tamper
        && let Some(p) = sign1.payload.as_mut()
    {
        p.push(b' ');
    }
    if let Some(token) = e.token(&sign1.signature) {
        sign1.unprotected.rest.push((
            Label::Text("io.cncf.notary.timestampSignature".into()),
            coset::cbor::Value::Bytes(token),
        ));
    }
    let bytes = sign1.to_tagged_vec().unwrap();
    NotationSignature {
        manifest_digest: Digest::sha256_of(&bytes),
        media_type: MEDIA_TYPE_COSE.into(),
        envelope: bytes.into(),
    }
}

fn authority_yaml(yaml: &str) -> NotationAuthority {
    let spec: NotationSpec = serde_yaml::from_str(yaml).unwrap();
    NotationAuthority::load(
        &spec,
        &crate::policy::material::Resolver::files(),
        &crate::policy::material::Context::file(std::path::Path::new(".")),
    )
    .unwrap()
    .0
}

fn authority(root_pem: &str, level: &str, identity: &str) -> NotationAuthority {
    let pem = root_pem.replace('\n', "\n      ");
    authority_yaml(&format!(
        "signatureVerification: {{level: {level}}}\n\
         trustStores:\n\
         - type: ca\n  name: test\n  certificates:\n  - inline: |\n      {pem}\n\
         trustedIdentities: [\"{identity}\"]\n"
    ))
}

fn run(auth: &NotationAuthority, sig: NotationSignature) -> Outcome {
    verify(auth, &subject(), &[sig], &Context { now: now() })
}

type Builder = fn(&Chain, &Env) -> NotationSignature;
const FORMATS: [(&str, Builder); 2] = [("JWS", jws), ("COSE", cose)];

#[track_caller]
fn assert_failed(o: &Outcome, reason: Reason, needle: &str) {
    match o {
        Outcome::Failed(f) => {
            assert_eq!(f.reason, reason, "{f:?}");
            assert!(
                f.detail.contains(needle),
                "{needle:?} not in {:?}",
                f.detail
            );
        }
        Outcome::Trusted(e) => panic!("expected {reason:?}, trusted: {e:?}"),
    }
}

fn authority_with(
    root_pem: &str,
    store_type: &str,
    extra: &str,
    verify_timestamp: &str,
) -> NotationAuthority {
    let indent = |p: &str| p.replace('\n', "\n      ");
    authority_yaml(&format!(
        "signatureVerification: {{level: strict{verify_timestamp}}}\n\
         trustStores:\n\
         - type: {store_type}\n  name: test\n  certificates:\n  - inline: |\n      {}\n\
         {extra}\
         trustedIdentities: ['*']\n",
        indent(root_pem)
    ))
}

fn tsa_store(tsa: &Tsa) -> String {
    format!(
        "- type: tsa\n  name: tsa\n  certificates:\n  - inline: |\n      {}\n",
        tsa.root_pem.replace('\n', "\n      ")
    )
}

mod properties;
mod real_timestamps;
mod revocation;
mod revocation_cases;
mod seam;
mod signatures;
mod timestamps;
