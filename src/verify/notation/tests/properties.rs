//! Properties: no envelope, timestamp token or revocation answer makes the verifier panic, and
//! garbage or damaged revocation answers never count as a good status.

use proptest::prelude::*;

use super::*;

proptest! {
    #[test]
    fn envelope_and_token_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = envelope::parse(MEDIA_TYPE_JWS, &bytes);
        let _ = envelope::parse(MEDIA_TYPE_COSE, &bytes);
        let _ = timestamp::verify(&bytes, b"signature", &[]);
        let _ = chain::parse(std::slice::from_ref(&bytes));
    }

    #[test]
    fn cose_with_random_tail_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        // A COSE_Sign1 tag and array header followed by arbitrary CBOR-ish bytes.
        let mut bytes = vec![0xd2, 0x84];
        bytes.extend_from_slice(&tail);
        let _ = envelope::parse(MEDIA_TYPE_COSE, &bytes);
    }

    /// Whatever a responder or CRL server sends, the verifier neither panics nor takes it
    /// for a good status.
    #[test]
    fn garbage_revocation_answers_are_unknown(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let (auth, sig, _) = revocable();
        let data = RevocationData { crls: vec![bytes.clone()], ocsp: vec![bytes] };
        let outcome = seam_verdict(auth, &subject(), std::slice::from_ref(sig), &Context { now: now() }, &data);
        match outcome {
            Outcome::Failed(f) => prop_assert_eq!(f.reason, Reason::RevocationUnknown, "{:?}", f),
            Outcome::Trusted(e) => prop_assert!(false, "trusted on garbage: {:?}", e),
        }
    }

    /// A real clean CRL with one byte changed anywhere no longer vouches for anything: the
    /// status is unknown, never good, never revoked, never a panic.
    #[test]
    fn a_damaged_crl_is_unusable(at in any::<prop::sample::Index>(), with in any::<u8>()) {
        let (auth, sig, crl) = revocable();
        let mut damaged = crl.clone();
        let i = at.index(damaged.len());
        prop_assume!(damaged[i] != with);
        damaged[i] = with;
        let data = RevocationData { crls: vec![damaged], ocsp: Vec::new() };
        let outcome = seam_verdict(auth, &subject(), std::slice::from_ref(sig), &Context { now: now() }, &data);
        match outcome {
            Outcome::Failed(f) => prop_assert_eq!(f.reason, Reason::RevocationUnknown, "byte {}: {:?}", i, f),
            Outcome::Trusted(e) => prop_assert!(false, "byte {}: trusted on a damaged CRL: {:?}", i, e),
        }
    }
}

/// A chain whose leaf names a CRL and an OCSP responder, a JWS signature by it, a strict
/// authority trusting it, and a clean CRL: made once for all cases.
fn revocable() -> &'static (NotationAuthority, NotationSignature, Vec<u8>) {
    static MADE: std::sync::OnceLock<(NotationAuthority, NotationSignature, Vec<u8>)> =
        std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let chain = make_chain(&Pki {
            leaf: naming(true, true),
            ..pki()
        });
        let crl = crls_of(&chain).0;
        (
            authority(&chain.root.cert_pem, "strict", "*"),
            jws(&chain, &Env::default()),
            crl,
        )
    })
}
