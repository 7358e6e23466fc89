//! Revocation beyond one base CRL or one OCSP answer: delta CRLs, certificateHold and
//! removeFromCRL, the invalidity-date exception, delegated OCSP responders, the OCSP-to-CRL
//! fallback, the TSA chain, and which chains are asked about at all. CRLs, OCSP responses and
//! responder certificates are made by openssl (`openssl ca -gencrl`, `openssl ocsp`,
//! `openssl x509`), independently of the verifier.

use std::collections::HashMap;

use signet_testkit::openssl::{OpensslCa, stamp};

use super::*;

const DELTA_URL: &str = "http://crl.example.com/intermediate-delta.crl";
const RESPONDER_CRL_URL: &str = "http://crl.example.com/responders.crl";
const TSA_CRL_URL: &str = "http://crl.example.com/tsa.crl";
/// openssl CA-database lines: the leaf (serial 42 = 0x2A) revoked, on hold, released.
const LEAF_REVOKED: &str =
    "R\t351231235959Z\t240101000000Z,keyCompromise\t2A\tunknown\t/CN=signer\n";
const LEAF_ON_HOLD: &str = "R\t351231235959Z\t240101000000Z,certificateHold,holdInstructionNone\t2A\tunknown\t/CN=signer\n";
const LEAF_RELEASED: &str =
    "R\t351231235959Z\t240101000000Z,removeFromCRL\t2A\tunknown\t/CN=signer\n";
/// The leaf in good standing (for OCSP: a known serial).
const LEAF_VALID: &str = "V\t351231235959Z\t\t2A\tunknown\t/CN=signer\n";
/// The delegated OCSP responder (serial 77 = 0x4D) revoked.
const RESPONDER_REVOKED: &str =
    "R\t351231235959Z\t240101000000Z,keyCompromise\t4D\tunknown\t/CN=responder\n";
/// The TSA certificate (serial 7) revoked.
const TSA_REVOKED: &str = "R\t351231235959Z\t240101000000Z,keyCompromise\t07\tunknown\t/CN=tsa\n";
/// Marks a CRL as a delta on base CRL number 1.
const DELTA_ON_1: &str = "2.5.29.27 = critical, ASN1:INTEGER:1\n";

/// The chain's intermediate as an openssl CA (the issuer of the leaf's CRLs and OCSP answers).
fn ca_of(chain: &Chain) -> OpensslCa {
    OpensslCa::new(&chain.intermediate.cert_pem, &chain.intermediate.key_pem)
}

fn crls(list: &[&Vec<u8>]) -> RevocationData {
    RevocationData {
        crls: list.iter().map(|c| (*c).clone()).collect(),
        ocsp: Vec::new(),
    }
}

/// Verifies a fresh signature in each format with `data`.
fn each_format(
    auth: &NotationAuthority,
    chain: &Chain,
    env: &Env,
    data: &RevocationData,
) -> Vec<Outcome> {
    FORMATS
        .iter()
        .map(|(_, build)| {
            seam_verdict(
                auth,
                &subject(),
                &[build(chain, env)],
                &Context { now: now() },
                data,
            )
        })
        .collect()
}

#[track_caller]
fn assert_trusted(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(matches!(o, Outcome::Trusted(_)), "{o:?}");
    }
}

#[track_caller]
fn assert_all_failed(outcomes: &[Outcome], reason: Reason, needle: &str) {
    for o in outcomes {
        assert_failed(o, reason, needle);
    }
}

/// A source serving fixed CRLs and OCSP answers by URL, recording what was asked.
#[derive(Default)]
struct Source {
    crls: HashMap<&'static str, Vec<u8>>,
    ocsp: Option<Vec<u8>>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl RevocationSource for Source {
    fn fetch_crl<'a>(&'a self, url: &'a str) -> Fetch<'a> {
        self.asked.lock().unwrap().push(url.to_string());
        Box::pin(async move {
            self.crls
                .get(url)
                .cloned()
                .ok_or_else(|| format!("no CRL at {url}").into())
        })
    }
    fn post_ocsp<'a>(&'a self, url: &'a str, _: &'a [u8]) -> Fetch<'a> {
        self.asked.lock().unwrap().push(url.to_string());
        Box::pin(async move {
            self.ocsp
                .clone()
                .ok_or_else(|| format!("no responder at {url}").into())
        })
    }
}

