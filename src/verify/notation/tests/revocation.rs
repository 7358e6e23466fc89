//! Revocation from supplied answers: one base CRL, OCSP responses from `openssl ocsp`, and the
//! fetch seam that gathers them. The harder cases are in `revocation_cases`.

use super::*;

#[test]
fn revocation_from_supplied_crls() {
    let chain = make_chain(&Pki {
        leaf: naming(true, false),
        ..pki()
    });
    let (clean, revoked, stale) = crls_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let permissive = authority(&chain.root.cert_pem, "permissive", "*");
    let skip = authority_yaml(&format!(
        "signatureVerification: {{level: strict, override: {{revocation: skip}}}}\n\
         trustStores:\n- type: ca\n  name: t\n  certificates:\n  - inline: |\n      {}\n\
         trustedIdentities: ['*']\n",
        chain.root.cert_pem.replace('\n', "\n      ")
    ));
    let with = |crls: Vec<Vec<u8>>| RevocationData {
        crls,
        ..RevocationData::default()
    };
    for (fmt, build) in FORMATS {
        let sig = build(&chain, &Env::default());
        let ctx = Context { now: now() };
        let s = std::slice::from_ref(&sig);
        let locations = seam_plan(&strict, &subject(), s, &ctx);
        assert_eq!(locations.len(), 1, "{fmt}");
        assert_eq!(locations[0].crl_urls, vec![CRL_URL.to_string()]);

        assert_failed(
            &verify(&strict, &subject(), s, &ctx),
            Reason::RevocationUnknown,
            "no CRL from",
        );
        match seam_verdict(&strict, &subject(), s, &ctx, &with(vec![clean.clone()])) {
            Outcome::Trusted(e) => assert!(e.logged.is_empty(), "{e:?}"),
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &ctx, &with(vec![revoked.clone()])),
            Reason::Revoked,
            "revocation: certificate 0 of the chain: CN=signer,O=Example,ST=WA,C=US is revoked (CRL",
        );
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &ctx, &with(vec![stale.clone()])),
            Reason::RevocationUnknown,
            "nextUpdate",
        );
        match seam_verdict(
            &permissive,
            &subject(),
            s,
            &ctx,
            &with(vec![revoked.clone()]),
        ) {
            Outcome::Trusted(e) => assert!(e.logged[0].contains("revocation (logged)"), "{e:?}"),
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        assert!(matches!(
            verify(&skip, &subject(), s, &ctx),
            Outcome::Trusted(_)
        ));
    }
    // The fetch seam: a source that serves the clean CRL at its URL.
    struct Source(Vec<u8>);
    impl RevocationSource for Source {
        fn fetch_crl<'a>(&'a self, url: &'a str) -> Fetch<'a> {
            Box::pin(async move {
                if url == CRL_URL {
                    Ok(self.0.clone())
                } else {
                    Err(format!("no CRL at {url}").into())
                }
            })
        }
        fn post_ocsp<'a>(&'a self, url: &'a str, _: &'a [u8]) -> Fetch<'a> {
            Box::pin(async move { Err(format!("no responder at {url}").into()) })
        }
    }
    let sig = jws(&chain, &Env::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let data = rt.block_on(fetch_revocation(
        &Source(clean),
        &seam_plan(
            &strict,
            &subject(),
            std::slice::from_ref(&sig),
            &Context { now: now() },
        ),
    ));
    assert!(matches!(
        seam_verdict(&strict, &subject(), &[sig], &Context { now: now() }, &data),
        Outcome::Trusted(_)
    ));
    // A chain without revocation locations needs no CRL.
    let plain = make_chain(&pki());
    assert!(
        seam_plan(
            &authority(&plain.root.cert_pem, "strict", "*"),
            &subject(),
            &[jws(&plain, &Env::default())],
            &Context { now: now() }
        )
        .is_empty()
    );
}

