//! Authentic timestamps: RFC 3161 countersignatures from a throwaway openssl TSA, and the
//! signing-authority scheme's authentic signing time.

use super::*;

#[test]
fn rfc3161_timestamps_from_an_openssl_tsa() {
    let chain = make_chain(&pki());
    let tsa = new_tsa();
    let other_tsa = new_tsa();
    let trusting = authority_with(&chain.root.cert_pem, "ca", &tsa_store(&tsa), "");
    let other = authority_with(&chain.root.cert_pem, "ca", &tsa_store(&other_tsa), "");
    let after_expiry = authority_with(
        &chain.root.cert_pem,
        "ca",
        &tsa_store(&tsa),
        ", verifyTimestamp: afterCertExpiry",
    );
    let stamped = Env {
        timestamp: Some((&tsa, false)),
        ..Env::default()
    };
    let wrong = Env {
        timestamp: Some((&tsa, true)),
        ..Env::default()
    };
    for (fmt, build) in FORMATS {
        match run(&trusting, build(&chain, &stamped)) {
            Outcome::Trusted(e) => assert!(e.logged.is_empty(), "{fmt}: {e:?}"),
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        assert_failed(
            &run(&other, build(&chain, &stamped)),
            Reason::TimestampInvalid,
            "does not chain to a tsa trust store",
        );
        assert_failed(
            &run(&trusting, build(&chain, &wrong)),
            Reason::TimestampInvalid,
            "does not timestamp this signature",
        );
        assert_failed(
            &run(&trusting, build(&chain, &Env::default())),
            Reason::TimestampInvalid,
            "no timestamp countersignature",
        );
        // afterCertExpiry: an unexpired chain needs no timestamp.
        assert!(matches!(
            run(&after_expiry, build(&chain, &Env::default())),
            Outcome::Trusted(_)
        ));
    }
}

#[test]
fn signing_authority_scheme() {
    let chain = make_chain(&pki());
    let sa = authority_with(&chain.root.cert_pem, "signingAuthority", "", "");
    let ca_only = authority_with(&chain.root.cert_pem, "ca", "", "");
    let signed = Env {
        authentic_time: Some(now() - DAY),
        ..Env::default()
    };
    let before_leaf = Env {
        authentic_time: Some(now() - 3000 * DAY),
        ..Env::default()
    };
    for (fmt, build) in FORMATS {
        match run(&sa, build(&chain, &signed)) {
            Outcome::Trusted(e) => {
                assert!(e.summary.contains("notary.x509.signingAuthority"), "{e:?}")
            }
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        // A signingAuthority signature is never trusted through a ca store (and vice versa).
        assert_failed(
            &run(&ca_only, build(&chain, &signed)),
            Reason::UntrustedSigner,
            "signingAuthority trust store",
        );
        assert_failed(
            &run(&sa, build(&chain, &Env::default())),
            Reason::UntrustedSigner,
            "of a ca trust store",
        );
        assert_failed(
            &run(&sa, build(&chain, &before_leaf)),
            Reason::TimestampInvalid,
            "at the authentic signing time",
        );
    }
}
