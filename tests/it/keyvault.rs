//! Azure Key Vault trust material and ACR with the workload identity, end to end: the real
//! signet server, the real docker-registry, and the test Azure endpoint
//! (`support::azure`: Entra token endpoint and Key Vault REST API over HTTPS on 127.0.0.1).
//!
//! Refreshes run every 300 ms here and the policy source polls every 200 ms, so "after one
//! refresh" is well under two seconds; each wait is bounded and reports what it measured.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use signet::azure::{AzureConfig, Credential};
use signet::registry::RegistryConfig;

use crate::support::azure::{
    ACR_SCOPE, AzureServer, CLIENT_ID, EXCHANGE_AUDIENCE, TENANT, VAULT_SCOPE, federated_token,
};
use crate::support::cosign::{self, CosignKey};
use crate::support::fault::{FaultServer, Reply};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::notary::{ChainSpec, Format, SigningChain};
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, cosign_policy};
use crate::support::token::ACR_NULL_USER;

const KEY: &str = "cosign-key";

/// An Azure endpoint and the federated token file signet reads.
struct Azure {
    server: AzureServer,
    dir: tempfile::TempDir,
}

impl Azure {
    async fn start() -> Azure {
        let token = federated_token(EXCHANGE_AUDIENCE);
        let server = AzureServer::start(&token).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), &token).unwrap();
        Azure { server, dir }
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.dir.path().join("token")
    }

    fn config(&self, acr_hosts: Vec<String>, stale_after: Duration) -> AzureConfig {
        AzureConfig {
            tenant_id: TENANT.into(),
            client_id: CLIENT_ID.into(),
            authority_host: self.server.url().parse().unwrap(),
            credential: Credential::FederatedTokenFile(self.token_file()),
            ca_pem: vec![self.server.tls.ca_pem.as_bytes().to_vec()],
            vault_hosts: vec![self.server.host()],
            acr_hosts,
            refresh_interval: Duration::from_millis(300),
            stale_after,
            request_timeout: Duration::from_secs(3),
        }
    }
}

fn registry_config(registry_hosts: &[String], azure: AzureConfig) -> RegistryConfig {
    RegistryConfig {
        insecure: registry_hosts.to_vec(),
        azure: Some(azure),
        ..RegistryConfig::default()
    }
}