/// Answers `request` with `openssl ocsp` as `responder` (a chain whose intermediate signs),
/// from an index with `line` (empty: the serial is unknown).
fn ocsp_response(responder: &Chain, request: &[u8], line: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ca.pem"), &responder.intermediate.cert_pem).unwrap();
    std::fs::write(d.join("ca.key"), &responder.intermediate.key_pem).unwrap();
    std::fs::write(d.join("index.txt"), line).unwrap();
    std::fs::write(d.join("req.der"), request).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            "ca.pem",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-reqin",
            "req.der",
            "-respout",
            "resp.der",
            "-ndays",
            "1",
        ])
        .current_dir(d)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{out:?}");
    std::fs::read(d.join("resp.der")).unwrap()
}

#[test]
fn revocation_from_ocsp_responses() {
    let chain = make_chain(&Pki {
        leaf: naming(false, true),
        ..pki()
    });
    let other = make_chain(&pki());
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let sig = jws(&chain, &Env::default());
    let s = std::slice::from_ref(&sig);
    let locations = seam_plan(&strict, &subject(), s, &Context { now: now() });
    assert_eq!(locations.len(), 1);
    assert_eq!(locations[0].ocsp_urls, vec![OCSP_URL.to_string()]);
    let request = locations[0].ocsp_request.clone().unwrap();
    let good = ocsp_response(
        &chain,
        &request,
        "V\t351231235959Z\t\t2A\tunknown\t/CN=signer\n",
    );
    let revoked = ocsp_response(
        &chain,
        &request,
        "R\t351231235959Z\t240101000000Z\t2A\tunknown\t/CN=signer\n",
    );
    let unknown = ocsp_response(&chain, &request, "");
    let forged = ocsp_response(
        &other,
        &request,
        "V\t351231235959Z\t\t2A\tunknown\t/CN=signer\n",
    );
    let ctx = Context { now: now() };
    let with = |ocsp: Vec<Vec<u8>>| RevocationData {
        ocsp,
        ..RevocationData::default()
    };
    for (fmt, build) in FORMATS {
        let sig = build(&chain, &Env::default());
        let s = std::slice::from_ref(&sig);
        match seam_verdict(&strict, &subject(), s, &ctx, &with(vec![good.clone()])) {
            Outcome::Trusted(e) => assert!(e.logged.is_empty(), "{e:?}"),
            Outcome::Failed(f) => panic!("{fmt}: {f:?}"),
        }
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &ctx, &with(vec![revoked.clone()])),
            Reason::Revoked,
            "is revoked (OCSP: revoked on 2024-01-01T00:00:00Z)",
        );
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &ctx, &with(vec![unknown.clone()])),
            Reason::RevocationUnknown,
            "does not know it",
        );
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &ctx, &with(vec![forged.clone()])),
            Reason::RevocationUnknown,
            "is not signed by the issuer",
        );
        assert_failed(
            &verify(&strict, &subject(), s, &ctx),
            Reason::RevocationUnknown,
            "no OCSP response was available",
        );
        // A day later the response (nextUpdate = +1 day) is stale.
        let later = Context {
            now: now() + 2 * DAY,
        };
        assert_failed(
            &seam_verdict(&strict, &subject(), s, &later, &with(vec![good.clone()])),
            Reason::RevocationUnknown,
            "past its nextUpdate",
        );
    }

    // Through the fetch seam.
    struct Responder(Vec<u8>);
    impl RevocationSource for Responder {
        fn fetch_crl<'a>(&'a self, url: &'a str) -> Fetch<'a> {
            Box::pin(async move { Err(format!("no CRL at {url}").into()) })
        }
        fn post_ocsp<'a>(&'a self, url: &'a str, body: &'a [u8]) -> Fetch<'a> {
            Box::pin(async move {
                assert_eq!(url, OCSP_URL);
                assert!(!body.is_empty());
                Ok(self.0.clone())
            })
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let data = rt.block_on(fetch_revocation(&Responder(good), &locations));
    assert!(matches!(
        seam_verdict(&strict, &subject(), s, &ctx, &data),
        Outcome::Trusted(_)
    ));
}
