//! A policy file whose Secret is missing: the directory still loads, and the images the policy
//! covers are denied (never left to `noMatch`, never allowed), until the Secret exists.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signet::decision::{ImageStatus, ImageUse, Verdict};
use signet::engine;
use signet::metrics::Metrics;
use signet::policy::material::{Context, MaterialError, ObjectKeyRef, ObjectKind, ObjectMaterial};
use signet::policy::source::{Directory, Source};
use signet::reason::Reason;
use signet::registry::RegistryConfig;

use crate::support::cosign::{self, CosignKey};
use crate::support::registry::TestRegistry;
use crate::support::signet::test_options;

/// Secrets as the Kubernetes source would answer: the one key while it exists.
#[derive(Debug)]
struct Secret(Mutex<Option<String>>);

impl ObjectMaterial for Secret {
    fn get(
        &self,
        kind: ObjectKind,
        r: &ObjectKeyRef,
        _: &Context<'_>,
    ) -> Result<(Vec<u8>, String), MaterialError> {
        let shown = format!("{} signet-system/{}", kind.as_str(), r.name);
        match self.0.lock().unwrap().clone() {
            Some(pem) => Ok((pem.into_bytes(), shown)),
            None => Err(MaterialError::NotFound(format!("{shown} not found"))),
        }
    }
    fn version(&self) -> u64 {
        0
    }
}

async fn decide(registry: &TestRegistry, source: &Directory, image: &str) -> Verdict {
    let set = source.load().expect("the directory loads");
    let config = RegistryConfig {
        insecure: vec![registry.addr()],
        ..RegistryConfig::default()
    };
    let engine = engine::build(config, set, Arc::new(Metrics::new()), test_options()).unwrap();
    engine
        .decide(
            &[ImageUse {
                image: image.to_string(),
                containers: vec!["app".into()],
            }],
            None,
            Instant::now() + Duration::from_secs(10),
        )
        .await
}

#[tokio::test]
async fn a_policy_whose_secret_is_missing_denies_the_images_it_covers() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let image = registry.pusher().push_image("team/app", "1.0", 31).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let reference = image.reference_by_tag(&registry.addr());

    let dir = tempfile::tempdir().unwrap();
    // noMatch: allow, so that a policy that vanished would admit the image.
    std::fs::write(
        dir.path().join("policies.yaml"),
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  noMatch: allow\n---\n\
             apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: prod\n\
             spec:\n  images: [\"{}/**\"]\n  authorities:\n    - name: release\n      cosign:\n\
             \x20       keys:\n          - secretRef: {{name: cosign-pub, key: cosign.pub}}\n",
            registry.addr()
        ),
    )
    .unwrap();
    let secret = Arc::new(Secret(Mutex::new(Some(key.public_key_pem()))));
    let resolver = signet::policy::material::Resolver::files().with_objects(secret.clone());
    let source = Directory::new(dir.path(), None).with_resolver(resolver);

    let v = decide(&registry, &source, &reference).await;
    assert!(v.allowed, "trusted while the Secret exists: {v:#?}");

    *secret.0.lock().unwrap() = None;
    let set = source.load().expect("a missing Secret fails no load");
    assert_eq!(set.missing.len(), 1, "{:?}", set.missing);
    assert!(
        set.missing[0].to_string().ends_with(
            "policies.yaml:16: spec.authorities[0].cosign.keys[0]: Secret signet-system/cosign-pub not found"
        ),
        "{}",
        set.missing[0]
    );
    let v = decide(&registry, &source, &reference).await;
    assert!(!v.allowed, "denied once the Secret is gone: {v:#?}");
    let denial = v.denials.join("; ");
    eprintln!("denial: {denial}");
    assert!(
        denial.contains("is not trusted by policy \"prod\": no authority of the policy can trust it: the trust material they name is missing"),
        "{denial}"
    );
    // Nothing can trust the signer: the reason metrics and audit annotations carry.
    let reasons: Vec<_> = v
        .images
        .iter()
        .flat_map(|r| match &r.status {
            ImageStatus::Checked { policies } => {
                policies.iter().map(|p| p.verdict.reason()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(reasons, vec![Reason::UntrustedSigner], "{v:#?}");
}