fn fetch(source: &Source, auth: &NotationAuthority, chain: &Chain, env: &Env) -> RevocationData {
    let sig = jws(chain, env);
    let locations = seam_plan(auth, &subject(), &[sig], &Context { now: now() });
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(fetch_revocation(source, &locations))
}

/// The OCSP request signet would send about the leaf of `chain`.
fn ocsp_request(auth: &NotationAuthority, chain: &Chain) -> Vec<u8> {
    let sig = jws(chain, &Env::default());
    let locations = seam_plan(auth, &subject(), &[sig], &Context { now: now() });
    locations[0]
        .ocsp_request
        .clone()
        .expect("the leaf names a responder")
}

fn crl_chain() -> Chain {
    make_chain(&Pki {
        leaf: naming(true, false),
        ..pki()
    })
}

#[test]
fn delta_crls_extend_their_base() {
    let chain = crl_chain();
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let names_delta = format!("freshestCRL = URI:{DELTA_URL}\n");
    let base = ca.crl("", 1, &names_delta);
    let delta_clean = ca.crl("", 2, DELTA_ON_1);
    let delta_revoking = ca.crl(LEAF_REVOKED, 2, DELTA_ON_1);
    let delta_not_newer = ca.crl("", 1, DELTA_ON_1);
    let delta_of_later_base = ca.crl(LEAF_REVOKED, 6, "2.5.29.27 = critical, ASN1:INTEGER:5\n");
    let env = Env::default();

    assert_trusted(&each_format(
        &strict,
        &chain,
        &env,
        &crls(&[&base, &delta_clean]),
    ));
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&base, &delta_revoking])),
        Reason::Revoked,
        "CN=signer,O=Example,ST=WA,C=US is revoked (CRL from CN=intermediate",
    );
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&base])),
        Reason::RevocationUnknown,
        "a delta CRL is named (freshestCRL) but none that builds on base CRL number 01",
    );
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&base, &delta_of_later_base])),
        Reason::RevocationUnknown,
        "a delta CRL is named",
    );
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&base, &delta_not_newer])),
        Reason::RevocationUnknown,
        "the delta CRL is not newer than its base CRL",
    );

    // The fetcher follows the base CRL's freshestCRL to the delta.
    let source = Source {
        crls: HashMap::from([(CRL_URL, base), (DELTA_URL, delta_revoking)]),
        ..Source::default()
    };
    let data = fetch(&source, &strict, &chain, &env);
    assert_eq!(
        *source.asked.lock().unwrap(),
        vec![CRL_URL.to_string(), DELTA_URL.to_string()]
    );
    assert_all_failed(
        &each_format(&strict, &chain, &env, &data),
        Reason::Revoked,
        "is revoked (CRL",
    );
}

#[test]
fn certificate_hold_revokes_until_a_delta_removes_it() {
    let chain = crl_chain();
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let env = Env::default();
    let on_hold = ca.crl(LEAF_ON_HOLD, 1, "");
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&on_hold])),
        Reason::Revoked,
        "reason certificateHold",
    );
    let on_hold_with_delta = ca.crl(LEAF_ON_HOLD, 1, &format!("freshestCRL = URI:{DELTA_URL}\n"));
    let released = ca.crl(LEAF_RELEASED, 2, DELTA_ON_1);
    assert_trusted(&each_format(
        &strict,
        &chain,
        &env,
        &crls(&[&on_hold_with_delta, &released]),
    ));
    // An expired CRL still proves a revocation, but not a hold or its absence.
    let expired_revoking = ca.crl_until(LEAF_REVOKED, 1, "", now() - DAY / 2);
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&expired_revoking])),
        Reason::Revoked,
        "is revoked (CRL",
    );
    let expired_hold = ca.crl_until(LEAF_ON_HOLD, 1, "", now() - DAY / 2);
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&expired_hold])),
        Reason::RevocationUnknown,
        "on hold in a CRL that is past its nextUpdate",
    );
    let expired_clean = ca.crl_until("", 1, "", now() - DAY / 2);
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&expired_clean])),
        Reason::RevocationUnknown,
        "is past its nextUpdate",
    );
}

