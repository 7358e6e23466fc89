//! The command line: `signet verify`, `signet review`, `signet policy check` and
//! `signet completion`, run as the real binary.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, settings};

fn signet(args: &[&str]) -> Output {
    signet_with(args, &[], None)
}

/// `signet` with extra environment variables and, if given, a working directory. docker's own
/// credential places are pointed at an empty directory unless the test sets them.
fn signet_with(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .env("HOME", "/nonexistent")
        .env_remove("DOCKER_CONFIG")
        .env_remove("SIGNET_DOCKER_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output().expect("run signet")
}

/// Every object key in `v` that is not camelCase (holds `_` or `-`, or starts upper case).
fn non_camel_keys(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                if k.contains('_') || k.contains('-') || k.starts_with(|c: char| c.is_uppercase()) {
                    out.push(format!("{at}.{k}"));
                }
                non_camel_keys(child, &format!("{at}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                non_camel_keys(child, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A policy directory with one enforcing policy trusting `key` for the whole registry.
fn policy_dir(registry: &TestRegistry, key: &CosignKey) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let glob = format!("{}/**", registry.addr());
    let policy = cosign_policy("prod", &glob, "enforce", "deny", &key.public_key_pem());
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    dir
}

#[tokio::test]
async fn verify_exit_codes_and_output() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "1.0", 21).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher.push_image("team/app", "2.0", 22).await;
    let dir = policy_dir(&registry, &key);
    let policies = dir.path().to_str().unwrap();
    let addr = registry.addr();
    let good = signed.reference_by_tag(&addr);
    let bad = unsigned.reference_by_tag(&addr);

    let o = signet(&[
        "verify",
        &good,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("TRUSTED"), "{}", text(&o));
    assert!(text(&o).contains(&signed.digest), "{}", text(&o));

    let o = signet(&[
        "verify",
        &good,
        &bad,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("UNTRUSTED") && text(&o).contains("no signature found"),
        "{}",
        text(&o)
    );

    let o = signet(&[
        "verify",
        &bad,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    assert_eq!(v["trusted"], false);
    assert_eq!(v["result"], "untrusted");
    assert_eq!(v["images"][0]["trust"], "untrusted");
    assert_eq!(v["images"][0]["policies"][0]["verdict"], "untrusted");
    assert_eq!(v["images"][0]["policies"][0]["reason"], "no_signature");
    assert_eq!(v["images"][0]["policies"][0]["onError"], "deny");
    assert_eq!(v["images"][0]["webhook"]["allowed"], false);
    assert_eq!(
        v["images"][0]["webhook"]["summary"],
        "denied (mode enforce)"
    );

    // Field names are camelCase like the policy YAML, in JSON and in YAML, trusted or not.
    for (image, format) in [(&bad, "json"), (&good, "yaml")] {
        let o = signet(&[
            "verify",
            image,
            "--policies",
            policies,
            "--insecure-registry",
            &addr,
            "-o",
            format,
        ]);
        let v: serde_json::Value = if format == "json" {
            serde_json::from_slice(&o.stdout).expect("JSON output")
        } else {
            serde_yaml::from_slice(&o.stdout).expect("YAML output")
        };
        let mut bad_keys = Vec::new();
        non_camel_keys(&v, "", &mut bad_keys);
        assert!(bad_keys.is_empty(), "{bad_keys:?} in {v:#}");
        assert!(
            v["images"][0]["policies"][0]["verdict"].is_string(),
            "{v:#}"
        );
    }

    // Usage and configuration errors exit 2.
    let o = signet(&["verify", &good, "--policies", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = signet(&["verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[tokio::test]
async fn review_prints_the_admission_response() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let unsigned = registry.pusher().push_image("team/app", "1.0", 23).await;
    let dir = policy_dir(&registry, &key);
    let mut review = load_review("pod-create.json");
    replace_image(
        &mut review,
        "nginx:1.27",
        &unsigned.reference_by_tag(&registry.addr()),
    );
    let file = dir.path().join("review.json");
    std::fs::write(&file, serde_json::to_vec(&review).unwrap()).unwrap();
    let o = signet(&[
        "review",
        file.to_str().unwrap(),
        "--policies",
        dir.path().to_str().unwrap(),
        "--insecure-registry",
        &registry.addr(),
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "denied: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 403);
    assert_eq!(v["response"]["uid"], review["request"]["uid"]);

    std::fs::write(&file, b"{oops").unwrap();
    let o = signet(&[
        "review",
        file.to_str().unwrap(),
        "--policies",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not YAML or JSON"), "{}", text(&o));
}

/// A multi-document YAML file of plain manifests, as `kubectl apply -f` takes it: each object
/// is reviewed as its CREATE; the run exits 1 because one is denied.
#[tokio::test]
async fn review_takes_plain_manifests_and_fails_when_any_is_denied() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let pusher = registry.pusher();
    let signed = pusher.push_image("team/app", "1.0", 31).await;
    cosign::sign_image(&registry, "team/app", &signed, &key).await;
    let unsigned = pusher.push_image("team/app", "2.0", 32).await;
    let dir = policy_dir(&registry, &key);
    let addr = registry.addr();
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers: [{{name: c, image: \"{}\"}}]\n",
        signed.reference_by_tag(&addr)
    );
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api, namespace: prod}}\nspec:\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec:\n      containers: [{{name: c, image: \"{}\"}}]\n",
        unsigned.reference_by_tag(&addr)
    );
    let service =
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 80}]}\n";
    let manifests = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let f = manifests.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_string()
    };
    let all = write("all.yaml", &format!("{pod}---\n{deployment}---\n{service}"));
    let policies = dir.path().to_str().unwrap();
    let review = |file: &str, extra: &[&str]| {
        let mut args = vec![
            "review",
            file,
            "--policies",
            policies,
            "--insecure-registry",
            &addr,
        ];
        args.extend_from_slice(extra);
        signet(&args)
    };

    let o = review(&all, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("ADMITTED  v1/Pod default/web"), "{out}");
    assert!(
        out.contains("DENIED    apps/v1/Deployment prod/api: ")
            && out.contains("no signature found"),
        "{out}"
    );
    assert!(
        out.contains("v1/Service default/api: kind not governed"),
        "{out}"
    );

    // JSON: the AdmissionReview responses, several as a List.
    let o = review(&all, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["kind"], "List");
    let allowed: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["response"]["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(allowed, [true, false, true]);

    // One admitted Pod, as JSON input: exit 0, one AdmissionReview out as YAML.
    let pod_json: serde_json::Value = serde_yaml::from_str(&pod).unwrap();
    let one = write("pod.json", &pod_json.to_string());
    let o = review(&one, &["-o", "yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_yaml::from_slice(&o.stdout).expect("YAML");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["allowed"], true);
}

/// `verify` says what the webhook would do under `warn`, and an image whose registry cannot be
/// reached is "could not check" (exit 3), not "untrusted" (exit 1).
#[tokio::test]
async fn verify_says_what_the_webhook_does_and_could_not_check_apart() {
    let registry = TestRegistry::start();
    let key = CosignKey::p256();
    let unsigned = registry.pusher().push_image("team/app", "1.0", 33).await;
    let addr = registry.addr();
    let dir = tempfile::tempdir().unwrap();
    let policy = cosign_policy(
        "soft",
        &format!("{addr}/**"),
        "warn",
        "deny",
        &key.public_key_pem(),
    );
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    let policies = dir.path().to_str().unwrap();
    let image = unsigned.reference_by_tag(&addr);
    let o = signet(&[
        "verify",
        &image,
        "--policies",
        policies,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("UNTRUSTED")
            && text(&o).contains("webhook: admitted with a warning (mode warn)"),
        "{}",
        text(&o)
    );

    // Nothing listens on the port: could not check.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap().to_string();
    drop(closed);
    std::fs::write(
        dir.path().join("q.yaml"),
        cosign_policy(
            "gone",
            &format!("{gone}/**"),
            "enforce",
            "deny",
            &key.public_key_pem(),
        ),
    )
    .unwrap();
    let missing = format!("{gone}/team/app:1.0");
    let o = signet(&[
        "verify",
        &missing,
        "--policies",
        policies,
        "--insecure-registry",
        &gone,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("COULD NOT CHECK") && text(&o).contains("webhook: denied (mode enforce)"),
        "{}",
        text(&o)
    );
    let o = signet(&[
        "verify",
        &missing,
        "--policies",
        policies,
        "--insecure-registry",
        &gone,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["result"], "could_not_check");
    // One untrusted image among them makes the whole run untrusted.
    let o = signet(&[
        "verify",
        &missing,
        &image,
        "--policies",
        policies,
        "--insecure-registry",
        &gone,
        "--insecure-registry",
        &addr,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// DOCKER_CONFIG (a directory) gives `verify` its credentials, as it does docker and cosign;
/// `--docker-config` takes a directory too. Without credentials the registry refuses: could
/// not check.
#[tokio::test]
async fn verify_reads_credentials_from_docker_config_directories() {
    let registry = TestRegistry::builder()
        .test_tls()
        .htpasswd("dora", "s3cret")
        .start();
    let unsigned = registry.pusher().push_image("team/app", "v1", 34).await;
    let key = CosignKey::p256();
    let dir = policy_dir(&registry, &key);
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, registry.ca_pem().unwrap()).unwrap();
    let docker = tempfile::tempdir().unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("dora:s3cret");
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let image = unsigned.reference_by_tag(&registry.addr());
    let args = [
        "verify",
        &image,
        "--policies",
        dir.path().to_str().unwrap(),
        "--registry-ca",
        ca.to_str().unwrap(),
    ];
    let o = signet_with(&args, &[], None);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("refused access"), "{}", text(&o));

    let docker_dir = docker.path().to_str().unwrap();
    let o = signet_with(&args, &[("DOCKER_CONFIG", docker_dir)], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no signature found"), "{}", text(&o));

    let mut with_flag = args.to_vec();
    with_flag.extend(["--docker-config", docker_dir]);
    let o = signet_with(&with_flag, &[], None);
    assert!(text(&o).contains("no signature found"), "{}", text(&o));

    // ~/.docker/config.json when DOCKER_CONFIG is unset.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".docker")).unwrap();
    std::fs::copy(
        docker.path().join("config.json"),
        home.path().join(".docker/config.json"),
    )
    .unwrap();
    let o = signet_with(&args, &[("HOME", home.path().to_str().unwrap())], None);
    assert!(text(&o).contains("no signature found"), "{}", text(&o));
}

/// Run where there is no `policies/` directory, every command names the flag to use.
#[test]
fn a_missing_default_policy_directory_names_the_flag() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        &["verify", "example.com/app:1"][..],
        &["review", "-"][..],
        &["policy", "check"][..],
    ] {
        let o = signet_with(args, &[], Some(empty.path()));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("--policies"), "{args:?}: {}", text(&o));
    }
}

/// Logs carry no ANSI colour when standard error is not a terminal.
#[test]
fn no_colour_when_the_output_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "not a cert").unwrap();
    let c = cert.to_str().unwrap();
    let args = [
        "serve",
        "--tls-cert",
        c,
        "--tls-key",
        c,
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--policies",
        dir.path().to_str().unwrap(),
    ];
    let o = signet_with(&args, &[("RUST_LOG", "info")], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot start"), "{}", text(&o));
    assert!(!text(&o).contains('\x1b'), "{:?}", text(&o));
}

/// On a terminal (a pseudo-terminal made by util-linux `script`), log lines are coloured unless
/// `NO_COLOR` is set.
#[test]
fn no_colour_on_a_terminal_under_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "not a cert").unwrap();
    let c = cert.display();
    let line = format!(
        "{} serve --tls-cert {c} --tls-key {c} --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --policies {}",
        env!("CARGO_BIN_EXE_signet"),
        dir.path().display()
    );
    let on_terminal = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let o = cmd.output().expect("util-linux script runs");
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let coloured = on_terminal(None);
    assert!(coloured.contains("cannot start"), "{coloured:?}");
    assert!(
        coloured.contains('\x1b'),
        "a terminal gets colour: {coloured:?}"
    );
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("cannot start"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}

#[test]
fn completion_scripts_for_the_usual_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let o = signet(&["completion", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("signet") && out.contains("verify") && out.contains("policies"),
            "{shell}: {out:.300}"
        );
    }
    let o = signet(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn policy_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), settings("deny")).unwrap();
    // A directory without a single policy says so.
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no policy found"), "{}", text(&o));
    let key = CosignKey::p256();
    std::fs::write(
        dir.path().join("p.yaml"),
        cosign_policy(
            "prod",
            "example.com/**",
            "enforce",
            "deny",
            &key.public_key_pem(),
        ),
    )
    .unwrap();
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // --policies, like every other command.
    let o = signet(&[
        "policy",
        "check",
        "--policies",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("1 policy valid"), "{}", text(&o));
    std::fs::write(dir.path().join("b.yaml"), "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: x\nspec:\n  images: [\"**\"]\n  mood: enforce\n  authorities: []\n").unwrap();
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("b.yaml:7:") && out.contains("unknown field `mood`"),
        "{out}"
    );
}

/// Secret and ConfigMap references are valid in policy files (for `serve --kubernetes`):
/// `policy check` cannot read the cluster, so it lists each one with file and line as not
/// checked, instead of failing the policy.
#[test]
fn policy_check_lists_secret_references_with_file_and_line_as_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: prod\nspec:\n  images: [\"example.com/**\"]\n  authorities:\n    - name: release\n      cosign:\n        keys:\n          - secretRef: {name: cosign-pub, key: cosign.pub}\n",
    )
    .unwrap();
    let o = signet(&["policy", "check", dir.path().to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1 policy valid"), "{out}");
    assert!(
        out.contains(&format!(
            "{}:11: spec.authorities[0].cosign.keys[0]: Secret cosign-pub key \"cosign.pub\": \
             not checked here",
            dir.path().join("p.yaml").display()
        )),
        "{out}"
    );
}

/// `policy check --kubernetes` needs a cluster, and says so when there is none.
#[test]
fn policy_check_with_kubernetes_and_no_cluster_exits_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["policy", "check", "--kubernetes"])
        .arg(dir.path())
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("run signet");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--kubernetes: no usable cluster configuration"),
        "{}",
        text(&o)
    );
}

#[test]
fn serve_refuses_a_bad_certificate_pair_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    std::fs::write(&cert, "not a cert").unwrap();
    let o = signet(&[
        "serve",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--policies",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no CERTIFICATE"), "{}", text(&o));
}

#[test]
fn serve_with_kubernetes_and_no_cluster_configuration_exits_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "serve",
            "--kubernetes",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--self-signed-ca-out",
            dir.path().join("ca.pem").to_str().unwrap(),
            "--policies",
            dir.path().to_str().unwrap(),
        ])
        // Neither a kubeconfig (KUBECONFIG names a missing file, no ~/.kube/config) nor a pod.
        .env("KUBECONFIG", dir.path().join("missing"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run signet");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--kubernetes: no usable cluster configuration"),
        "{}",
        text(&o)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for(url: &str, status: u16) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if let Ok(r) = client.get(url).send().await
            && r.status().as_u16() == status
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn serve_with_invalid_policies_is_not_ready_denies_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: Nope\n",
    )
    .unwrap();
    let (port, admin) = (free_port(), free_port());
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--policies",
            dir.path().to_str().unwrap(),
            "--self-signed-ca-out",
            ca.to_str().unwrap(),
        ])
        .args(["--shutdown-delay-secs", "1", "--log-format", "json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    assert!(
        wait_for(&format!("http://127.0.0.1:{admin}/healthz"), 200).await,
        "not alive"
    );
    assert!(
        wait_for(&format!("http://127.0.0.1:{admin}/readyz"), 503).await,
        "ready with invalid policies"
    );
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let body = serde_json::to_vec(&load_review("pod-create.json")).unwrap();
    let resp: serde_json::Value = client
        .post(format!("https://localhost:{port}/validate?timeout=5s"))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["response"]["allowed"], false);
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no valid policy set")
    );
    // SIGTERM: exits cleanly after the shutdown delay. The client is dropped first so that its
    // idle connection closes (a client that keeps one open holds the drain up to its timeout),
    // and the wait runs off the test's runtime so that the runtime can close it.
    drop(client);
    let pid = child.id().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let started = std::time::Instant::now();
    let (status, mut child) = tokio::task::spawn_blocking(move || (child.wait(), child))
        .await
        .unwrap();
    let status = status.unwrap();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= std::time::Duration::from_millis(900),
        "drained before the shutdown delay"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "drain took {took:?}; t0 {:?}",
        t0.elapsed()
    );
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("kind \\\"Nope\\\" is not one of")
            || log.contains("kind \"Nope\" is not one of"),
        "{log}"
    );
    assert!(log.contains("shutdown signal received"), "{log}");
}

