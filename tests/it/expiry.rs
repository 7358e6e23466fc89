//! Trust that warns before it expires: an image admitted on a Notation signature whose signing
//! certificate (with no timestamp to pin the signing time) expires in 3 days gets a kubectl
//! `Warning:` and an audit annotation; one whose certificate has a year left gets neither.

use serde_json::Value;

use crate::support::fixtures::{load_review, replace_image};
use crate::support::notary::{ChainSpec, Format, SigningChain, notation_policy};
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, settings};

fn pod_with(image: &str) -> Value {
    let mut review = load_review("pod-create.json");
    assert_eq!(replace_image(&mut review, "nginx:1.27", image), 1);
    review
}

#[tokio::test]
async fn a_certificate_expiring_in_three_days_warns_and_a_distant_one_does_not() {
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let mut chain = SigningChain::new(&ChainSpec::default());
    let lasting = pusher.push_image("team/lasting", "1.0", 51).await;
    chain
        .sign_and_push(&pusher, &lasting, Format::Jws, None)
        .await;
    chain.reissue_leaf_expiring_in(3);
    let expiring = pusher.push_image("team/expiring", "1.0", 52).await;
    chain
        .sign_and_push(&pusher, &expiring, Format::Cose, None)
        .await;
    let glob = format!("{}/team/**", registry.addr());
    let policy = notation_policy(&glob, "{level: strict}", &chain.root.cert_pem, None);
    let signet = Signet::start(&policy, &[&registry]).await;

    let v = signet
        .review(&pod_with(&expiring.reference_by_tag(&registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    let warning = v["response"]["warnings"][0].as_str().expect("a warning");
    assert!(
        warning.contains("expires in 2 days") || warning.contains("expires in 3 days"),
        "{warning}"
    );
    assert!(warning.contains("signet e2e signer"), "{warning}");
    let note = v["response"]["auditAnnotations"]["expiry-0"]
        .as_str()
        .expect("an audit annotation");
    assert!(note.contains("re-sign or rotate"), "{note}");

    let v = signet
        .review(&pod_with(&lasting.reference_by_tag(&registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    assert!(v["response"].get("warnings").is_none(), "{v:#}");
    signet.stop().await;

    // expiryWarningDays: 0 turns the warning off.
    let quiet = format!(
        "{policy}---\n{}",
        settings("deny").replace(
            "  noMatch: deny\n",
            "  noMatch: deny\n  expiryWarningDays: 0\n"
        )
    );
    let signet = Signet::start(&quiet, &[&registry]).await;
    let v = signet
        .review(&pod_with(&expiring.reference_by_tag(&registry.addr())))
        .await;
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    assert!(v["response"].get("warnings").is_none(), "{v:#}");
    signet.stop().await;
}