#[test]
fn a_compromise_after_the_trusted_signing_time_does_not_revoke() {
    let chain = make_chain(&Pki {
        leaf: naming(true, true),
        ..pki()
    });
    let ca = ca_of(&chain);
    let signed = now() - 10 * DAY;
    let authority_signed = Env {
        authentic_time: Some(signed),
        ..Env::default()
    };
    let sa = authority_with(&chain.root.cert_pem, "signingAuthority", "", "");
    let ca_store = authority(&chain.root.cert_pem, "strict", "*");
    let compromised = |at: SystemTime| {
        format!(
            "R\t351231235959Z\t{},keyTime,{}\t2A\tunknown\t/CN=signer\n",
            &stamp(now() - DAY)[2..],
            stamp(at)
        )
    };
    let later = compromised(now() - 5 * DAY);
    let earlier = compromised(now() - 20 * DAY);
    let request = ocsp_request(&ca_store, &chain);

    let from_crl = |index: &str| crls(&[&ca.crl(index, 1, "")]);
    let from_ocsp = |index: &str| RevocationData {
        crls: Vec::new(),
        ocsp: vec![ca.ocsp(&request, index, None)],
    };
    for data_for in [&from_crl as &dyn Fn(&str) -> RevocationData, &from_ocsp] {
        // Signed (authentic signing time) before the key was compromised: still good.
        let outcomes = each_format(&sa, &chain, &authority_signed, &data_for(&later));
        assert_trusted(&outcomes);
        // Compromised before the signing time: revoked.
        assert_all_failed(
            &each_format(&sa, &chain, &authority_signed, &data_for(&earlier)),
            Reason::Revoked,
            "is revoked",
        );
        // Without a trusted signing time (notary.x509, no timestamp), a listed certificate is
        // revoked whatever its invalidity date.
        let outcomes = each_format(&ca_store, &chain, &Env::default(), &data_for(&later));
        assert_all_failed(&outcomes, Reason::Revoked, "is revoked");
    }
}

#[test]
fn delegated_ocsp_responders_need_nocheck_or_a_clean_crl() {
    let chain = make_chain(&Pki {
        leaf: naming(false, true),
        ..pki()
    });
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let env = Env::default();
    let request = ocsp_request(&strict, &chain);
    let answer = |signer: &(String, String), crls: &[&Vec<u8>]| RevocationData {
        crls: crls.iter().map(|c| (*c).clone()).collect(),
        ocsp: vec![ca.ocsp(&request, LEAF_VALID, Some(signer))],
    };

    let nocheck = ca.responder(true, Some(RESPONDER_CRL_URL));
    assert_trusted(&each_format(&strict, &chain, &env, &answer(&nocheck, &[])));
    let unrevocable = ca.responder(false, None);
    assert_trusted(&each_format(
        &strict,
        &chain,
        &env,
        &answer(&unrevocable, &[]),
    ));

    let checked = ca.responder(false, Some(RESPONDER_CRL_URL));
    assert_all_failed(
        &each_format(&strict, &chain, &env, &answer(&checked, &[])),
        Reason::RevocationUnknown,
        "the revocation status of the OCSP responder CN=responder",
    );
    let clean = ca.crl("", 1, "");
    assert_trusted(&each_format(
        &strict,
        &chain,
        &env,
        &answer(&checked, &[&clean]),
    ));
    let revoking = ca.crl(RESPONDER_REVOKED, 1, "");
    assert_all_failed(
        &each_format(&strict, &chain, &env, &answer(&checked, &[&revoking])),
        Reason::RevocationUnknown,
        "the OCSP responder CN=responder,O=Example,ST=WA,C=US is revoked",
    );

    // The fetcher asks the responder, then fetches the responder's CRL.
    let source = Source {
        crls: HashMap::from([(RESPONDER_CRL_URL, clean)]),
        ocsp: Some(ca.ocsp(&request, LEAF_VALID, Some(&checked))),
        ..Source::default()
    };
    let data = fetch(&source, &strict, &chain, &env);
    assert_eq!(
        *source.asked.lock().unwrap(),
        vec![OCSP_URL.to_string(), RESPONDER_CRL_URL.to_string()]
    );
    assert_trusted(&each_format(&strict, &chain, &env, &data));
}

