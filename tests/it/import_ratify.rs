//! `signet import ratify`, run as the real binary on a Ratify configuration that trusts a
//! Cosign key and a Notation CA inline (KeyManagementProvider `inline`): the converted policies
//! load, and give Ratify's verdicts on images in the real registry: signed by either signer is
//! trusted; unsigned, or signed by another key, is not. And one whose key is in Azure Key Vault
//! (KeyManagementProvider `azurekeyvault`), read from the test Azure endpoint.

use std::path::Path;
use std::process::{Command, Output};

use crate::keyvault::p256_jwk;
use crate::support::azure::{AzureServer, CLIENT_ID, EXCHANGE_AUDIENCE, TENANT, federated_token};
use crate::support::cosign::{self, CosignKey, KeyKind};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::notary::{ChainSpec, Format, SigningChain};
use crate::support::registry::TestRegistry;

fn signet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run signet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A Ratify configuration in the documented shapes: two inline providers, a Notation verifier
/// and a Cosign verifier for every image, an ORAS store, and `policy` (more documents, or "").
fn ratify_config(key_pem: &str, ca_pem: &str, policy: &str) -> String {
    let block = |pem: &str| pem.trim_end().replace('\n', "\n      ");
    format!(
        r#"apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata:
  name: cosign-key-inline
spec:
  type: inline
  parameters:
    contentType: key
    value: |
      {key}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata:
  name: notation-ca-inline
spec:
  type: inline
  parameters:
    contentType: certificate
    value: |
      {ca}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata:
  name: verifier-notation
spec:
  name: notation
  artifactTypes: application/vnd.cncf.notary.signature
  parameters:
    verificationCertStores:
      certs:
        - notation-ca-inline
    trustPolicyDoc:
      version: "1.0"
      trustPolicies:
        - name: default
          registryScopes: ["*"]
          signatureVerification:
            level: strict
          trustStores: ["ca:certs"]
          trustedIdentities: ["*"]
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata:
  name: verifier-cosign
spec:
  name: cosign
  artifactTypes: application/vnd.dev.cosign.artifact.sig.v1+json
  parameters:
    trustPolicies:
      - name: default
        scopes: ["*"]
        keys:
          - provider: cosign-key-inline
        tLogVerify: false
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata:
  name: store-oras
spec:
  name: oras
  parameters:
    cosignEnabled: true
    useHttp: true
{policy}"#,
        key = block(key_pem),
        ca = block(ca_pem),
    )
}

/// A Policy that requires a verified signature of both types.
const BOTH_REQUIRED: &str = r#"---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Policy
metadata:
  name: ratify-policy
spec:
  type: config-policy
  parameters:
    artifactVerificationPolicies:
      application/vnd.cncf.notary.signature: any
      application/vnd.dev.cosign.artifact.sig.v1+json: any
"#;

