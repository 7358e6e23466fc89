//! Notation verification, one case per rule, with the test kit's signer
//! ([`signet_testkit::notary`]): certificates made with rcgen at test time, JWS and COSE
//! envelopes signed with aws-lc-rs. Every case runs in both formats.

use std::time::{Duration, SystemTime};

use serde_json::json;
use signet_testkit::notary::craft::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use signet_testkit::notary::{self as kit, RevocationUrls, SigningChain as Chain, Tsa, TsaSpec};

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

/// The unit tests' PKI: `O=Example`, root → intermediate → `CN=signer` (serial 42), the
/// intermediate ending in a year.
type Pki = kit::Pki;

fn pki() -> Pki {
    Pki {
        org: "Example",
        root_cn: "root",
        intermediate_cn: "intermediate",
        intermediate_serial: None,
        intermediate_valid: (3000, 365),
        leaf_org: "Example",
        leaf_cn: "signer",
        leaf_serial: 42,
        leaf_valid: (2000, 365),
        ..Pki::default()
    }
}

/// The leaf names a CRL distribution point ([`CRL_URL`]) and/or an OCSP responder
/// ([`OCSP_URL`]).
fn naming(crl: bool, ocsp: bool) -> RevocationUrls {
    RevocationUrls {
        crl: crl.then(|| CRL_URL.into()),
        ocsp: ocsp.then(|| OCSP_URL.into()),
    }
}

fn make_chain(pki: &Pki) -> Chain {
    Chain::craft(pki)
}

/// CRLs by the chain's intermediate: (clean, revoking the leaf, past nextUpdate).
fn crls_of(chain: &Chain) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let t = now();
    let crl = |revoked: &[u64], next_update| {
        chain
            .intermediate
            .crl_between(revoked, t - 2 * DAY, next_update)
    };
    (crl(&[], t + DAY), crl(&[42], t + DAY), crl(&[], t - DAY))
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
type Env<'a> = kit::Envelope<'a>;

/// A throwaway RFC 3161 TSA (`CN=tsa`, serial 7), naming this CRL distribution point.
fn tsa_naming_crl(crl_url: Option<&str>) -> Tsa {
    Tsa::craft(&TsaSpec {
        org: "Example",
        root_cn: "tsa root",
        cn: "tsa",
        serial: 7,
        valid: (365, 365),
        accuracy: "secs:1, millisecs:500",
        revocation: RevocationUrls {
            crl: crl_url.map(str::to_owned),
            ocsp: None,
        },
    })
}

fn new_tsa() -> Tsa {
    tsa_naming_crl(None)
}

fn jws(chain: &Chain, e: &Env) -> NotationSignature {
    signature(chain, kit::Format::Jws, MEDIA_TYPE_JWS, e)
}

fn cose(chain: &Chain, e: &Env) -> NotationSignature {
    signature(chain, kit::Format::Cose, MEDIA_TYPE_COSE, e)
}

fn signature(chain: &Chain, format: kit::Format, media_type: &str, e: &Env) -> NotationSignature {
    let bytes = chain.envelope(format, &payload_for(&subject()), e);
    NotationSignature {
        manifest_digest: Digest::sha256_of(&bytes),
        media_type: media_type.into(),
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
        tsa.root.cert_pem.replace('\n', "\n      ")
    )
}

mod properties;
mod real_timestamps;
mod revocation;
mod revocation_cases;
mod seam;
mod signatures;
mod timestamps;