#[test]
fn an_ocsp_unknown_falls_back_to_the_crl() {
    let chain = make_chain(&Pki {
        leaf: naming(true, true),
        ..pki()
    });
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let env = Env::default();
    let request = ocsp_request(&strict, &chain);
    let unknown = ca.ocsp(&request, "", None);
    let clean = ca.crl("", 1, "");
    let revoking = ca.crl(LEAF_REVOKED, 1, "");
    let with = |crl: &Vec<u8>| RevocationData {
        crls: vec![crl.clone()],
        ocsp: vec![unknown.clone()],
    };
    assert_trusted(&each_format(&strict, &chain, &env, &with(&clean)));
    assert_all_failed(
        &each_format(&strict, &chain, &env, &with(&revoking)),
        Reason::Revoked,
        "is revoked (CRL",
    );
    assert_all_failed(
        &each_format(
            &strict,
            &chain,
            &env,
            &RevocationData {
                crls: Vec::new(),
                ocsp: vec![unknown.clone()],
            },
        ),
        Reason::RevocationUnknown,
        "(OCSP: the OCSP responder does not know it)",
    );
    // A good OCSP answer spares the CRL download; an unknown one does not.
    let good = Source {
        crls: HashMap::from([(CRL_URL, clean.clone())]),
        ocsp: Some(ca.ocsp(&request, LEAF_VALID, None)),
        ..Source::default()
    };
    fetch(&good, &strict, &chain, &env);
    assert_eq!(*good.asked.lock().unwrap(), vec![OCSP_URL.to_string()]);
    let fallback = Source {
        crls: HashMap::from([(CRL_URL, clean)]),
        ocsp: Some(unknown),
        ..Source::default()
    };
    let data = fetch(&fallback, &strict, &chain, &env);
    assert_eq!(
        *fallback.asked.lock().unwrap(),
        vec![OCSP_URL.to_string(), CRL_URL.to_string()]
    );
    assert_trusted(&each_format(&strict, &chain, &env, &data));
}

#[test]
fn the_tsa_chain_is_checked_for_revocation() {
    let chain = make_chain(&pki());
    let tsa = tsa_naming_crl(Some(TSA_CRL_URL));
    let tsa_ca = OpensslCa::new(&tsa.root.cert_pem, &tsa.root.key_pem);
    let store = tsa_store(&tsa);
    let strict = authority_with(&chain.root.cert_pem, "ca", &store, "");
    let skip = authority_with(
        &chain.root.cert_pem,
        "ca",
        &store,
        ", override: {revocation: skip}",
    );
    let permissive = authority_yaml(&format!(
        "signatureVerification: {{level: permissive}}\n\
         trustStores:\n\
         - type: ca\n  name: test\n  certificates:\n  - inline: |\n      {}\n\
         {store}\
         trustedIdentities: ['*']\n",
        chain.root.cert_pem.replace('\n', "\n      ")
    ));
    let env = Env {
        timestamp: Some((&tsa, false)),
        ..Env::default()
    };
    let locations = seam_plan(
        &strict,
        &subject(),
        &[jws(&chain, &env)],
        &Context { now: now() },
    );
    assert_eq!(locations.len(), 1, "{locations:?}");
    assert!(
        locations[0].certificate.starts_with("CN=tsa"),
        "{locations:?}"
    );
    assert_eq!(locations[0].crl_urls, vec![TSA_CRL_URL.to_string()]);

    let clean = tsa_ca.crl("", 1, "");
    let revoking = tsa_ca.crl(TSA_REVOKED, 1, "");
    assert_trusted(&each_format(&strict, &chain, &env, &crls(&[&clean])));
    assert_all_failed(
        &each_format(&strict, &chain, &env, &crls(&[&revoking])),
        Reason::Revoked,
        "authenticTimestamp: the timestamp's TSA chain: certificate 0 of the chain: \
         CN=tsa,O=Example,ST=WA,C=US is revoked",
    );
    assert_all_failed(
        &each_format(&strict, &chain, &env, &RevocationData::default()),
        Reason::RevocationUnknown,
        "authenticTimestamp: the timestamp's TSA chain: the revocation status of CN=tsa",
    );
    assert_trusted(&each_format(
        &skip,
        &chain,
        &env,
        &RevocationData::default(),
    ));
    for o in each_format(&permissive, &chain, &env, &crls(&[&revoking])) {
        match o {
            Outcome::Trusted(e) => assert!(
                e.logged[0].contains("authenticTimestamp (logged): the timestamp's TSA chain"),
                "{e:?}"
            ),
            Outcome::Failed(f) => panic!("{f:?}"),
        }
    }
}

