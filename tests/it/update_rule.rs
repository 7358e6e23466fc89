//! Which images an UPDATE makes signet verify, through the real server: only the references the
//! object adds to its old version. A policy in enforce whose key signs nothing stands for a
//! policy switched from warn to enforce, or a retired key: day-2 updates (a label, a finalizer
//! removal on a deleting pod, a ReplicaSet scaled down by a full update, a replicas patch) still
//! pass, without a single registry request, while every new image is still judged. Also: image
//! volumes (`volumes[].image.reference`) are verified like containers.

use serde_json::Value;

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::registry::TestRegistry;
use crate::support::review::{assert_allowed_clean, assert_denied, message};
use crate::support::signet::{Signet, cosign_policy, settings};

/// The message of a 403 Forbidden denial.
fn denial(v: &Value) -> String {
    assert_denied(v);
    message(v)
}

fn skipped(signet: &Signet, reason: &str) -> f64 {
    signet.metric(&format!(
        "signet_admission_skipped_total{{reason=\"{reason}\"}}"
    ))
}

/// signet with noMatch deny and one enforcing policy over the whole registry, trusting `key`.
async fn enforcing(registry: &TestRegistry, key: &CosignKey) -> Signet {
    let glob = format!("{}/**", registry.addr());
    Signet::start(
        &format!(
            "{}---\n{}",
            settings("deny"),
            cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem())
        ),
        &[registry],
    )
    .await
}

/// A review whose every `from` image (object and oldObject) now names `to`.
fn with(fixture: &str, pairs: &[(&str, &str)]) -> Value {
    let mut review = load_review(fixture);
    for (from, to) in pairs {
        assert!(
            replace_image(&mut review, from, to) >= 1,
            "{fixture}: {from}"
        );
    }
    review
}

#[tokio::test]
async fn day_two_updates_pass_without_registry_traffic_and_new_images_are_still_judged() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let running = pusher
        .push_image("team/web", "1.0", 41)
        .await
        .reference_by_tag(&registry.addr());
    let next = pusher
        .push_image("team/web", "2.0", 42)
        .await
        .reference_by_tag(&registry.addr());
    let signet = enforcing(&registry, &key).await;

    // `kubectl label pod`: same spec, running an image the key never signed.
    let label = with("pod-update-label.json", &[("nginx:1.28", &running)]);
    assert_allowed_clean(&signet.measured_review("label update", &label).await);
    assert_eq!(signet.registry_requests(), 0.0);
    assert_eq!(skipped(&signet, "no_new_image"), 1.0);

    // Finalizer removal on a pod being deleted.
    let mut finalizer = label.clone();
    for which in ["object", "oldObject"] {
        finalizer["request"][which]["metadata"]["deletionTimestamp"] =
            "2026-01-01T00:00:00Z".into();
    }
    finalizer["request"]["oldObject"]["metadata"]["finalizers"] =
        serde_json::json!(["example.com/cleanup"]);
    assert_allowed_clean(&signet.review(&finalizer).await);
    assert_eq!(skipped(&signet, "deleting"), 1.0);

    // The deployment controller retiring the old ReplicaSet: a full UPDATE, replicas 1 -> 0.
    let mut scale_down = with(
        "replicaset-create.json",
        &[("registry.example.com/team/rs-app:1.0", &running)],
    );
    let mut old = scale_down["request"]["object"].clone();
    old["spec"]["replicas"] = 1.into();
    scale_down["request"]["operation"] = "UPDATE".into();
    scale_down["request"]["oldObject"] = old;
    scale_down["request"]["object"]["spec"]["replicas"] = 0.into();
    assert_allowed_clean(&signet.review(&scale_down).await);

    // `kubectl patch deployment -p '{"spec":{"replicas":4}}'`.
    let replicas = with(
        "deployment-scale.json",
        &[("registry.example.com/team/web:1.1", &running)],
    );
    assert_allowed_clean(&signet.review(&replicas).await);
    assert_eq!(skipped(&signet, "no_new_image"), 3.0);
    assert_eq!(
        signet.registry_requests(),
        0.0,
        "no update above needs the registry"
    );

    // `kubectl set image pod/web`: the new image is judged, the old one is not named.
    let pod_image = with(
        "pod-update-image.json",
        &[("nginx:1.27", &running), ("nginx:1.28", &next)],
    );
    let m = denial(&signet.review(&pod_image).await);
    assert!(m.contains(&format!("image {next}")), "{m}");
    assert!(!m.contains(&running), "{m}");
    assert!(signet.registry_requests() > 0.0);

    // A Deployment rollout to an unsigned image is denied as before.
    let rollout = with(
        "deployment-update-image.json",
        &[
            ("registry.example.com/team/web:1.0", &running),
            ("registry.example.com/team/web:1.1", &next),
        ],
    );
    let m = denial(&signet.review(&rollout).await);
    assert!(m.contains(&format!("image {next}")), "{m}");
    assert!(!m.contains(&running), "{m}");

    // A deleting pod that also swaps its image gets the new image checked.
    let mut deleting_swap = finalizer.clone();
    deleting_swap["request"]["object"]["spec"]["containers"][0]["image"] = next.clone().into();
    let m = denial(&signet.review(&deleting_swap).await);
    assert!(m.contains(&format!("image {next}")), "{m}");

    // An UPDATE without oldObject is judged whole.
    let mut no_old = label.clone();
    no_old["request"]
        .as_object_mut()
        .expect("request")
        .remove("oldObject");
    let m = denial(&signet.review(&no_old).await);
    assert!(m.contains(&format!("image {running}")), "{m}");
    signet.stop().await;
}

