//! A Sigstore bundle (the layer of a cosign v3 referrer), checked by a key-based authority.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet::image::Digest;
use signet::policy::{PolicySet, Verifier};
use signet::verify::Context;
use signet::verify::cosign::bundle::verify_bundle;

fn policies() -> PolicySet {
    let key = rcgen::KeyPair::generate().expect("key");
    // The block scalar's lines must sit deeper than its key (`inline`, column 10).
    let pem = key.public_key_pem().replace('\n', "\n            ");
    let yaml = format!(
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {{name: fuzz}}\nspec:\n  images: [\"**\"]\n  authorities:\n    - name: key\n      cosign:\n        keys:\n        - inline: |\n            {pem}\n"
    );
    signet::policy::load_str(std::path::Path::new("fuzz.yaml"), &yaml).expect("fuzz policy loads")
}

fuzz_target!(|data: &[u8]| {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    let set = SET.get_or_init(policies);
    let Verifier::Cosign(authority) = &set.policies[0].authorities[0].verifier else {
        return;
    };
    let digest = Digest::sha256_of(b"image");
    let ctx = Context {
        now: std::time::SystemTime::now(),
    };
    let _ = verify_bundle(authority, &digest, data, &ctx);
});
