//! Keyless (Fulcio certificate) verification of `.sig`-tag signatures.
//!
//! The order follows the Sigstore client spec and fixes the sigstore crate's gaps (it neither
//! checks the payload signature with the certificate's key nor binds the Rekor entry to the
//! signature): (1) the Rekor SET establishes the signing time, since a Fulcio certificate lives
//! ten minutes and "now" proves nothing; without a verified entry there is no trusted time and
//! the signature fails (the legacy `.sig` layout's RFC 3161 annotation is not read; bundles'
//! timestamps are, see [`super::bundle`]); (2) the certificate must chain
//! to a Fulcio CA of the trust root at that time; (3) its EKU/KeyUsage and, when required, its
//! embedded SCT; (4) its identity must match the policy; (5) the payload signature must verify
//! with the certificate's key; (6) the log entry must record this signature, certificate and
//! payload hash; (7) the payload must name the digest being admitted.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use crate::image::Digest;
use crate::policy::cosign::{CosignAuthority, Keyless};
use crate::reason::Reason;
use crate::verify::{Context, Evidence, Failure};

use super::certificate::Leaf;
use super::rekor::{Entry, Signer, check_hashedrekord};
use super::{CosignSignature, check_payload, decode_signature, key_verifies};

/// Checks one `.sig` layer that carries a certificate against the authority's keyless
/// settings. `Ok` is the evidence summary.
pub fn verify_signature(
    authority: &CosignAuthority,
    keyless: &Keyless,
    digest: &Digest,
    s: &CosignSignature,
    ctx: &Context,
) -> Result<Evidence, Failure> {
    let root = authority
        .trust_root
        .as_deref()
        .ok_or_else(|| Failure::new(Reason::Internal, "keyless authority without a trust root"))?;
    let pem = s.certificate.as_deref().ok_or_else(|| {
        Failure::new(
            Reason::UntrustedSigner,
            "the signature has no certificate, and no trusted key verifies it",
        )
    })?;
    let leaf = Leaf::from_pem(pem)?;
    let raw = decode_signature(&s.signature)?;
    let bundle = s.bundle.as_deref().ok_or_else(|| {
        Failure::new(
            Reason::TransparencyLog,
            "the keyless signature has no Rekor bundle, so there is no trusted signing time",
        )
    })?;
    let entry = Entry::from_legacy_bundle(bundle)?;
    let (log, at) = entry.verify_set(root, ctx.now)?;
    let (ca, issuer) = leaf.verify_chain(root, at)?;
    leaf.check_usage()?;
    let sct = if keyless.ctlog_required {
        format!(", SCT from {}", leaf.verify_sct(root, issuer)?)
    } else {
        String::new()
    };
    let who = leaf.check_identity(&keyless.identities)?;
    if !key_verifies(&leaf.key, &s.payload, &raw) {
        return Err(Failure::new(
            Reason::SignatureInvalid,
            format!("the signature does not verify with the key of the certificate for {who}"),
        ));
    }
    check_hashedrekord(
        &entry.body()?,
        &raw,
        &s.payload,
        &Signer::Certificate(&leaf.der),
    )?;
    check_payload(&s.payload, digest)?;
    Ok(Evidence {
        summary: format!(
            "cosign keyless signature by {who}, certificate from {:?}, Rekor {} entry {} at {}{sct}",
            ca.name,
            if log.name.is_empty() {
                "log"
            } else {
                &log.name
            },
            entry.log_index,
            entry.integrated_time
        ),
        logged: Vec::new(),
        valid_until: None,
        expires: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{simple_signing_payload, verify};
    use crate::image::Digest;
    use crate::policy::cosign::{Identity, Matcher};
    use crate::reason::Reason;
    use crate::verify::Outcome;
    use crate::verify::cosign::CosignSignature;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use rcgen::SigningKey;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn d1() -> Digest {
        D1.parse().unwrap()
    }

    fn outcome(
        auth: &crate::policy::cosign::CosignAuthority,
        d: &Digest,
        s: &CosignSignature,
    ) -> Outcome {
        verify(auth, d, std::slice::from_ref(s), &[], &ctx())
    }

    #[track_caller]
    fn reason_of(o: Outcome) -> Reason {
        match o {
            Outcome::Trusted(_) => Reason::Trusted,
            Outcome::Failed(f) => {
                eprintln!("{}: {}", f.reason.as_str(), f.detail);
                f.reason
            }
        }
    }

    fn id(issuer: Matcher, subject: Matcher) -> Identity {
        Identity { issuer, subject }
    }

    #[test]
    fn valid_keyless_signature_is_trusted() {
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        match outcome(&w.default_authority(), &d1(), &s.sig) {
            Outcome::Trusted(e) => {
                assert!(e.summary.contains(EMAIL), "{}", e.summary);
                assert!(e.summary.contains("SCT"), "{}", e.summary);
            }
            Outcome::Failed(f) => panic!("{f:?}"),
        }
    }

    #[test]
    fn keyless_signature_of_another_digest_is_a_payload_mismatch() {
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        let d2: Digest = D2.parse().unwrap();
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d2, &s.sig)),
            Reason::PayloadMismatch
        );
    }

    #[test]
    fn certificate_expired_at_integrated_time() {
        let w = World::new();
        // The leaf lived [T0 - 3600, T0 - 3000]; the log saw the signature at T0 + 60.
        let spec = LeafSpec {
            from: T0 - 3600,
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::Expired
        );
    }

    #[test]
    fn intermediate_expired_at_integrated_time_while_leaf_valid() {
        let mut w = World::new();
        w.fulcio = Fulcio::with_intermediate_validity(T0 - 86400, T0 + 30);
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::Expired
        );
    }

    #[test]
    fn wrong_identity_subject() {
        let w = World::new();
        let spec = LeafSpec {
            san: "mallory@example.com",
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::IdentityMismatch
        );
    }

    #[test]
    fn wrong_issuer() {
        let w = World::new();
        let spec = LeafSpec {
            issuer: Some("https://evil.example.com"),
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::IdentityMismatch
        );
        // No issuer extension at all.
        let spec = LeafSpec {
            issuer: None,
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::IdentityMismatch
        );
    }

    #[test]
    fn regex_identities_are_anchored_at_both_ends() {
        let w = World::new();
        let auth = w.authority(
            &[id(
                Matcher::regex(r"https://accounts\.example\.com").unwrap(),
                Matcher::regex(r".*@example\.com").unwrap(),
            )],
            true,
        );
        let good = w.keyless_signature(&d1(), &LeafSpec::default());
        assert_eq!(reason_of(outcome(&auth, &d1(), &good.sig)), Reason::Trusted);
        for san in ["evil@example.com.attacker", "signer@example.com\n"] {
            let s = w.keyless_signature(
                &d1(),
                &LeafSpec {
                    san,
                    ..LeafSpec::default()
                },
            );
            assert_eq!(
                reason_of(outcome(&auth, &d1(), &s.sig)),
                Reason::IdentityMismatch,
                "{san}"
            );
        }
        // A top-level alternation must not escape the anchors either.
        let auth = w.authority(
            &[id(
                Matcher::Exact(ISSUER.into()),
                Matcher::regex(r"nobody@x|.*@example\.com").unwrap(),
            )],
            true,
        );
        let s = w.keyless_signature(
            &d1(),
            &LeafSpec {
                san: "evil@example.com.attacker",
                ..LeafSpec::default()
            },
        );
        assert_eq!(
            reason_of(outcome(&auth, &d1(), &s.sig)),
            Reason::IdentityMismatch
        );
        // A URI identity: the trusted prefix embedded in another URL does not match.
        let auth = w.authority(
            &[id(
                Matcher::Exact(ISSUER.into()),
                Matcher::regex(r"https://github\.com/org/.*").unwrap(),
            )],
            true,
        );
        let s = w.keyless_signature(
            &d1(),
            &LeafSpec {
                san: "https://evil.example/?https://github.com/org/repo",
                ..LeafSpec::default()
            },
        );
        assert_eq!(
            reason_of(outcome(&auth, &d1(), &s.sig)),
            Reason::IdentityMismatch
        );
        let s = w.keyless_signature(
            &d1(),
            &LeafSpec {
                san: "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
                ..LeafSpec::default()
            },
        );
        assert_eq!(reason_of(outcome(&auth, &d1(), &s.sig)), Reason::Trusted);
        let m = Matcher::regex(r".*@example\.com").unwrap();
        assert!(m.matches("a@example.com"));
        assert!(!m.matches("a@example.com.attacker"));
        assert!(!m.matches("xa@example.comx"));
    }

    #[test]
    fn set_mismatch_is_rejected() {
        let w = World::new();
        let mut s = w.keyless_signature(&d1(), &LeafSpec::default());
        // Same entry, but claiming another integrated time: the SET no longer matches.
        let b = s.sig.bundle.take().unwrap();
        s.sig.bundle = Some(b.replace(
            &format!("\"integratedTime\":{}", T0 + 60),
            &format!("\"integratedTime\":{}", T0 + 61),
        ));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::TransparencyLog
        );
        // A SET from a log the trust root does not know.
        let mut s = w.keyless_signature(&d1(), &LeafSpec::default());
        let rogue = Log::new();
        let body = World::hashedrekord(
            &STANDARD.decode(&s.sig.signature).unwrap(),
            &s.sig.payload,
            s.sig.certificate.as_deref().unwrap(),
        );
        s.sig.bundle = Some(World::legacy_bundle(&rogue, &body, T0 + 60, 1));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::TransparencyLog
        );
    }

    #[test]
    fn missing_bundle_means_no_trusted_time() {
        let w = World::new();
        let mut s = w.keyless_signature(&d1(), &LeafSpec::default());
        s.sig.bundle = None;
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::TransparencyLog
        );
    }

    #[test]
    fn integrated_time_in_the_future_is_rejected() {
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        let early = crate::verify::Context { now: at(T0 + 30) };
        match verify(
            &w.default_authority(),
            &d1(),
            std::slice::from_ref(&s.sig),
            &[],
            &early,
        ) {
            Outcome::Failed(f) => assert_eq!(f.reason, Reason::TimestampInvalid),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn log_entry_for_another_signature_is_rejected() {
        let w = World::new();
        let a = w.keyless_signature(&d1(), &LeafSpec::default());
        let b = w.keyless_signature(&d1(), &LeafSpec::default());
        // a's signature and certificate with b's (valid, correctly signed) log entry.
        let mut grafted = a.sig.clone();
        grafted.bundle = b.sig.bundle.clone();
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &grafted)),
            Reason::TransparencyLog
        );
        // An entry that records a's certificate and payload but another signature.
        let raw = a.key.sign(&a.sig.payload).unwrap();
        let body = World::hashedrekord(&raw, &a.sig.payload, a.sig.certificate.as_deref().unwrap());
        let mut other_sig = a.sig.clone();
        other_sig.bundle = Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 3));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &other_sig)),
            Reason::TransparencyLog
        );
        // An entry for this signature but another payload hash.
        let body = World::hashedrekord(
            &STANDARD.decode(&a.sig.signature).unwrap(),
            b"another payload",
            a.sig.certificate.as_deref().unwrap(),
        );
        let mut other_hash = a.sig.clone();
        other_hash.bundle = Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 4));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &other_hash)),
            Reason::TransparencyLog
        );
    }

    #[test]
    fn certificate_not_from_the_trust_root() {
        let w = World::new();
        // Signed and logged correctly, but under another Fulcio.
        let foreign = Fulcio::new();
        let s = w.keyless_signature_by(&foreign, &d1(), &LeafSpec::default());
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::CertificateInvalid
        );
        // A certificate attached as `chain` does not help: trust comes from the trust root.
        let mut with_chain = s.sig.clone();
        with_chain.chain = Some(pem_cert(&foreign.inter_der) + &pem_cert(&foreign.root_der));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &with_chain)),
            Reason::CertificateInvalid
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let w = World::new();
        let mut s = w.keyless_signature(&d1(), &LeafSpec::default());
        s.sig.payload = simple_signing_payload("registry.test/other", &d1()).into();
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::SignatureInvalid
        );
    }

    #[test]
    fn leaf_without_code_signing_is_rejected() {
        let w = World::new();
        let spec = LeafSpec {
            code_signing: false,
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::CertificateInvalid
        );
    }

    #[test]
    fn sct_from_an_unknown_ct_log_is_rejected_when_required() {
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        let mut root = w.trust_root();
        root.ctlogs = vec![Log::new().log_key("other ct")];
        let mut auth = w.default_authority();
        auth.trust_root = Some(std::sync::Arc::new(root));
        assert_eq!(
            reason_of(outcome(&auth, &d1(), &s.sig)),
            Reason::CertificateInvalid
        );
        // Not required: the same signature passes.
        auth.keyless.as_mut().unwrap().ctlog_required = false;
        assert_eq!(reason_of(outcome(&auth, &d1(), &s.sig)), Reason::Trusted);
    }

    #[test]
    fn verify_keyless_uses_certificates_only() {
        use super::super::verify_keyless;
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        let auth = w.default_authority();
        assert!(matches!(
            verify_keyless(&auth, &d1(), std::slice::from_ref(&s.sig), &ctx()),
            Outcome::Trusted(_)
        ));
        assert_eq!(
            reason_of(verify_keyless(&auth, &d1(), &[], &ctx())),
            Reason::NoSignature
        );
        let keys_only = crate::policy::cosign::CosignAuthority::from_keys(Vec::new());
        assert_eq!(
            reason_of(verify_keyless(&keys_only, &d1(), &[s.sig], &ctx())),
            Reason::UntrustedSigner
        );
    }

    #[test]
    fn legacy_issuer_extension_is_read() {
        let w = World::new();
        let spec = LeafSpec {
            legacy_issuer: true,
            ..LeafSpec::default()
        };
        let s = w.keyless_signature(&d1(), &spec);
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::Trusted
        );
    }

    #[test]
    fn trust_root_validity_windows_are_honoured() {
        use crate::policy::cosign::trust_root::ValidFor;
        let w = World::new();
        let s = w.keyless_signature(&d1(), &LeafSpec::default());
        // The CA's window closed before the signing time.
        let mut root = w.trust_root();
        root.certificate_authorities[0].valid_for = ValidFor {
            start: None,
            end: Some(at(T0)),
        };
        let mut auth = w.default_authority();
        auth.trust_root = Some(std::sync::Arc::new(root));
        assert_eq!(
            reason_of(outcome(&auth, &d1(), &s.sig)),
            Reason::CertificateInvalid
        );
        // The Rekor key's window opened after the signing time.
        let mut root = w.trust_root();
        root.tlogs[0].valid_for = ValidFor {
            start: Some(at(T0 + 3600)),
            end: None,
        };
        auth.trust_root = Some(std::sync::Arc::new(root));
        assert_eq!(
            reason_of(outcome(&auth, &d1(), &s.sig)),
            Reason::TransparencyLog
        );
    }

    #[test]
    fn rekord_entries_of_another_kind_are_rejected() {
        let w = World::new();
        let mut s = w.keyless_signature(&d1(), &LeafSpec::default());
        let body = serde_json::json!({
            "apiVersion": "0.0.1", "kind": "rekord",
            "spec": {"data": {}, "signature": {}}
        });
        let body = STANDARD.encode(body.to_string());
        s.sig.bundle = Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 5));
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s.sig)),
            Reason::TransparencyLog
        );
    }

    #[test]
    fn garbage_annotations_are_malformed_not_panics() {
        let w = World::new();
        let good = w.keyless_signature(&d1(), &LeafSpec::default());
        let mut s = good.sig.clone();
        s.certificate =
            Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into());
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s)),
            Reason::Malformed
        );
        let mut s = good.sig.clone();
        s.bundle = Some("{\"Payload\": 1}".into());
        assert_eq!(
            reason_of(outcome(&w.default_authority(), &d1(), &s)),
            Reason::Malformed
        );
    }

    #[test]
    fn missing_sct_fails_only_when_required() {
        use base64::Engine;
        let w = World::new();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = w.fulcio.leaf(&key, &LeafSpec::default(), None);
        let pem = pem_cert(&cert);
        let payload = simple_signing_payload("registry.test/app", &d1());
        let raw = key.sign(&payload).unwrap();
        let body = World::hashedrekord(&raw, &payload, &pem);
        let s = CosignSignature {
            payload: payload.into(),
            signature: STANDARD.encode(&raw),
            certificate: Some(pem),
            chain: None,
            bundle: Some(World::legacy_bundle(&w.rekor, &body, T0 + 60, 1)),
        };
        let mut auth = w.default_authority();
        match outcome(&auth, &d1(), &s) {
            Outcome::Failed(f) => {
                assert_eq!(f.reason, Reason::CertificateInvalid);
                assert!(f.detail.contains("no embedded SCT"), "{}", f.detail);
            }
            o => panic!("{o:?}"),
        }
        auth.keyless.as_mut().unwrap().ctlog_required = false;
        assert_eq!(reason_of(outcome(&auth, &d1(), &s)), Reason::Trusted);
    }
}