#[test]
fn untrusted_chains_are_never_asked_about() {
    let chain = make_chain(&Pki {
        leaf: naming(true, true),
        ..pki()
    });
    let other = make_chain(&pki());
    let sig = [jws(&chain, &Env::default())];
    let ctx = Context { now: now() };
    let trusting = authority(&chain.root.cert_pem, "strict", "*");
    assert_eq!(seam_plan(&trusting, &subject(), &sig, &ctx).len(), 1);
    // Another root, a subject that is not a trusted identity, a tampered signature, or an
    // audit level (which lets authenticity failures through): no location is reported.
    let untrusted = authority(&other.root.cert_pem, "strict", "*");
    let wrong_identity = authority(
        &chain.root.cert_pem,
        "strict",
        "x509.subject: C=US, ST=WA, O=Other",
    );
    let audit_other_root = authority(&other.root.cert_pem, "audit", "*");
    for auth in [&untrusted, &wrong_identity, &audit_other_root] {
        assert!(seam_plan(auth, &subject(), &sig, &ctx).is_empty());
    }
    let tampered = [jws(
        &chain,
        &Env {
            tamper: true,
            ..Env::default()
        },
    )];
    assert!(seam_plan(&trusting, &subject(), &tampered, &ctx).is_empty());
    // An authority that skips revocation needs none.
    let skipping = authority_with(
        &chain.root.cert_pem,
        "ca",
        "",
        ", override: {revocation: skip}",
    );
    assert!(seam_plan(&skipping, &subject(), &sig, &ctx).is_empty());
}

#[test]
fn a_pass_holds_until_its_evidence_expires() {
    let chain = make_chain(&Pki {
        leaf: naming(false, true),
        ..pki()
    });
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let skip = authority_with(
        &chain.root.cert_pem,
        "ca",
        "",
        ", override: {revocation: skip}",
    );
    let request = ocsp_request(&strict, &chain);
    let good = RevocationData {
        crls: Vec::new(),
        ocsp: vec![ca.ocsp(&request, LEAF_VALID, None)],
    };
    let until = |auth: &NotationAuthority, env: &Env, data: &RevocationData| {
        each_format(auth, &chain, env, data)
            .into_iter()
            .map(|o| match o {
                Outcome::Trusted(e) => e.valid_until.expect("a limit"),
                Outcome::Failed(f) => panic!("{f:?}"),
            })
            .collect::<Vec<_>>()
    };
    let near = |t: SystemTime, want: SystemTime| {
        let d = t.duration_since(want).unwrap_or_else(|e| e.duration());
        d < Duration::from_secs(120)
    };
    // No revocation check: the chain's earliest notAfter (the leaf and intermediate, +365 days).
    for t in until(&skip, &Env::default(), &RevocationData::default()) {
        assert!(near(t, now() + 365 * DAY), "{t:?}");
    }
    // The OCSP answer is due for renewal in a day (`openssl ocsp -ndays 1`).
    for t in until(&strict, &Env::default(), &good) {
        assert!(near(t, now() + DAY), "{t:?}");
    }
    // A signature expiring in an hour holds for an hour.
    let expiring = Env {
        expiry: Some(now() + Duration::from_secs(3600)),
        ..Env::default()
    };
    for t in until(&strict, &expiring, &good) {
        assert!(near(t, now() + Duration::from_secs(3600)), "{t:?}");
    }
}

#[test]
fn caches_can_tell_how_long_an_answer_is_current() {
    let chain = make_chain(&Pki {
        leaf: naming(false, true),
        ..pki()
    });
    let ca = ca_of(&chain);
    let strict = authority(&chain.root.cert_pem, "strict", "*");
    let near = |t: Option<SystemTime>, want: SystemTime| {
        let t = t.expect("a nextUpdate");
        let d = t.duration_since(want).unwrap_or_else(|e| e.duration());
        d < Duration::from_secs(120)
    };
    let ocsp = ca.ocsp(&ocsp_request(&strict, &chain), LEAF_VALID, None);
    assert!(near(fresh_until(&ocsp, true), now() + DAY));
    let crl = ca.crl_until("", 1, "", now() + 3 * DAY);
    assert!(near(fresh_until(&crl, false), now() + 3 * DAY));
    assert_eq!(fresh_until(b"garbage", true), None);
    assert_eq!(fresh_until(b"garbage", false), None);
}