#[tokio::test]
async fn kubectl_debug_checks_only_the_ephemeral_image() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let old_unsigned = pusher
        .push_image("team/web", "1.0", 43)
        .await
        .reference_by_tag(&registry.addr());
    let tools = pusher.push_image("debug/tools", "1.0", 44).await;
    cosign::sign_image(&registry, "debug/tools", &tools, &key).await;
    let tools = tools.reference_by_tag(&registry.addr());
    let evil = pusher
        .push_image("debug/evil", "1.0", 45)
        .await
        .reference_by_tag(&registry.addr());
    let signet = enforcing(&registry, &key).await;

    let debug = with(
        "pod-ephemeral-debug.json",
        &[
            ("nginx:1.28", &old_unsigned),
            ("registry.example.com/debug/tools:1.0", &tools),
        ],
    );
    assert_allowed_clean(&signet.review(&debug).await);

    let debug = with(
        "pod-ephemeral-debug.json",
        &[
            ("nginx:1.28", &old_unsigned),
            ("registry.example.com/debug/tools:1.0", &evil),
        ],
    );
    let m = denial(&signet.review(&debug).await);
    assert!(m.contains(&format!("image {evil}")), "{m}");
    assert!(!m.contains(&old_unsigned), "{m}");
    signet.stop().await;
}

#[tokio::test]
async fn an_unsigned_image_volume_next_to_a_signed_container_is_denied() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let app = pusher.push_image("team/app", "1.0", 46).await;
    cosign::sign_image(&registry, "team/app", &app, &key).await;
    let app = app.reference_by_tag(&registry.addr());
    let data = pusher
        .push_image("team/data", "1.0", 47)
        .await
        .reference_by_tag(&registry.addr());
    let signet = enforcing(&registry, &key).await;

    let mut pod = with("pod-create.json", &[("nginx:1.27", &app)]);
    assert_allowed_clean(&signet.review(&pod).await);
    pod["request"]["object"]["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(serde_json::json!({"name": "data", "image": {"reference": data, "pullPolicy": "IfNotPresent"}}));
    let m = denial(&signet.review(&pod).await);
    assert!(m.contains(&format!("image {data}")), "{m}");
    assert!(!m.contains(&app), "{m}");
    // Where the message names what uses an image (an invalid reference), it names the volume.
    let mut invalid = pod.clone();
    invalid["request"]["object"]["spec"]["volumes"][1]["image"]["reference"] = "Not/Valid".into();
    let m = denial(&signet.review(&invalid).await);
    assert!(m.contains("image volume \"data\""), "{m}");

    // In a template, and on an UPDATE that adds the volume to an unchanged Deployment.
    let mut rollout = with(
        "deployment-scale.json",
        &[("registry.example.com/team/web:1.1", &app)],
    );
    rollout["request"]["object"]["spec"]["template"]["spec"]["volumes"] =
        serde_json::json!([{"name": "data", "image": {"reference": data}}]);
    let m = denial(&signet.review(&rollout).await);
    assert!(m.contains(&format!("image {data}")), "{m}");
    signet.stop().await;
}

