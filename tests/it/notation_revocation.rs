//! Notation revocation checking through the whole path: certificates made at test time name a
//! CRL distribution point or an OCSP responder on a local [`Responder`] (answers made by
//! rcgen CRLs and `openssl ocsp`, never by signet), the image and its Notation signature are
//! pushed to the test kit's in-process registry without the referrers API (so found through
//! the referrers tag schema, as on docker-registry; what is tested is revocation, not a
//! registry), and real AdmissionReview bodies are posted to the real server, which fetches the
//! revocation data itself. Each scenario runs once per envelope format: `jws::<scenario>` and
//! `cose::<scenario>`.
//!
//! Some tests describe behaviour the main line is still building, and fail until it lands: a
//! chain that is not trusted must cost no revocation request
//! (`untrusted_chain_is_denied_without_asking_the_responder`,
//! `junk_signatures_naming_hanging_responders_do_not_deny_a_trusted_image`), and the TSA
//! certificate of an RFC 3161 countersignature is checked for revocation too (`tsa_*`).

use serde_json::Value;

use crate::support::fault::FaultServer;
use crate::support::fixtures::{load_review, replace_image};
use crate::support::memory::MemoryRegistry;
use crate::support::notary::{
    ChainSpec, Format, INTERMEDIATE_SERIAL, LEAF_SERIAL, RevocationUrls, SigningChain, Tsa,
    notation_policy,
};
use crate::support::responder::{CertStatus, Responder};
use crate::support::signet::Signet;

const POD: &str = "pod-create.json";
const POD_IMAGE: &str = "nginx:1.27";
const REPO: &str = "team/app";
const STRICT: &str = "{level: strict}";

/// One test per scenario and format.
macro_rules! in_both_formats {
    ($($scenario:ident),* $(,)?) => {
        mod jws {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Format::Jws).await
                }
            )*
        }
        mod cose {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::Format::Cose).await
                }
            )*
        }
    };
}

in_both_formats!(
    ocsp_good_is_allowed_after_asking_the_responder,
    leaf_revoked_at_the_ocsp_responder_is_denied,
    clean_crl_is_allowed,
    leaf_revoked_in_the_crl_is_denied,
    intermediate_revoked_in_the_roots_crl_is_denied,
    unreachable_responder_is_denied_under_strict,
    unreachable_responder_is_admitted_under_permissive,
    revocation_skip_admits_a_revoked_leaf_without_asking,
    untrusted_chain_is_denied_without_asking_the_responder,
    tsa_with_a_clean_crl_is_allowed_after_fetching_it,
    tsa_revoked_in_its_crl_is_denied,
);

/// A registry and a revocation responder, both on loopback ports of their own.
struct World {
    registry: MemoryRegistry,
    responder: Responder,
}

impl World {
    fn start() -> World {
        World {
            registry: MemoryRegistry::without_referrers_api(),
            responder: Responder::start(),
        }
    }

    /// A leaf that names only the responder's OCSP endpoint.
    fn ocsp_leaf(&self) -> ChainSpec {
        ChainSpec {
            leaf: RevocationUrls::ocsp(self.responder.url("/ocsp")),
            ..ChainSpec::default()
        }
    }

    /// A leaf that names only the responder's CRL of the intermediate.
    fn crl_leaf(&self) -> ChainSpec {
        ChainSpec {
            leaf: RevocationUrls::crl(self.responder.url("/intermediate.crl")),
            ..ChainSpec::default()
        }
    }

    /// A leaf that names both the responder's OCSP endpoint and the intermediate's CRL.
    fn ocsp_and_crl_leaf(&self) -> ChainSpec {
        ChainSpec {
            leaf: RevocationUrls {
                crl: Some(self.responder.url("/intermediate.crl")),
                ocsp: Some(self.responder.url("/ocsp")),
            },
            ..ChainSpec::default()
        }
    }