fn import(config: &str, work: &Path, out: &str, extra: &[&str]) -> Output {
    let file = work.join(format!("{out}.ratify.yaml"));
    std::fs::write(&file, config).unwrap();
    let out = work.join(out);
    let mut args = vec![
        "import",
        "ratify",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    signet(&args)
}

fn verify(image: &str, policies: &Path, registry: &str) -> Output {
    signet(&[
        "verify",
        image,
        "--policies",
        policies.to_str().unwrap(),
        "--insecure-registry",
        registry,
    ])
}

#[tokio::test]
async fn converted_ratify_configuration_gives_ratifys_verdicts() {
    let registry = TestRegistry::start();
    let addr = registry.addr();
    let pusher = registry.pusher();
    let key = CosignKey::p256();
    let chain = SigningChain::new(&ChainSpec::default());

    let cosigned = pusher.push_image("team/cosigned", "1.0", 71).await;
    cosign::sign_image(&registry, "team/cosigned", &cosigned, &key).await;
    let notarised = pusher.push_image("team/notarised", "1.0", 72).await;
    chain
        .sign_and_push(&pusher, &notarised, Format::Jws, None)
        .await;
    let unsigned = pusher.push_image("team/unsigned", "1.0", 73).await;
    let other_key = pusher.push_image("team/other-key", "1.0", 74).await;
    cosign::sign_image(
        &registry,
        "team/other-key",
        &other_key,
        &CosignKey::generate(KeyKind::P256),
    )
    .await;

    let work = tempfile::tempdir().unwrap();
    let config = ratify_config(&key.public_key_pem(), &chain.root.cert_pem, "");
    let o = import(&config, work.path(), "policies", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("0 dropped"), "{}", text(&o));
    // The plain-HTTP store becomes a flag, said so.
    assert!(text(&o).contains("--insecure-registry"), "{}", text(&o));
    let policies = work.path().join("policies");
    let o = signet(&["policy", "check", policies.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 policy valid"), "{}", text(&o));

    for good in [&cosigned, &notarised] {
        let o = verify(&good.reference_by_tag(&addr), &policies, &addr);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("TRUSTED"), "{}", text(&o));
    }
    let o = verify(&unsigned.reference_by_tag(&addr), &policies, &addr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no signature found"), "{}", text(&o));
    let o = verify(&other_key.reference_by_tag(&addr), &policies, &addr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The webhook's answer for a pod running the unsigned image: denied.
    let mut review = load_review("pod-create.json");
    replace_image(&mut review, "nginx:1.27", &unsigned.reference_by_tag(&addr));
    let file = work.path().join("review.json");
    std::fs::write(&file, serde_json::to_vec(&review).unwrap()).unwrap();
    let answer = |dir: &Path| {
        let o = signet(&[
            "review",
            file.to_str().unwrap(),
            "--policies",
            dir.to_str().unwrap(),
            "--insecure-registry",
            &addr,
            "-o",
            "json",
        ]);
        let v = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
        // `review` exits 1 when the object is denied, 0 when it is admitted.
        let denied = v["response"]["allowed"] == false;
        assert_eq!(o.status.code(), Some(i32::from(denied)), "{}", text(&o));
        v
    };
    let v = answer(&policies);
    assert_eq!(v["response"]["allowed"], false, "{v:#}");
    assert_eq!(v["response"]["status"]["code"], 403);

    // Rolled out in warn mode first: the same pod is admitted with a warning.
    let o = import(&config, work.path(), "warn", &["--mode", "warn"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = answer(&work.path().join("warn"));
    assert_eq!(v["response"]["allowed"], true, "{v:#}");
    assert!(v["response"]["warnings"][0].is_string(), "{v:#}");

    // Existing files are not replaced without --force.
    let o = import(&config, work.path(), "policies", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    let o = import(&config, work.path(), "policies", &["--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A Policy requiring both signature types: one of them is no longer enough.
    let both = ratify_config(&key.public_key_pem(), &chain.root.cert_pem, BOTH_REQUIRED);
    let o = import(&both, work.path(), "both", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let both_dir = work.path().join("both");
    let o = verify(&cosigned.reference_by_tag(&addr), &both_dir, &addr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    chain
        .sign_and_push(&pusher, &cosigned, Format::Cose, None)
        .await;
    let o = verify(&cosigned.reference_by_tag(&addr), &both_dir, &addr);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_configuration_with_dropped_checks_exits_non_zero_and_says_why() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ratify/unsupported.yaml");
    let o = signet(&["import", "ratify", fixture.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("dropped Policy/ratify-policy"), "{err}");
    assert!(err.contains("do NOT verify everything"), "{err}");
    let o = signet(&["import", "ratify", "/nonexistent/ratify.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// The AKS walk-through shape: an `azurekeyvault` provider naming one key version (and the
/// workload identity), a Cosign verifier trusting it for every image, a plain-HTTP ORAS store.
fn ratify_key_vault_config(vault_uri: &str, key: &str, version: &str) -> String {
    format!(
        r#"apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata:
  name: keymanagementprovider-akv
spec:
  type: azurekeyvault
  parameters:
    vaultURI: {vault_uri}
    keys:
      - name: {key}
        version: {version}
    tenantID: {TENANT}
    clientID: {CLIENT_ID}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata:
  name: verifier-cosign
spec:
  name: cosign
  artifactTypes: application/vnd.dev.cosign.artifact.sig.v1+json
  parameters:
    trustPolicies:
      - name: default
        scopes: ["*"]
        keys:
          - provider: keymanagementprovider-akv
        tLogVerify: false
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Store
metadata:
  name: store-oras
spec:
  name: oras
  parameters:
    cosignEnabled: true
    useHttp: true
"#
    )
}

// Several threads: the test Azure endpoint runs in this runtime while the signet binary,
// which the test waits for, reads the vault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ratify_configuration_with_a_key_vault_key_verifies_through_the_vault() {
    let token = federated_token(EXCHANGE_AUDIENCE);
    let azure = AzureServer::start(&token).await;
    let key = CosignKey::p256();
    let version = azure.add_key_version("cosign-key", p256_jwk(&key));
    let registry = TestRegistry::start();
    let addr = registry.addr();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/akv-signed", "1.0", 81).await;
    cosign::sign_image(&registry, "team/akv-signed", &signed, &key).await;
    let unsigned = pusher.push_image("team/akv-unsigned", "1.0", 82).await;

    let work = tempfile::tempdir().unwrap();
    let config = ratify_key_vault_config(&azure.url(), "cosign-key", &version);
    let o = import(&config, work.path(), "policies", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("0 dropped"), "{}", text(&o));
    let policies = work.path().join("policies");
    // The Azure identity travels in the SignetConfig written beside the policy.
    let written: String = std::fs::read_dir(&policies)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        written.contains("keyVault:") && written.contains(&version),
        "{written}"
    );
    assert!(
        written.contains(TENANT) && written.contains(CLIENT_ID),
        "{written}"
    );
    let o = signet(&["policy", "check", policies.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Only the federated token file and the test endpoint's address and CA are given here:
    // the tenant and client come from the imported SignetConfig.
    std::fs::write(work.path().join("token"), &token).unwrap();
    std::fs::write(work.path().join("azure-ca.pem"), &azure.tls.ca_pem).unwrap();
    let verify_azure = |image: &str| {
        Command::new(env!("CARGO_BIN_EXE_signet"))
            .args([
                "verify",
                image,
                "--policies",
                policies.to_str().unwrap(),
                "--insecure-registry",
                &addr,
                "--azure-authority-host",
                &azure.url(),
                "--azure-ca",
                work.path().join("azure-ca.pem").to_str().unwrap(),
                "--azure-vault-host",
                &azure.host(),
            ])
            .env("AZURE_FEDERATED_TOKEN_FILE", work.path().join("token"))
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run signet")
    };
    let o = verify_azure(&signed.reference_by_tag(&addr));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("TRUSTED"), "{}", text(&o));
    let o = verify_azure(&unsigned.reference_by_tag(&addr));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no signature found"), "{}", text(&o));
    // The key came from the vault: with its version disabled, the signed image is not trusted.
    azure.set_enabled("cosign-key", &version, false);
    let o = verify_azure(&signed.reference_by_tag(&addr));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("UNTRUSTED") && text(&o).contains("trusts no keys"),
        "{}",
        text(&o)
    );
}