/// The JWK Key Vault returns for a P-256 Cosign key.
pub(crate) fn p256_jwk(key: &CosignKey) -> Value {
    let der = key.public_key_der();
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "uncompressed point");
    json!({"kty": "EC", "crv": "P-256",
           "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
}

fn key_vault_policy(images: &str, vault: &str, name: &str) -> String {
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: prod\nspec:\n  images: [\"{images}\"]\n  mode: enforce\n  onError: deny\n  authorities:\n    - name: ci\n      cosign:\n        keys:\n          - keyVault: {{vaultURI: \"{vault}\", name: {name}}}\n"
    )
}

fn pod_with(image: &str) -> Value {
    let mut review = load_review("pod-create.json");
    assert_eq!(replace_image(&mut review, "nginx:1.27", image), 1);
    review
}

fn allowed(v: &Value) -> bool {
    v["response"]["allowed"] == true
}

fn message(v: &Value) -> String {
    v["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until signet is ready (its Key Vault material fetched and the policies loaded).
async fn wait_ready(signet: &Signet) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if signet.admin_get("/readyz").await.0 == 200 {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("signet never became ready");
}

/// Reviews `image` until the verdict is `want`; returns how long that took.
async fn wait_verdict(signet: &Signet, image: &str, want: bool, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let v = signet.review(&pod_with(image)).await;
        if allowed(&v) == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "verdict still {} after {within:?}: {}",
            allowed(&v),
            message(&v)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cosign_key_in_key_vault_verifies_and_a_disabled_version_is_denied_without_restart() {
    let azure = Azure::start().await;
    let key = CosignKey::p256();
    let version = azure.server.add_key_version(KEY, p256_jwk(&key));
    let registry = TestRegistry::start();
    let image = registry.pusher().push_image("team/app", "v1", 1).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let reference = image.reference_by_tag(&registry.addr());

    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    let config = registry_config(
        &[registry.addr()],
        azure.config(vec![], Duration::from_secs(3600)),
    );
    let signet = Signet::start_configured(&policy, config).await;
    let ready = wait_ready(&signet).await;
    eprintln!(
        "MEASURE key vault: ready after {:.0} ms",
        ready.as_secs_f64() * 1e3
    );
    let v = signet.review(&pod_with(&reference)).await;
    assert!(allowed(&v), "{}", message(&v));
    // The same image again: a cached trusted verdict.
    assert!(allowed(&signet.review(&pod_with(&reference)).await));

    azure.server.set_enabled(KEY, &version, false);
    let took = wait_verdict(&signet, &reference, false, Duration::from_secs(5)).await;
    eprintln!(
        "MEASURE key vault: disabled version denied after {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    let v = signet.review(&pod_with(&reference)).await;
    assert!(!allowed(&v));
    assert!(message(&v).contains("trusts no keys"), "{}", message(&v));
    assert!(signet.metric("signet_keyvault_refreshes_total{result=\"withdrawn\"}") >= 1.0);

    // Enabled again: trusted again, still without a restart.
    azure.server.set_enabled(KEY, &version, true);
    wait_verdict(&signet, &reference, true, Duration::from_secs(5)).await;

    // Every vault request carried a token Entra issued for the vault scope, and the token
    // requests were workload-identity exchanges for that scope.
    let seen = azure.server.seen();
    for s in seen.iter().filter(|s| s.method == "GET") {
        let token = s
            .authorization
            .as_deref()
            .unwrap()
            .trim_start_matches("Bearer ");
        assert!(azure.server.issued_for(token, VAULT_SCOPE), "{s:?}");
        assert!(s.query.contains("api-version=7.4"), "{s:?}");
    }
    let token_requests: Vec<_> = seen.iter().filter(|s| s.method == "POST").collect();
    assert!(!token_requests.is_empty());
    for s in &token_requests {
        assert_eq!(s.form["scope"], VAULT_SCOPE);
        assert_eq!(s.form["client_id"], CLIENT_ID);
        assert_eq!(s.form["grant_type"], "client_credentials");
        assert_eq!(
            s.form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
    }
    assert_eq!(
        token_requests.len(),
        1,
        "the vault token is cached until shortly before it expires"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_the_old_version_no_longer_trusted() {
    let azure = Azure::start().await;
    let (old, new) = (CosignKey::p256(), CosignKey::p256());
    azure.server.add_key_version(KEY, p256_jwk(&old));
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let by_old = pusher.push_image("team/app", "old", 1).await;
    cosign::sign_image(&registry, "team/app", &by_old, &old).await;
    let by_new = pusher.push_image("team/app", "new", 2).await;
    cosign::sign_image(&registry, "team/app", &by_new, &new).await;
    let (old_ref, new_ref) = (
        by_old.reference_by_tag(&registry.addr()),
        by_new.reference_by_tag(&registry.addr()),
    );

    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    let config = registry_config(
        &[registry.addr()],
        azure.config(vec![], Duration::from_secs(3600)),
    );
    let signet = Signet::start_configured(&policy, config).await;
    wait_ready(&signet).await;
    assert!(allowed(&signet.review(&pod_with(&old_ref)).await));
    assert!(!allowed(&signet.review(&pod_with(&new_ref)).await));

    azure.server.add_key_version(KEY, p256_jwk(&new));
    let took = wait_verdict(&signet, &new_ref, true, Duration::from_secs(5)).await;
    eprintln!(
        "MEASURE key vault: rotation picked up after {:.0} ms",
        took.as_secs_f64() * 1e3
    );
    // Without a pinned version only the newest enabled version is trusted.
    assert!(!allowed(&signet.review(&pod_with(&old_ref)).await));
}

#[tokio::test]
async fn an_unreachable_vault_keeps_the_last_good_key_for_stale_after_then_fails_closed() {
    let azure = Azure::start().await;
    let key = CosignKey::p256();
    azure.server.add_key_version(KEY, p256_jwk(&key));
    let registry = TestRegistry::start();
    let image = registry.pusher().push_image("team/app", "v1", 1).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let reference = image.reference_by_tag(&registry.addr());

    let stale_after = Duration::from_secs(3);
    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    let config = registry_config(&[registry.addr()], azure.config(vec![], stale_after));
    let signet = Signet::start_configured(&policy, config).await;
    wait_ready(&signet).await;
    assert!(allowed(&signet.review(&pod_with(&reference)).await));

    // Throttled, then down: the last good key stays trusted while it is not stale.
    azure.server.throttle(Some(1));
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    azure.server.throttle(None);
    azure.server.fail(Some(503));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v = signet.review(&pod_with(&reference)).await;
    assert!(allowed(&v), "still within staleAfter: {}", message(&v));
    assert!(signet.metric("signet_keyvault_refreshes_total{result=\"failed\"}") >= 1.0);
    assert!(
        signet.metric("signet_azure_requests_total{endpoint=\"versions\",result=\"throttled\"}")
            >= 1.0
    );

    let took = wait_verdict(&signet, &reference, false, Duration::from_secs(10)).await;
    let closed = outage.elapsed();
    eprintln!(
        "MEASURE key vault: fail closed {:.1} s into the outage (staleAfter {} s)",
        closed.as_secs_f64(),
        stale_after.as_secs()
    );
    assert!(
        closed >= stale_after - Duration::from_millis(300),
        "{closed:?}"
    );
    assert!(took > Duration::ZERO);
    assert!(signet.metric("signet_keyvault_refreshes_total{result=\"expired\"}") >= 1.0);

    azure.server.fail(None);
    wait_verdict(&signet, &reference, true, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_federated_token_for_the_wrong_audience_is_refused_and_nothing_is_trusted() {
    let azure = Azure::start().await;
    std::fs::write(
        azure.token_file(),
        federated_token("api://not-the-exchange"),
    )
    .unwrap();
    let key = CosignKey::p256();
    azure.server.add_key_version(KEY, p256_jwk(&key));
    let registry = TestRegistry::start();
    let image = registry.pusher().push_image("team/app", "v1", 1).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;

    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    let config = registry_config(
        &[registry.addr()],
        azure.config(vec![], Duration::from_secs(3600)),
    );
    let signet = Signet::start_configured(&policy, config).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        signet.admin_get("/readyz").await.0,
        503,
        "never ready without the key"
    );
    let v = signet
        .review(&pod_with(&image.reference_by_tag(&registry.addr())))
        .await;
    assert!(!allowed(&v));
    assert!(
        signet.metric("signet_azure_requests_total{endpoint=\"token\",result=\"token\"}") >= 1.0
    );
    assert!(azure.server.issued().is_empty());
    assert!(
        azure.server.seen().iter().all(|s| s.method == "POST"),
        "the vault was never asked"
    );

    // The kubelet rotates the file to a good token: the next exchange reads it.
    std::fs::write(azure.token_file(), federated_token(EXCHANGE_AUDIENCE)).unwrap();
    wait_ready(&signet).await;
}

/// The vault token goes to the vault only, and no Entra token goes to a registry that is not
/// marked as ACR, nor to a realm on another host for one that is.
#[tokio::test]
async fn azure_tokens_are_never_sent_to_a_registry_host() {
    let azure = Azure::start().await;
    let key = CosignKey::p256();
    azure.server.add_key_version(KEY, p256_jwk(&key));
    // A realm on another loopback address, and a registry whose challenge points there.
    let realm = FaultServer::start_on(std::net::Ipv4Addr::new(127, 0, 0, 2), |_| {
        Reply::with(401, &[], "{}")
    });
    let realm_url = format!("http://{}/oauth2/token", realm.addr());
    let registry = FaultServer::start(move |_| {
        Reply::with(
            401,
            &[(
                "WWW-Authenticate",
                &format!("Bearer realm=\"{realm_url}\",service=\"r\""),
            )],
            "{}",
        )
    });
    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    // Marked as ACR: the realm is on another host, so no exchange may happen there.
    let config = RegistryConfig {
        insecure: vec![registry.addr(), realm.addr()],
        azure: Some(azure.config(vec![registry.addr()], Duration::from_secs(3600))),
        ..RegistryConfig::default()
    };
    let signet = Signet::start_configured(&policy, config).await;
    wait_ready(&signet).await;
    let v = signet
        .review(&pod_with(&format!("{}/team/app:v1", registry.addr())))
        .await;
    assert!(!allowed(&v));

    let issued: Vec<String> = azure.server.issued().into_iter().map(|(t, _)| t).collect();
    assert!(!issued.is_empty());
    for seen in registry.requests().iter().chain(realm.requests().iter()) {
        for (_, value) in &seen.headers {
            assert!(
                !issued.iter().any(|t| value.contains(t.as_str())),
                "an Entra token reached {seen:?}"
            );
        }
        assert!(!seen.path.contains("exchange"), "{seen:?}");
    }
    assert!(!registry.requests().is_empty(), "the registry was asked");
}

#[tokio::test]
async fn an_acr_registry_is_read_with_the_workload_identity() {
    let azure = Azure::start().await;
    let key = CosignKey::p256();
    let registry = TestRegistry::builder().token_auth("bob", "pw").start();
    let image = registry.pusher().push_image("team/app", "v1", 1).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let token_server = registry.token_server().expect("token server");
    token_server.enable_acr_exchange(TENANT, azure.server.checker(ACR_SCOPE));
    let reference = image.reference_by_tag(&registry.addr());
    let policy = cosign_policy(
        "prod",
        &format!("{}/**", registry.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );

    // Not marked as ACR: no credentials, refused.
    let config = registry_config(
        &[registry.addr()],
        azure.config(vec![], Duration::from_secs(3600)),
    );
    let plain = Signet::start_configured(&policy, config).await;
    wait_ready(&plain).await;
    let v = plain.review(&pod_with(&reference)).await;
    assert!(!allowed(&v), "{v}");
    assert!(
        token_server
            .requests()
            .iter()
            .all(|r| r.path != "/exchange")
    );
    plain.stop().await;

    let config = registry_config(
        &[registry.addr()],
        azure.config(vec![registry.addr()], Duration::from_secs(3600)),
    );
    let signet = Signet::start_configured(&policy, config).await;
    wait_ready(&signet).await;
    let v = signet.review(&pod_with(&reference)).await;
    assert!(allowed(&v), "{}", message(&v));

    let requests = token_server.requests();
    let exchange: Vec<_> = requests.iter().filter(|r| r.path == "/exchange").collect();
    assert_eq!(exchange.len(), 1, "{requests:?}");
    assert!(exchange[0].granted);
    let field = |k: &str| {
        exchange[0]
            .form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field("grant_type"), "access_token");
    assert_eq!(field("tenant"), TENANT);
    assert!(azure.server.issued_for(&field("access_token"), ACR_SCOPE));
    let token_request = requests
        .iter()
        .find(|r| r.path == "/token" && r.granted)
        .expect("a granted pull token");
    let basic = token_request
        .authorization
        .as_deref()
        .unwrap()
        .trim_start_matches("Basic ");
    let decoded = String::from_utf8(STANDARD.decode(basic).unwrap()).unwrap();
    assert!(
        decoded.starts_with(&format!("{ACR_NULL_USER}:acr-refresh-")),
        "{decoded}"
    );
    assert_eq!(
        token_request.scopes,
        vec!["repository:team/app:pull".to_string()]
    );
}

fn notation_key_vault_policy(images: &str, vault: &str, name: &str, chain: bool) -> String {
    format!(
        r#"apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: release
spec:
  images: ["{images}"]
  authorities:
    - name: release
      notation:
        signatureVerification: {{level: strict, override: {{revocation: skip}}}}
        trustedIdentities: ["*"]
        trustStores:
          - type: ca
            name: release
            certificates:
              - keyVault: {{vaultURI: "{vault}", name: {name}, chain: {chain}}}
"#
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A password-less PKCS#12 of the leaf key and the chain, made by openssl with `extra` options.
fn pkcs12(dir: &Path, chain: &SigningChain, extra: &[&str]) -> String {
    std::fs::write(dir.join("key.pem"), pem("PRIVATE KEY", chain.leaf_pkcs8())).unwrap();
    std::fs::write(dir.join("leaf.pem"), pem("CERTIFICATE", &chain.ders()[0])).unwrap();
    let rest: String = chain.ders()[1..]
        .iter()
        .map(|d| pem("CERTIFICATE", d))
        .collect();
    std::fs::write(dir.join("chain.pem"), rest).unwrap();
    let out = dir.join("cert.p12");
    let status = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:"])
        .args(extra)
        .arg("-inkey")
        .arg(dir.join("key.pem"))
        .arg("-in")
        .arg(dir.join("leaf.pem"))
        .arg("-certfile")
        .arg(dir.join("chain.pem"))
        .arg("-out")
        .arg(&out)
        .status()
        .expect("openssl");
    assert!(status.success());
    STANDARD.encode(std::fs::read(out).unwrap())
}

#[tokio::test]
async fn a_notation_certificate_chain_from_key_vault_verifies_pem_and_pkcs12() {
    let azure = Azure::start().await;
    let chain = SigningChain::new(&ChainSpec::default());
    let registry = TestRegistry::start();
    let pusher = registry.pusher();
    let image = pusher.push_image("team/app", "v1", 1).await;
    chain
        .sign_and_push(&pusher, &image, Format::Jws, None)
        .await;
    let reference = image.reference_by_tag(&registry.addr());

    // As Key Vault stores a certificate: `cer` is the leaf; the secret holds key and chain.
    let leaf = &chain.ders()[0];
    let pem_secret = format!(
        "{}{}",
        pem("PRIVATE KEY", chain.leaf_pkcs8()),
        chain
            .ders()
            .iter()
            .map(|d| pem("CERTIFICATE", d))
            .collect::<String>()
    );
    azure.server.add_certificate_version(
        "release-pem",
        leaf,
        &pem_secret,
        "application/x-pem-file",
    );
    let tmp = tempfile::tempdir().unwrap();
    let modern = pkcs12(tmp.path(), &chain, &[]);
    azure
        .server
        .add_certificate_version("release-p12", leaf, &modern, "application/x-pkcs12");
    let legacy = pkcs12(
        tmp.path(),
        &chain,
        &[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha1",
        ],
    );
    azure
        .server
        .add_certificate_version("release-p12-3des", leaf, &legacy, "application/x-pkcs12");

    // `cer` from another PKI, the secret with the right chain: `chain` decides what is read.
    let other = SigningChain::new(&ChainSpec::default());
    azure.server.add_certificate_version(
        "mixed",
        &other.ders()[0],
        &pem_secret,
        "application/x-pem-file",
    );

    let images = format!("{}/**", registry.addr());
    for (name, chain_read, trusted) in [
        ("release-pem", true, true),
        ("release-p12", true, true),
        ("release-p12-3des", true, true),
        ("mixed", true, true),
        // Without `chain` only `cer` is trusted: here a certificate of another PKI.
        ("mixed", false, false),
    ] {
        let policy = notation_key_vault_policy(&images, &azure.server.url(), name, chain_read);
        let config = registry_config(
            &[registry.addr()],
            azure.config(vec![], Duration::from_secs(3600)),
        );
        let signet = Signet::start_configured(&policy, config).await;
        wait_ready(&signet).await;
        let v = signet.review(&pod_with(&reference)).await;
        assert_eq!(
            allowed(&v),
            trusted,
            "{name} chain={chain_read}: {}",
            message(&v)
        );
        signet.stop().await;
    }
    assert!(
        azure
            .server
            .seen()
            .iter()
            .any(|s| s.path.starts_with("/secrets/release-p12/")),
        "the chain was read through the certificate's secret"
    );
}

/// `signet verify` reads Key Vault too: the identity from the workload-identity variables and
/// the SignetConfig's `spec.azure`, the test endpoint through the flags.
#[tokio::test]
async fn signet_verify_reads_key_vault_with_the_workload_identity_variables() {
    let azure = Azure::start().await;
    let key = CosignKey::p256();
    let version = azure.server.add_key_version(KEY, p256_jwk(&key));
    let registry = TestRegistry::start();
    let image = registry.pusher().push_image("team/app", "v1", 1).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = key_vault_policy(&format!("{}/**", registry.addr()), &azure.server.url(), KEY);
    std::fs::write(
        dir.path().join("p.yaml"),
        format!(
            "{policy}---\napiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  azure: {{tenantID: {TENANT}, refreshInterval: 1m}}\n"
        ),
    )
    .unwrap();
    let ca = dir.path().join("azure-ca.pem");
    std::fs::write(&ca, &azure.server.tls.ca_pem).unwrap();
    let run = |dir: std::path::PathBuf| {
        let (url, host, token, ca, addr, reference) = (
            azure.server.url(),
            azure.server.host(),
            azure.token_file(),
            ca.clone(),
            registry.addr(),
            image.reference_by_tag(&registry.addr()),
        );
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
                .args(["verify", &reference, "--insecure-registry", &addr])
                .arg("--policies")
                .arg(dir)
                .args(["--azure-authority-host", &url, "--azure-vault-host", &host])
                .arg("--azure-ca")
                .arg(ca)
                .env("AZURE_CLIENT_ID", CLIENT_ID)
                .env("AZURE_FEDERATED_TOKEN_FILE", token)
                .env_remove("AZURE_TENANT_ID")
                .env_remove("AZURE_CLIENT_SECRET")
                .env_remove("AZURE_AUTHORITY_HOST")
                .env("RUST_LOG", "warn")
                .output()
                .expect("run signet")
        })
    };
    let o = run(dir.path().to_path_buf()).await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("TRUSTED"), "{text}");

    azure.server.set_enabled(KEY, &version, false);
    let o = run(dir.path().to_path_buf()).await.unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// `signet policy check` checks Key Vault references offline (syntax, a key for Cosign)
/// without an Azure identity, as it does every other field.
#[test]
fn policy_check_checks_key_vault_references_without_fetching_them() {
    let dir = tempfile::tempdir().unwrap();
    let check = |policy: &str| {
        std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("policy")
            .arg("check")
            .arg(dir.path())
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .output()
            .expect("run signet");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), text)
    };
    let good = key_vault_policy("r.example.com/**", "https://myvault.vault.azure.net/", KEY);
    let (code, text) = check(&good);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = check(&good.replace("https://myvault", "http://myvault"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is not https"), "{text}");
    let (code, text) = check(&good.replace("name: cosign-key", "name: cosign-key, chain: true"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("chain applies to certificates"), "{text}");
}