    /// Pushes an image tagged after `format` and its signature by `chain` (countersigned by
    /// `tsa`); returns the image reference the pod will name.
    async fn signed_image(
        &self,
        format: Format,
        chain: &SigningChain,
        tsa: Option<&Tsa>,
    ) -> String {
        let pusher = self.registry.pusher();
        let image = pusher.push_image(REPO, format.name(), 7).await;
        chain.sign_and_push(&pusher, &image, format, tsa).await;
        image.reference_by_tag(&self.registry.addr())
    }

    /// signet, with its revocation fetcher, under one Notation policy for this registry that
    /// trusts `ca_root_pem` (and `tsa_root_pem` for timestamps).
    async fn signet(
        &self,
        verification: &str,
        ca_root_pem: &str,
        tsa_root_pem: Option<&str>,
    ) -> Signet {
        let images = format!("{}/**", self.registry.addr());
        let policy = notation_policy(&images, verification, ca_root_pem, tsa_root_pem);
        Signet::start_with_revocation(&policy, &[&self.registry]).await
    }
}

async fn review(signet: &Signet, image: &str) -> Value {
    let mut review = load_review(POD);
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    signet.review(&review).await
}

fn message(v: &Value) -> String {
    v["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Admitted, with no warning.
#[track_caller]
fn assert_allowed(v: &Value, format: Format) {
    let r = &v["response"];
    assert_eq!(r["allowed"], true, "{format:?}: {v:#}");
    assert!(r.get("warnings").is_none(), "{format:?}: {v:#}");
}

/// Denied with 403 Forbidden, and the message holds every one of `words`.
#[track_caller]
fn assert_denied_with(v: &Value, format: Format, words: &[&str]) {
    let r = &v["response"];
    assert_eq!(r["allowed"], false, "{format:?}: {v:#}");
    assert_eq!(r["status"]["code"], 403, "{format:?}: {v:#}");
    assert_eq!(r["status"]["reason"], "Forbidden", "{format:?}: {v:#}");
    let msg = message(v);
    for w in words {
        assert!(
            msg.contains(w),
            "{format:?}: the deny message lacks {w:?}:\n{msg}"
        );
    }
}

async fn ocsp_good_is_allowed_after_asking_the_responder(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.ocsp_leaf());
    w.responder
        .answer_ocsp(&chain.intermediate, &[CertStatus::Good(LEAF_SERIAL)]);
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    assert_allowed(&review(&signet, &image).await, format);
    assert_eq!(
        w.responder.ocsp_requests().len(),
        1,
        "one OCSP request for the leaf: {:?}",
        w.responder.log()
    );
    signet.stop().await;
}

async fn leaf_revoked_at_the_ocsp_responder_is_denied(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.ocsp_leaf());
    w.responder
        .answer_ocsp(&chain.intermediate, &[CertStatus::Revoked(LEAF_SERIAL)]);
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    let v = review(&signet, &image).await;
    assert_denied_with(&v, format, &[&image, "revoked"]);
    assert_eq!(
        w.responder.ocsp_requests().len(),
        1,
        "{:?}",
        w.responder.log()
    );
    signet.stop().await;
}

async fn clean_crl_is_allowed(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.crl_leaf());
    w.responder
        .serve_crl("/intermediate.crl", chain.intermediate.crl(&[]));
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    assert_allowed(&review(&signet, &image).await, format);
    assert_eq!(w.responder.crl_fetches("/intermediate.crl"), 1);
    assert!(w.responder.ocsp_requests().is_empty());
    signet.stop().await;
}

async fn leaf_revoked_in_the_crl_is_denied(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.crl_leaf());
    w.responder
        .serve_crl("/intermediate.crl", chain.intermediate.crl(&[LEAF_SERIAL]));
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    assert_denied_with(&review(&signet, &image).await, format, &[&image, "revoked"]);
    assert_eq!(w.responder.crl_fetches("/intermediate.crl"), 1);
    signet.stop().await;
}

