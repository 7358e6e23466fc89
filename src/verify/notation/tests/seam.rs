//! The format seam: one check (everything but revocation, plus the fetch plan) and a verdict
//! that only judges the fetched answers. The revocation tests beside this one go through the
//! seam too (`seam_plan`, `seam_verdict`).

use super::*;
use crate::verify::format::{Fetched, Format, Kind};

#[test]
fn an_untrusted_chain_plans_no_fetch_and_fails_at_authenticity() {
    let chain = make_chain(&Pki {
        leaf: naming(true, false),
        ..pki()
    });
    let other = make_chain(&pki());
    let trusting_other = authority(&other.root.cert_pem, "strict", "*");
    let ctx = Context { now: now() };
    for (fmt, build) in FORMATS {
        let sig = build(&chain, &Env::default());
        let (proved, plan) = Notation::check(&trusting_other, &subject(), &sig, 0, &ctx);
        assert!(plan.is_empty(), "{fmt}: {plan:?}");
        assert_failed(
            &Notation::verdict(&trusting_other, proved, &Fetched::default(), &ctx),
            Reason::UntrustedSigner,
            "authenticity",
        );
    }
}

#[test]
fn a_discovered_referrer_reads_as_its_envelope() {
    let chain = make_chain(&pki());
    let (_, build) = FORMATS[0];
    let sig = build(&chain, &Env::default());
    let read = Notation::read(crate::verify::format::Artifact {
        kind: Kind::Notation,
        manifest: Some(sig.manifest_digest.clone()),
        layer_digest: Digest::sha256_of(&sig.envelope),
        media_type: sig.media_type.clone(),
        annotations: Default::default(),
        bytes: sig.envelope.clone(),
    });
    assert_eq!(read.manifest_digest, sig.manifest_digest);
    assert_eq!(read.media_type, sig.media_type);
    assert_eq!(read.envelope, sig.envelope);
}
