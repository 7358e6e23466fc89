//! One signature, rule by rule: formats and algorithms, certificate requirements, authenticity,
//! envelope integrity and header rules, expiry under each level, many signatures, garbage.

use super::*;

#[test]
fn valid_signature_passes_in_both_formats() {
    let chain = make_chain(&pki());
    let auth = authority(&chain.root.cert_pem, "strict", "*");
    let by_identity = authority(
        &chain.root.cert_pem,
        "strict",
        "x509.subject: C=US, ST=WA, O=Example",
    );
    for (fmt, build) in FORMATS {
        for a in [&auth, &by_identity] {
            match run(a, build(&chain, &Env::default())) {
                Outcome::Trusted(e) => {
                    assert!(e.logged.is_empty(), "{fmt}: {e:?}");
                    assert!(e.summary.contains(fmt), "{e:?}");
                    assert!(e.summary.contains("CN=signer"), "{e:?}");
                }
                Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
            }
        }
    }
}

#[test]
fn rsa_pss_signature_passes_in_both_formats() {
    let chain = make_chain(&Pki {
        leaf_rsa: true,
        ..pki()
    });
    let auth = authority(&chain.root.cert_pem, "strict", "*");
    for (fmt, build) in FORMATS {
        match run(&auth, build(&chain, &Env::default())) {
            Outcome::Trusted(e) => assert!(e.logged.is_empty(), "{fmt}: {e:?}"),
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        // PS256 is the only algorithm for an RSA-2048 key.
        let wrong = Env {
            alg_override: Some("ES384"),
            ..Env::default()
        };
        assert_failed(
            &run(&auth, build(&chain, &wrong)),
            Reason::SignatureInvalid,
            "requires PS256",
        );
    }
}

#[test]
fn certificate_requirements_are_integrity_at_every_level() {
    for (eku, needle) in [
        (ExtendedKeyUsagePurpose::ServerAuth, "contains serverAuth"),
        (
            ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 99999]),
            "lacks codeSigning",
        ),
        (ExtendedKeyUsagePurpose::Any, "anyExtendedKeyUsage"),
    ] {
        let chain = make_chain(&Pki {
            leaf_eku: vec![eku],
            ..pki()
        });
        for level in ["strict", "audit"] {
            let auth = authority(&chain.root.cert_pem, level, "*");
            for (fmt, build) in FORMATS {
                let o = run(&auth, build(&chain, &Env::default()));
                assert_failed(&o, Reason::CertificateInvalid, needle);
                assert_failed(&o, Reason::CertificateInvalid, "integrity");
                let _ = fmt;
            }
        }
    }
}

#[test]
fn leaf_key_usage_rules() {
    // rcgen writes keyUsage critical; add a forbidden bit next to digitalSignature.
    let chain = make_chain(&Pki {
        leaf_key_usages: vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ],
        ..pki()
    });
    let auth = authority(&chain.root.cert_pem, "audit", "*");
    for (_, build) in FORMATS {
        assert_failed(
            &run(&auth, build(&chain, &Env::default())),
            Reason::CertificateInvalid,
            "keyUsage has keyAgreement",
        );
    }
}

#[test]
fn expired_intermediate_is_authentic_timestamp() {
    let chain = make_chain(&Pki {
        intermediate_valid: (3000, -10),
        ..pki()
    });
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let permissive = authority(&chain.root.cert_pem, "permissive", "*");
    for (_, build) in FORMATS {
        let o = run(&strict, build(&chain, &Env::default()));
        assert_failed(&o, Reason::Expired, "authenticTimestamp: certificate");
        match run(&permissive, build(&chain, &Env::default())) {
            Outcome::Trusted(e) => assert!(e.logged[0].contains("CN=intermediate"), "{e:?}"),
            Outcome::Failed(f) => panic!("{f:?}"),
        }
    }
}