/// The leaf is good at the OCSP responder, but the intermediate above it is revoked in the
/// root's CRL: the whole chain is checked, not only the leaf.
async fn intermediate_revoked_in_the_roots_crl_is_denied(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&ChainSpec {
        leaf: RevocationUrls::ocsp(w.responder.url("/ocsp")),
        intermediate: RevocationUrls::crl(w.responder.url("/root.crl")),
    });
    w.responder
        .answer_ocsp(&chain.intermediate, &[CertStatus::Good(LEAF_SERIAL)]);
    w.responder
        .serve_crl("/root.crl", chain.root.crl(&[INTERMEDIATE_SERIAL]));
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    assert_denied_with(&review(&signet, &image).await, format, &[&image, "revoked"]);
    assert_eq!(
        w.responder.ocsp_requests().len(),
        1,
        "{:?}",
        w.responder.log()
    );
    assert_eq!(w.responder.crl_fetches("/root.crl"), 1);
    signet.stop().await;
}

/// The OCSP responder accepts the connection and never answers; the leaf names no CRL. The
/// status is unknown, which strict treats like revoked.
async fn unreachable_responder_is_denied_under_strict(format: Format) {
    let w = World::start();
    let hole = FaultServer::black_hole();
    let chain = SigningChain::new(&ChainSpec {
        leaf: RevocationUrls::ocsp(format!("http://{}/ocsp", hole.addr())),
        ..ChainSpec::default()
    });
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &chain.root.cert_pem, None).await;

    assert_denied_with(
        &review(&signet, &image).await,
        format,
        &[&image, "revocation status", "unknown"],
    );
    signet.stop().await;
}

/// Permissive only logs a failed revocation check: the image that strict denies is admitted.
/// (signet reports logged checks in its log line and in `signet verify`, not to the user.)
async fn unreachable_responder_is_admitted_under_permissive(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&ChainSpec {
        leaf: RevocationUrls::ocsp(format!("http://{}/ocsp", closed_port())),
        ..ChainSpec::default()
    });
    let image = w.signed_image(format, &chain, None).await;

    let strict = w.signet(STRICT, &chain.root.cert_pem, None).await;
    assert_denied_with(
        &review(&strict, &image).await,
        format,
        &["revocation status", "unknown"],
    );
    strict.stop().await;

    let permissive = w
        .signet("{level: permissive}", &chain.root.cert_pem, None)
        .await;
    let v = review(&permissive, &image).await;
    assert_eq!(v["response"]["allowed"], true, "{format:?}: {v:#}");
    // Admitted, but not silently: kubectl prints the warning.
    let warnings = v["response"]["warnings"].to_string();
    assert!(
        warnings.contains("only logs") && warnings.contains("revocation (logged)"),
        "{format:?}: {v:#}"
    );
    permissive.stop().await;
}

async fn revocation_skip_admits_a_revoked_leaf_without_asking(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.ocsp_and_crl_leaf());
    w.responder
        .answer_ocsp(&chain.intermediate, &[CertStatus::Revoked(LEAF_SERIAL)]);
    w.responder
        .serve_crl("/intermediate.crl", chain.intermediate.crl(&[LEAF_SERIAL]));
    let image = w.signed_image(format, &chain, None).await;
    let skip = "{level: strict, override: {revocation: skip}}";
    let signet = w.signet(skip, &chain.root.cert_pem, None).await;

    assert_allowed(&review(&signet, &image).await, format);
    assert!(
        w.responder.requests().is_empty(),
        "revocation: skip must not fetch anything: {:?}",
        w.responder.log()
    );
    signet.stop().await;
}