/// `signet serve` as a child process, with JSON logs on a pipe; killed if a test fails first.
struct Served {
    child: Option<std::process::Child>,
    url: String,
    /// Dropped before SIGTERM: an idle keep-alive connection would hold the drain up.
    client: Option<reqwest::Client>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Served {
    async fn start(policies: &std::path::Path, registry: &TestRegistry, ready: u16) -> Served {
        let (port, admin) = (free_port(), free_port());
        let ca = policies.with_extension("ca.pem");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--policies", policies.to_str().expect("utf-8")])
            .args(["--self-signed-ca-out", ca.to_str().expect("utf-8")])
            .args(["--insecure-registry", &registry.addr()])
            .args(["--shutdown-delay-secs", "0", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("signet serve starts");
        let probe = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = probe
                .get(format!("http://127.0.0.1:{admin}/readyz"))
                .send()
                .await
                && r.status().as_u16() == ready
            {
                up = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(up, "/readyz never answered {ready}");
        let ca = std::fs::read(&ca).expect("CA written");
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA")])
            .build()
            .expect("client");
        Served {
            child: Some(child),
            url: format!("https://localhost:{port}/validate?timeout=10s"),
            client: Some(client),
        }
    }

    async fn review(&self, body: &Value) -> Value {
        self.client
            .as_ref()
            .expect("running")
            .post(&self.url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .expect("signet answers")
            .json()
            .await
            .expect("a review")
    }

    /// Stops the server and returns its log lines, parsed.
    async fn logs(mut self) -> Vec<Value> {
        self.client = None;
        let child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(term.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("signet exits");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn json_logs_name_the_object_and_list_what_was_admitted() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let image = registry.pusher().push_image("team/app", "1.0", 48).await;
    cosign::sign_image(&registry, "team/app", &image, &key).await;
    let reference = image.reference_by_tag(&registry.addr());
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("dir");
    let glob = format!("{}/**", registry.addr());
    std::fs::write(
        policies.join("p.yaml"),
        cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem()),
    )
    .expect("policy");
    let served = Served::start(&policies, &registry, 200).await;
    let v = served
        .review(&with("pod-create.json", &[("nginx:1.27", &reference)]))
        .await;
    assert_allowed_clean(&v);
    let logs = served.logs().await;

    let review = logs
        .iter()
        .find(|l| l["message"] == "admission review")
        .unwrap_or_else(|| panic!("no review line in {logs:#?}"));
    assert_eq!(review["span"]["name"], "review", "{review}");
    assert_eq!(review["span"]["object"], "web", "{review}");
    assert_eq!(review["decision"], "allowed", "{review}");
    let admitted: Vec<&Value> = logs
        .iter()
        .filter(|l| l["message"] == "image admitted")
        .collect();
    assert_eq!(admitted.len(), 1, "{logs:#?}");
    let line = admitted[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["image"], reference.as_str(), "{line}");
    assert_eq!(line["digest"], image.digest.as_str(), "{line}");
    assert_eq!(line["trust"], "trusted", "{line}");
    assert_eq!(line["policy"], "prod", "{line}");
    assert_eq!(line["authority"], "ci (cosign)", "{line}");
    assert!(
        !line["evidence"].as_str().unwrap_or_default().is_empty(),
        "{line}"
    );
    assert_eq!(line["span"]["object"], "web", "{line}");
}

#[tokio::test]
async fn without_a_valid_policy_set_updates_that_add_no_image_still_pass() {
    let registry = TestRegistry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("dir");
    std::fs::write(
        policies.join("bad.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: Nope\n",
    )
    .expect("policy");
    let served = Served::start(&policies, &registry, 503).await;
    assert_allowed_clean(&served.review(&load_review("pod-update-label.json")).await);
    let m = denial(&served.review(&load_review("pod-update-image.json")).await);
    assert!(m.contains("no valid policy set"), "{m}");
    let logs = served.logs().await;
    let skipped = logs
        .iter()
        .find(|l| l["message"] == "admission review" && l["decision"] == "allowed")
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert!(
        skipped["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no image reference"),
        "{skipped}"
    );
}