#[test]
fn untrusted_root_and_identity_mismatch_are_authenticity() {
    let chain = make_chain(&pki());
    let other = make_chain(&pki());
    let untrusted = authority(&other.root.cert_pem, "strict", "*");
    let wrong_identity = authority(
        &chain.root.cert_pem,
        "strict",
        "x509.subject: C=US, ST=WA, O=Other",
    );
    let audit = authority(&other.root.cert_pem, "audit", "*");
    for (_, build) in FORMATS {
        assert_failed(
            &run(&untrusted, build(&chain, &Env::default())),
            Reason::UntrustedSigner,
            "authenticity: the signature's certificate chain does not contain any trusted",
        );
        assert_failed(
            &run(&wrong_identity, build(&chain, &Env::default())),
            Reason::IdentityMismatch,
            "O=Example",
        );
        match run(&audit, build(&chain, &Env::default())) {
            Outcome::Trusted(e) => assert!(e.logged[0].contains("authenticity (logged)")),
            Outcome::Failed(f) => panic!("{f:?}"),
        }
    }
}

#[test]
fn envelope_integrity_failures() {
    let chain = make_chain(&pki());
    let auth = authority(&chain.root.cert_pem, "audit", "*");
    let other = Subject {
        digest: Digest::sha256_of(b"another"),
        ..subject()
    };
    for (fmt, build) in FORMATS {
        let tampered = Env {
            tamper: true,
            ..Env::default()
        };
        assert_failed(
            &run(&auth, build(&chain, &tampered)),
            Reason::SignatureInvalid,
            "does not verify",
        );
        let crit = Env {
            unknown_critical: true,
            ..Env::default()
        };
        assert_failed(
            &run(&auth, build(&chain, &crit)),
            Reason::Malformed,
            "\"com.example.unknown\" is not understood",
        );
        let wrong_target = Env {
            payload: Some(payload_for(&other)),
            ..Env::default()
        };
        assert_failed(
            &run(&auth, build(&chain, &wrong_target)),
            Reason::PayloadMismatch,
            "the signature is for",
        );
        let wrong_alg = Env {
            alg_override: Some("ES384"),
            ..Env::default()
        };
        assert_failed(
            &run(&auth, build(&chain, &wrong_alg)),
            Reason::SignatureInvalid,
            "requires ES256",
        );
        let _ = fmt;
    }
}

#[test]
fn jws_protected_header_rules() {
    let chain = make_chain(&pki());
    let auth = authority(&chain.root.cert_pem, "audit", "*");
    type Edit = fn(&mut serde_json::Value);
    let cases: [(Edit, &str); 7] = [
        (
            |h| h["alg"] = json!("none"),
            "JWS algorithm \"none\" is not allowed",
        ),
        (
            |h| h["alg"] = json!("HS256"),
            "JWS algorithm \"HS256\" is not allowed",
        ),
        (|h| h["crit"] = json!([]), "must be listed in crit"),
        (
            |h| {
                h.as_object_mut().unwrap().remove("crit");
            },
            "no crit list",
        ),
        (
            |h| h["io.cncf.notary.expiry"] = json!("2999-01-01T00:00:00Z"),
            "present but not marked critical",
        ),
        (|h| h["cty"] = json!("application/json"), "content type"),
        (
            |h| h["io.cncf.notary.signingScheme"] = json!("notary.x509.other"),
            "signing scheme \"notary.x509.other\" is not supported",
        ),
    ];
    for (edit, needle) in cases {
        let env = Env {
            jws_header: Some(edit),
            ..Env::default()
        };
        assert_failed(&run(&auth, jws(&chain, &env)), Reason::Malformed, needle);
    }
    // A verification plugin the signature requires cannot be honoured: fail, never skip.
    let plugin = Env {
        jws_header: Some(|h| {
            h["io.cncf.notary.verificationPlugin"] = json!("com.example.plugin");
            h["crit"]
                .as_array_mut()
                .unwrap()
                .push(json!("io.cncf.notary.verificationPlugin"));
        }),
        ..Env::default()
    };
    assert_failed(
        &run(&auth, jws(&chain, &plugin)),
        Reason::Malformed,
        "requires verification plugin",
    );
    // Unknown fields in the envelope itself are rejected.
    let mut v: serde_json::Value =
        serde_json::from_slice(&jws(&chain, &Env::default()).envelope).unwrap();
    v["signatures"] = json!([]);
    let bytes = serde_json::to_vec(&v).unwrap();
    let sig = NotationSignature {
        manifest_digest: Digest::sha256_of(&bytes),
        media_type: MEDIA_TYPE_JWS.into(),
        envelope: bytes.into(),
    };
    assert_failed(
        &run(&auth, sig),
        Reason::Malformed,
        "unknown field `signatures`",
    );
}