/// Revocation data is fetched only for chains that passed integrity and authenticity: a
/// signature by an untrusted root must not make signet call URLs its certificates name.
async fn untrusted_chain_is_denied_without_asking_the_responder(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&w.ocsp_and_crl_leaf());
    w.responder
        .answer_ocsp(&chain.intermediate, &[CertStatus::Good(LEAF_SERIAL)]);
    w.responder
        .serve_crl("/intermediate.crl", chain.intermediate.crl(&[]));
    let trusted = SigningChain::new(&ChainSpec::default());
    let image = w.signed_image(format, &chain, None).await;
    let signet = w.signet(STRICT, &trusted.root.cert_pem, None).await;

    assert_denied_with(
        &review(&signet, &image).await,
        format,
        &[&image, "does not contain any trusted certificate"],
    );
    assert!(
        w.responder.requests().is_empty(),
        "an untrusted chain made signet fetch revocation data: {:?}",
        w.responder.log()
    );
    signet.stop().await;
}

/// The cost of fetching for untrusted chains: anyone who can push a referrer can attach
/// signatures by chains of their own whose leaves name responders that never answer. If
/// signet asks them before judging trust, a validly signed image runs out of review time and
/// is denied. Eight junk signatures and the trusted one: all within the ten signet tries.
#[tokio::test]
async fn junk_signatures_naming_hanging_responders_do_not_deny_a_trusted_image() {
    let w = World::start();
    let hole = FaultServer::black_hole();
    let pusher = w.registry.pusher();
    let image = pusher.push_image(REPO, "app", 9).await;
    for i in 0..8 {
        let junk = SigningChain::new(&ChainSpec {
            leaf: RevocationUrls::ocsp(format!("http://{}/ocsp/{i}", hole.addr())),
            ..ChainSpec::default()
        });
        junk.sign_and_push(&pusher, &image, Format::Jws, None).await;
    }
    let trusted = SigningChain::new(&ChainSpec::default());
    trusted
        .sign_and_push(&pusher, &image, Format::Jws, None)
        .await;
    let signet = w.signet(STRICT, &trusted.root.cert_pem, None).await;

    let reference = image.reference_by_tag(&w.registry.addr());
    assert_allowed(&review(&signet, &reference).await, Format::Jws);
    signet.stop().await;
}

/// The signing chain names no revocation location; the TSA certificate of the RFC 3161
/// countersignature names a CRL, which must be fetched and found clean.
async fn tsa_with_a_clean_crl_is_allowed_after_fetching_it(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&ChainSpec::default());
    let tsa = Tsa::new(&RevocationUrls::crl(w.responder.url("/tsa.crl")));
    w.responder.serve_crl("/tsa.crl", tsa.root.crl(&[]));
    let image = w.signed_image(format, &chain, Some(&tsa)).await;
    let signet = w
        .signet(STRICT, &chain.root.cert_pem, Some(&tsa.root.cert_pem))
        .await;

    assert_allowed(&review(&signet, &image).await, format);
    assert_eq!(
        w.responder.crl_fetches("/tsa.crl"),
        1,
        "the TSA certificate's CRL was not fetched: {:?}",
        w.responder.log()
    );
    signet.stop().await;
}

async fn tsa_revoked_in_its_crl_is_denied(format: Format) {
    let w = World::start();
    let chain = SigningChain::new(&ChainSpec::default());
    let tsa = Tsa::new(&RevocationUrls::crl(w.responder.url("/tsa.crl")));
    w.responder
        .serve_crl("/tsa.crl", tsa.root.crl(&[LEAF_SERIAL]));
    let image = w.signed_image(format, &chain, Some(&tsa)).await;
    let signet = w
        .signet(STRICT, &chain.root.cert_pem, Some(&tsa.root.cert_pem))
        .await;

    let v = review(&signet, &image).await;
    assert_denied_with(&v, format, &[&image, "revoked"]);
    let msg = message(&v).to_lowercase();
    assert!(
        msg.contains("timestamp") || msg.contains("tsa"),
        "{format:?}: the deny message does not say the timestamp's certificate is revoked:\n{msg}"
    );
    signet.stop().await;
}

/// `127.0.0.1:PORT` where nothing listens: bound, then released.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}