/// cosign's `verify --key` takes RSA PKCS#1 v1.5 signatures only: an RSA-PSS signature by the
/// trusted key is untrusted unless the key entry opts in with `rsaPss: true`.
#[tokio::test]
async fn an_rsa_pss_signature_is_trusted_only_where_the_key_allows_it() {
    use crate::support::cosign::{
        SIGNATURE_ANNOTATION, SIMPLESIGNING, SignatureLayer, push_signature_layers,
        simple_signing_payload,
    };
    use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
    use base64::Engine;
    let registry = TestRegistry::start();
    let key = CosignKey::rsa();
    let image = registry.pusher().push_image("team/app", "1.0", 35).await;
    let payload = simple_signing_payload(&registry.repo_ref("team/app"), &image.digest);
    let pem = key.private_key_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &RSA_PSS_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &payload,
        &mut signature,
    )
    .unwrap();
    let mut layer = SignatureLayer {
        media_type: SIMPLESIGNING.to_owned(),
        payload,
        annotations: Default::default(),
    };
    layer.annotations.insert(
        SIGNATURE_ANNOTATION.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(&signature),
    );
    push_signature_layers(
        &registry.pusher(),
        "team/app",
        &image.digest,
        vec![layer],
        true,
    )
    .await;

    let addr = registry.addr();
    let reference = image.reference_by_tag(&addr);
    let dir = tempfile::tempdir().unwrap();
    let policy = cosign_policy(
        "prod",
        &format!("{addr}/**"),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    let verify = |policy: &str| {
        std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
        signet(&[
            "verify",
            &reference,
            "--policies",
            dir.path().to_str().unwrap(),
            "--insecure-registry",
            &addr,
        ])
    };
    let o = verify(&policy);
    assert_eq!(o.status.code(), Some(1), "PSS by default: {}", text(&o));
    let o = verify(&format!("{policy}            rsaPss: true\n"));
    assert_eq!(o.status.code(), Some(0), "PSS allowed: {}", text(&o));
}