#[test]
fn expired_signature_follows_the_level() {
    let chain = make_chain(&pki());
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let permissive = authority(&chain.root.cert_pem, "permissive", "*");
    let env = Env {
        expiry: Some(now() - Duration::from_secs(60)),
        ..Env::default()
    };
    let future = Env {
        expiry: Some(now() + DAY),
        ..Env::default()
    };
    for (_, build) in FORMATS {
        assert_failed(
            &run(&strict, build(&chain, &env)),
            Reason::Expired,
            "expiry: the digital signature has expired",
        );
        assert!(matches!(
            run(&permissive, build(&chain, &env)),
            Outcome::Trusted(_)
        ));
        assert!(matches!(
            run(&strict, build(&chain, &future)),
            Outcome::Trusted(_)
        ));
    }
}

#[test]
fn any_valid_signature_suffices_and_at_most_ten_are_tried() {
    let chain = make_chain(&pki());
    let auth = authority(&chain.root.cert_pem, "strict", "*");
    let bad = jws(
        &chain,
        &Env {
            tamper: true,
            ..Env::default()
        },
    );
    let good = cose(&chain, &Env::default());
    let mut sigs = vec![bad.clone(); 9];
    sigs.push(good.clone());
    assert!(matches!(
        verify(&auth, &subject(), &sigs, &Context { now: now() }),
        Outcome::Trusted(_)
    ));
    let mut sigs = vec![bad; 10];
    sigs.push(good);
    assert_failed(
        &verify(&auth, &subject(), &sigs, &Context { now: now() }),
        Reason::SignatureInvalid,
        "only the first 10 of 11",
    );
    assert_failed(
        &verify(&auth, &subject(), &[], &Context { now: now() }),
        Reason::NoSignature,
        "no Notation signature",
    );
}

#[test]
fn garbage_never_panics() {
    let chain = make_chain(&pki());
    let auth = authority(&chain.root.cert_pem, "audit", "*");
    let valid = jws(&chain, &Env::default()).envelope.to_vec();
    let valid_cose = cose(&chain, &Env::default()).envelope.to_vec();
    let mut inputs: Vec<(String, Vec<u8>)> = vec![
        (MEDIA_TYPE_JWS.into(), b"{}".to_vec()),
        (MEDIA_TYPE_JWS.into(), b"null".to_vec()),
        (MEDIA_TYPE_COSE.into(), vec![0xd2, 0x84]),
        ("text/plain".into(), b"x".to_vec()),
    ];
    // Truncations and single-byte flips of valid envelopes.
    for (mt, v) in [(MEDIA_TYPE_JWS, &valid), (MEDIA_TYPE_COSE, &valid_cose)] {
        for cut in (0..v.len()).step_by(37) {
            inputs.push((mt.into(), v[..cut].to_vec()));
            let mut f = v.clone();
            f[cut] ^= 0x5a;
            inputs.push((mt.into(), f));
        }
    }
    for (mt, bytes) in inputs {
        let s = NotationSignature {
            manifest_digest: Digest::sha256_of(&bytes),
            media_type: mt,
            envelope: bytes.into(),
        };
        // Some flips land in unsigned fields (the signing agent), so only "no panic" holds.
        let _ = run(&auth, s);
    }
}
