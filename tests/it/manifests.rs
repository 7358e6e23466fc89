//! Checks on the deployment material: `manifests/` (kustomize), `policies/`, `certs/gen.sh`.
//!
//! - Every manifest, and the kustomize output, validates offline against the Kubernetes 1.33
//!   OpenAPI schemas with `kubernetes-validate --strict` (PyPI; `scripts/install-test-deps.sh`
//!   installs it). A missing tool is a failure, never a silent skip.
//! - The properties the deployment depends on (fail-closed webhook, namespace exclusions, the
//!   nine resources, probes on the admin port, restricted security context) are asserted on the
//!   parsed YAML, so an edit that weakens them fails here with a named reason.
//! - The policy directories and the ConfigMap's policies load with `signet::policy::load_dir`.
//! - The optional components render through an overlay (`kubectl kustomize`). Their built-in
//!   objects validate against the schema; the custom resources (cert-manager's Issuer and
//!   Certificate, the Prometheus Operator's ServiceMonitor and PrometheusRule) have no offline
//!   schema and are checked by assertions; the alert rules by `promtool` (check and unit tests)
//!   and against the metric names signet exposes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml::Value;

const K8S_VERSION: &str = "1.33.0";
const INSTALL_HINT: &str =
    "run scripts/install-test-deps.sh (it installs the PyPI package kubernetes-validate)";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests_dir() -> PathBuf {
    root().join("manifests")
}

/// The resource files listed in `manifests/` (everything but the kustomization).
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("manifests/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".yaml") && name != "kustomization.yaml"
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in manifests/");
    files
}

/// The rendered manifests: `kubectl kustomize manifests/`, or, where kubectl is unavailable,
/// the files listed in kustomization.yaml concatenated (same objects, without kustomize's
/// labels).
fn rendered() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        match Command::new("kubectl")
            .arg("kustomize")
            .arg(manifests_dir())
            .output()
        {
            Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
            Ok(out) => panic!(
                "kubectl kustomize manifests/ failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => {
                eprintln!("kubectl not runnable ({e}); reading the files kustomization.yaml lists");
                let k: Value = serde_yaml::from_str(
                    &std::fs::read_to_string(manifests_dir().join("kustomization.yaml")).unwrap(),
                )
                .unwrap();
                k["resources"]
                    .as_sequence()
                    .expect("kustomization.yaml lists resources")
                    .iter()
                    .map(|r| {
                        std::fs::read_to_string(manifests_dir().join(r.as_str().unwrap())).unwrap()
                    })
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            }
        }
    })
}

/// Non-empty YAML documents of a multi-document text.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn objects() -> Vec<Value> {
    documents(rendered())
}

/// The one object of `kind` (and `name`) in the rendered manifests.
fn object(kind: &str, name: &str) -> Value {
    let found: Vec<Value> = objects()
        .into_iter()
        .filter(|o| {
            o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
        })
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} {name:?}");
    found.into_iter().next().unwrap()
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Schema validation
// ---------------------------------------------------------------------------------------------

/// `kubernetes-validate`, as a program or as the Python module; panics with the install hint.
fn validator() -> Vec<String> {
    let candidates: [&[&str]; 3] = [
        &["kubernetes-validate"],
        &["python3", "-m", "kubernetes_validate"],
        &["python", "-m", "kubernetes_validate"],
    ];
    for c in candidates {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return c.iter().map(|s| s.to_string()).collect();
        }
    }
    panic!(
        "kubernetes-validate is not installed (neither the `kubernetes-validate` program nor the \
         python module kubernetes_validate was found): {INSTALL_HINT}"
    );
}

/// Runs the validator; `stdin` given means the single file argument is `-`.
fn validate(args: &[String], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let cmd = validator();
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["--strict", "--kubernetes-version", K8S_VERSION])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {INSTALL_HINT}"));
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A validator report is clean when it exits 0, has no ERROR or WARN line (WARN includes "no
/// schema for this kind", which would mean nothing was checked), and passed `expected` objects.
fn assert_clean(what: &str, ok: bool, report: &str, expected: usize) {
    let bad: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("ERROR") || l.starts_with("WARN"))
        .collect();
    assert!(ok && bad.is_empty(), "{what} does not validate:\n{report}");
    let passed = report.lines().filter(|l| l.contains(" passed ")).count();
    assert_eq!(
        passed, expected,
        "{what}: expected {expected} objects to pass:\n{report}"
    );
}

#[test]
fn every_manifest_file_validates_against_the_kubernetes_schema() {
    let files = manifest_files();
    let expected: usize = files
        .iter()
        .map(|f| documents(&std::fs::read_to_string(f).unwrap()).len())
        .sum();
    let args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let (ok, report) = validate(&args, None);
    assert_clean("manifests/*.yaml", ok, &report, expected);
}

#[test]
fn kustomize_output_validates_against_the_kubernetes_schema() {
    let expected = objects().len();
    let (ok, report) = validate(&["-".to_string()], Some(rendered()));
    assert_clean("kubectl kustomize manifests/", ok, &report, expected);
}

#[test]
fn the_validator_really_rejects_an_unknown_field() {
    // Guards the two tests above against a validator that passes everything.
    let bad = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  portz: []\n";
    let (ok, report) = validate(&["-".to_string()], Some(bad));
    assert!(
        !ok,
        "kubernetes-validate --strict accepted an unknown field:\n{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// Objects and properties
// ---------------------------------------------------------------------------------------------

#[test]
fn the_expected_objects_exist_and_live_in_signet_system() {
    let kinds: BTreeSet<(String, String)> = objects()
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (kind, name) in [
        ("Namespace", "signet-system"),
        ("ServiceAccount", "signet"),
        ("ConfigMap", "signet-policies"),
        ("Deployment", "signet"),
        ("Service", "signet"),
        ("PodDisruptionBudget", "signet"),
        ("ValidatingWebhookConfiguration", "signet"),
    ] {
        assert!(
            kinds.contains(&(kind.to_string(), name.to_string())),
            "missing {kind} {name}; have {kinds:?}"
        );
    }
    for o in objects() {
        let kind = o["kind"].as_str().unwrap();
        if kind == "Namespace" || kind == "ValidatingWebhookConfiguration" {
            continue;
        }
        assert_eq!(
            o["metadata"]["namespace"].as_str(),
            Some("signet-system"),
            "{kind} {:?} is not in signet-system",
            o["metadata"]["name"]
        );
    }
    // No RBAC is granted: signet makes no API calls (see manifests/rbac.yaml).
    assert!(
        !objects().iter().any(|o| o["apiVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("rbac.authorization.k8s.io")),
        "RBAC objects appeared: signet needs no API access; justify them in rbac.yaml and here"
    );
}

#[test]
fn webhook_fails_closed_with_the_agreed_settings() {
    let vwc = object("ValidatingWebhookConfiguration", "signet");
    let hooks = vwc["webhooks"].as_sequence().unwrap();
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!(h["failurePolicy"].as_str(), Some("Fail"));
    assert_eq!(h["sideEffects"].as_str(), Some("None"));
    assert_eq!(h["timeoutSeconds"].as_i64(), Some(10));
    assert_eq!(h["matchPolicy"].as_str(), Some("Equivalent"));
    assert_eq!(strs(&h["admissionReviewVersions"]), ["v1"]);
    let svc = &h["clientConfig"]["service"];
    assert_eq!(svc["name"].as_str(), Some("signet"));
    assert_eq!(svc["namespace"].as_str(), Some("signet-system"));
    assert_eq!(svc["path"].as_str(), Some("/validate"));
    assert_eq!(svc["port"].as_i64(), Some(443));
    assert!(
        h["clientConfig"]["url"].is_null(),
        "use the Service, not a URL"
    );
}

#[test]
fn webhook_excludes_kube_system_and_its_own_namespace() {
    let vwc = object("ValidatingWebhookConfiguration", "signet");
    let sel = &vwc["webhooks"][0]["namespaceSelector"];
    assert!(
        sel["matchLabels"].is_null(),
        "unexpected matchLabels: {sel:?}"
    );
    let exprs = sel["matchExpressions"].as_sequence().unwrap();
    assert_eq!(exprs.len(), 1, "{exprs:?}");
    let e = &exprs[0];
    assert_eq!(e["key"].as_str(), Some("kubernetes.io/metadata.name"));
    assert_eq!(e["operator"].as_str(), Some("NotIn"));
    let values: BTreeSet<&str> = strs(&e["values"]).into_iter().collect();
    assert_eq!(values, BTreeSet::from(["kube-system", "signet-system"]));
    assert!(
        vwc["webhooks"][0]["objectSelector"].is_null(),
        "an objectSelector would let workload authors opt out with a label"
    );
}

#[test]
fn webhook_covers_the_nine_workload_resources_on_create_and_update() {
    let vwc = object("ValidatingWebhookConfiguration", "signet");
    let mut covered = BTreeSet::new();
    for rule in vwc["webhooks"][0]["rules"].as_sequence().unwrap() {
        let mut ops = strs(&rule["operations"]);
        ops.sort();
        assert_eq!(ops, ["CREATE", "UPDATE"], "rule {rule:?}");
        assert_eq!(strs(&rule["apiVersions"]), ["v1"], "rule {rule:?}");
        assert_eq!(rule["scope"].as_str(), Some("Namespaced"), "rule {rule:?}");
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                assert!(!r.contains('*') && g != "*", "wildcard in rule {rule:?}");
                covered.insert(format!("{g}/{r}"));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "/pods",
        "/pods/ephemeralcontainers",
        "/replicationcontrollers",
        "apps/deployments",
        "apps/replicasets",
        "apps/statefulsets",
        "apps/daemonsets",
        "batch/jobs",
        "batch/cronjobs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(covered, expected);
}

fn container() -> Value {
    let d = object("Deployment", "signet");
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .clone();
    assert_eq!(cs.len(), 1);
    cs[0].clone()
}

/// A probe's or Service's port, resolved through the container's named ports.
fn container_port(port: &Value) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = port.as_str().expect("port is a number or a name");
    container()["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_i64()
        .unwrap()
}

#[test]
fn deployment_runs_the_agreed_command_line() {
    let d = object("Deployment", "signet");
    assert_eq!(d["spec"]["replicas"].as_i64(), Some(2));
    let c = container();
    let mut argv = strs(&c["command"]);
    argv.extend(strs(&c["args"]));
    assert_eq!(
        argv,
        [
            "/usr/local/bin/signet",
            "serve",
            "--listen=0.0.0.0:8443",
            "--admin-listen=0.0.0.0:8080",
            "--tls-cert=/etc/signet/tls/tls.crt",
            "--tls-key=/etc/signet/tls/tls.key",
            "--policies=/etc/signet/policies",
            "--log-format=json",
        ]
    );
    let tgp = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!(
        tgp > 10,
        "grace period {tgp}s must exceed the 10 s webhook timeout"
    );
}

#[test]
fn probes_use_the_admin_port() {
    let c = container();
    let live = &c["livenessProbe"]["httpGet"];
    let ready = &c["readinessProbe"]["httpGet"];
    assert_eq!(live["path"].as_str(), Some("/healthz"));
    assert_eq!(ready["path"].as_str(), Some("/readyz"));
    assert_eq!(container_port(&live["port"]), 8080);
    assert_eq!(container_port(&ready["port"]), 8080);
    for probe in [live, ready] {
        assert!(
            probe["scheme"].is_null() || probe["scheme"].as_str() == Some("HTTP"),
            "the admin port is plain HTTP"
        );
    }
}

#[test]
fn pod_is_locked_down() {
    let d = object("Deployment", "signet");
    let pod = &d["spec"]["template"]["spec"];
    let c = container();
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(!c["resources"][k][r].is_null(), "resources.{k}.{r} unset");
        }
    }
}

#[test]
fn tls_secret_and_policies_are_mounted_whole() {
    let d = object("Deployment", "signet");
    let pod = &d["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_sequence().unwrap();
    let source = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };
    let mounts = container()["volumeMounts"].as_sequence().unwrap().clone();
    let mount_of = |path: &str| {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        // subPath mounts never see Secret/ConfigMap updates: no hot reload.
        assert!(m["subPath"].is_null(), "{path} uses subPath");
        assert_eq!(m["readOnly"].as_bool(), Some(true), "{path} not read-only");
        m["name"].as_str().unwrap().to_string()
    };
    let tls = source(&mount_of("/etc/signet/tls"));
    assert_eq!(tls["secret"]["secretName"].as_str(), Some("signet-tls"));
    let pol = source(&mount_of("/etc/signet/policies"));
    assert_eq!(pol["configMap"]["name"].as_str(), Some("signet-policies"));
}

#[test]
fn service_and_pdb_select_the_pods() {
    let d = object("Deployment", "signet");
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    let selects = |sel: &Value| {
        sel.as_mapping()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k.as_str().unwrap()] == v)
    };
    let svc = object("Service", "signet");
    assert!(selects(&svc["spec"]["selector"]));
    let ports = svc["spec"]["ports"].as_sequence().unwrap();
    let https = ports
        .iter()
        .find(|p| p["port"].as_i64() == Some(443))
        .expect("service port 443");
    assert_eq!(container_port(&https["targetPort"]), 8443);
    assert!(
        ports
            .iter()
            .any(|p| container_port(&p["targetPort"]) == 8080),
        "no metrics port"
    );
    let pdb = object("PodDisruptionBudget", "signet");
    assert_eq!(pdb["spec"]["minAvailable"].as_i64(), Some(1));
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
}

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

fn load(dir: &Path) -> signet::policy::PolicySet {
    signet::policy::load_dir(dir).unwrap_or_else(|errs| {
        let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        panic!("{} does not load:\n{}", dir.display(), list.join("\n"))
    })
}

#[test]
fn default_policies_load_and_deny_unmatched_images() {
    let set = load(&root().join("policies"));
    assert!(
        set.policies.is_empty(),
        "policies/ should hold only the settings"
    );
    assert_eq!(set.no_match, signet::policy::NoMatch::Deny);
}

#[test]
fn example_policies_load() {
    let set = load(&root().join("policies/examples"));
    let mut names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ghcr-warn",
            "prod-enforce",
            "release-notation",
            "team-a/team-a-audit"
        ]
    );
    assert_eq!(set.no_match, signet::policy::NoMatch::Warn);
}

#[test]
fn configmap_policies_load() {
    let cm = object("ConfigMap", "signet-policies");
    let dir = tempfile::tempdir().unwrap();
    let data = cm["data"].as_mapping().unwrap();
    assert!(!data.is_empty());
    for (k, v) in data {
        std::fs::write(dir.path().join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
    }
    let set = load(dir.path());
    assert!(!set.policies.is_empty());
}

// ---------------------------------------------------------------------------------------------
// certs/gen.sh
// ---------------------------------------------------------------------------------------------

#[test]
fn gen_sh_makes_a_serving_certificate_for_the_service() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(out.path())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "certs/gen.sh failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("kubectl -n signet-system create secret tls signet-tls"));
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(out.path().join("tls.crt"))
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&text.stdout);
    for san in [
        "DNS:signet,",
        "DNS:signet.signet-system,",
        "DNS:signet.signet-system.svc,",
        "DNS:signet.signet-system.svc.cluster.local",
    ] {
        assert!(text.contains(san), "missing {san} in:\n{text}");
    }
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(out.path().join("ca.crt"))
        .arg(out.path().join("tls.crt"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // The printed caBundle is the CA certificate.
    use base64::Engine;
    let ca = std::fs::read(out.path().join("ca.crt")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(stdout.contains(&b64), "caBundle not printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["tls.key", "ca.key"] {
            let mode = std::fs::metadata(out.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // A second run refuses to overwrite without --force.
    let again = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn ca_bundle_is_a_placeholder_the_api_server_rejects() {
    // Applying the manifests unchanged must fail for the webhook object (not base64), never
    // register a webhook whose TLS cannot verify.
    use base64::Engine;
    let vwc = object("ValidatingWebhookConfiguration", "signet");
    let bundle = vwc["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap();
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .is_err(),
        "caBundle {bundle:?} decodes; the placeholder must not"
    );
    assert!(
        bundle.contains("certs/gen.sh"),
        "the placeholder {bundle:?} should name certs/gen.sh"
    );
}

/// The optional pinning component, rendered the way an operator enables it (an overlay beside
/// the base listing it under `components:`), validates and registers `/mutate` as a
/// reinvoked, side-effect-free, fail-open mutating webhook on Pods.
#[test]
fn the_pinning_component_renders_a_valid_mutating_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifests_dir())
        .arg(dir.path().join("manifests"))
        .status()
        .unwrap();
    assert!(copied.success());
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [\"../manifests\"]\ncomponents: [\"../manifests/components/pinning\"]\n",
    )
    .unwrap();
    let out = match Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "skipped: kubectl is not runnable here ({e}), so kustomize components cannot be rendered"
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = documents(&text);
    assert_eq!(docs.len(), objects().len() + 1, "the base plus one object");
    let (ok, report) = validate(&["-".to_string()], Some(&text));
    assert_clean("the pinning overlay", ok, &report, docs.len());
    let hook = docs
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .expect("a MutatingWebhookConfiguration");
    let w = &hook["webhooks"][0];
    assert_eq!(w["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(w["reinvocationPolicy"], "IfNeeded");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["failurePolicy"], "Ignore");
    let pods = w["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|r| strs(&r["resources"]).contains(&"pods"));
    assert!(pods, "pods are pinned: {w:?}");
}

// ---------------------------------------------------------------------------------------------
// The image entry, the optional components and gen.sh's overlay
// ---------------------------------------------------------------------------------------------

/// Custom-resource groups the offline validator has no schema for: objects of these groups
/// are checked by the assertions of their test instead.
const CRD_GROUPS: [&str; 2] = ["cert-manager.io/", "monitoring.coreos.com/"];

fn is_custom_resource(o: &Value) -> bool {
    let api = o["apiVersion"].as_str().unwrap_or_default();
    CRD_GROUPS.iter().any(|g| api.starts_with(g))
}

/// `kubectl kustomize` of an overlay beside a copy of manifests/ that lists `components` (names
/// under manifests/components/, in order); `None` (with the reason printed) when kubectl is not
/// runnable here.
fn render_overlay(components: &[&str]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifests_dir())
        .arg(dir.path().join("manifests"))
        .status()
        .unwrap();
    assert!(copied.success());
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("\"../manifests/components/{c}\""))
        .collect();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [\"../manifests\"]\ncomponents: [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    render_dir(&overlay)
}

fn render_dir(dir: &Path) -> Option<String> {
    match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "kubectl kustomize {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).unwrap())
        }
        Err(e) => {
            eprintln!("skipped: kubectl is not runnable here ({e}), so kustomize cannot render");
            None
        }
    }
}

/// Validates the built-in objects of `docs` with the Kubernetes schema; returns the custom
/// resources, which the caller checks by assertions.
fn validate_builtin(what: &str, docs: &[Value]) -> Vec<Value> {
    let (custom, builtin): (Vec<Value>, Vec<Value>) =
        docs.iter().cloned().partition(is_custom_resource);
    let text = builtin
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let (ok, report) = validate(&["-".to_string()], Some(&text));
    assert_clean(what, ok, &report, builtin.len());
    custom
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind} {name}");
    found[0]
}

#[test]
fn the_deployment_takes_its_image_from_the_one_kustomize_images_entry() {
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifests_dir().join("kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let images = k["images"]
        .as_sequence()
        .expect("kustomization.yaml images:");
    assert_eq!(images.len(), 1, "one images entry: {images:?}");
    let entry = &images[0];
    assert_eq!(entry["name"], "signet");
    let new_name = entry["newName"].as_str().expect("images[0].newName");
    let expected = match (entry["newTag"].as_str(), entry["digest"].as_str()) {
        (Some(tag), None) => format!("{new_name}:{tag}"),
        (None, Some(digest)) => format!("{new_name}@{digest}"),
        other => panic!("images[0] needs newTag or digest, not {other:?}"),
    };
    // deployment.yaml names the image by the entry's name only, so nothing else pins it.
    let raw: Value = serde_yaml::from_str(
        &std::fs::read_to_string(manifests_dir().join("deployment.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        raw["spec"]["template"]["spec"]["containers"][0]["image"],
        "signet"
    );
    let Some(text) = render_dir(&manifests_dir()) else {
        return;
    };
    let docs = documents(&text);
    let d = find(&docs, "Deployment", "signet");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    assert_eq!(containers[0]["image"].as_str(), Some(expected.as_str()));
    // No other image anywhere in the rendered manifests.
    let all: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(all, [expected.as_str()]);
}

#[test]
fn the_cert_manager_component_issues_the_serving_cert_and_injects_the_ca() {
    // After pinning, so that both webhook configurations get the annotation.
    let Some(text) = render_overlay(&["pinning", "cert-manager"]) else {
        return;
    };
    let docs = documents(&text);
    let custom = validate_builtin("the pinning + cert-manager overlay", &docs);
    assert_eq!(custom.len(), 4, "two Issuers, two Certificates: {custom:?}");

    // The serving certificate: into the Secret the Deployment mounts, with the Service's SANs.
    let serving = find(&custom, "Certificate", "signet-serving-cert");
    assert_eq!(serving["metadata"]["namespace"], "signet-system");
    let deployment = find(&docs, "Deployment", "signet");
    let mounted = deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap()["secret"]["secretName"]
        .clone();
    assert_eq!(serving["spec"]["secretName"], mounted);
    let sans: BTreeSet<&str> = strs(&serving["spec"]["dnsNames"]).into_iter().collect();
    assert_eq!(
        sans,
        BTreeSet::from([
            "signet",
            "signet.signet-system",
            "signet.signet-system.svc",
            "signet.signet-system.svc.cluster.local"
        ])
    );
    assert!(strs(&serving["spec"]["usages"]).contains(&"server auth"));
    assert_eq!(serving["spec"]["privateKey"]["encoding"], "PKCS8");
    // Issued by a CA Issuer whose CA is a Certificate from the self-signed Issuer.
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    let ca_issuer = find(
        &custom,
        "Issuer",
        serving["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    let ca_secret = ca_issuer["spec"]["ca"]["secretName"].as_str().unwrap();
    let ca_cert = custom
        .iter()
        .find(|c| c["kind"] == "Certificate" && c["spec"]["secretName"] == ca_secret)
        .expect("a Certificate makes the CA Issuer's secret");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let root = find(
        &custom,
        "Issuer",
        ca_cert["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    assert!(root["spec"]["selfSigned"].is_mapping(), "{root:?}");
    for c in &custom {
        assert_eq!(c["metadata"]["namespace"], "signet-system", "{c:?}");
    }

    // Both webhook configurations: CA injected from that Certificate, no placeholder left.
    for (kind, name) in [
        ("ValidatingWebhookConfiguration", "signet"),
        ("MutatingWebhookConfiguration", "signet-pinning"),
    ] {
        let hook = find(&docs, kind, name);
        assert_eq!(
            hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "signet-system/signet-serving-cert",
            "{kind}"
        );
        for w in hook["webhooks"].as_sequence().unwrap() {
            assert!(
                w["clientConfig"]["caBundle"].is_null(),
                "{kind} keeps a caBundle"
            );
        }
    }

    // Alone (without pinning) it renders too.
    let alone = render_overlay(&["cert-manager"]).unwrap();
    assert_eq!(documents(&alone).len(), objects().len() + 4);
}

/// Metric names and label pairs (`name{label="value"}`) that PromQL `expr` refers to.
fn metric_selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let re = regex::Regex::new(r"(signet_[a-z0-9_]+)(\{[^}]*\})?").unwrap();
    let pair = regex::Regex::new(r#"([a-z_]+)\s*=\s*"([^"]*)""#).unwrap();
    re.captures_iter(expr)
        .map(|c| {
            let labels = c
                .get(2)
                .map(|m| {
                    pair.captures_iter(m.as_str())
                        .map(|p| (p[1].to_string(), p[2].to_string()))
                        .collect()
                })
                .unwrap_or_default();
            (c[1].to_string(), labels)
        })
        .collect()
}

#[test]
fn the_prometheus_component_scrapes_the_admin_port_and_alerts_on_signet_metrics() {
    let Some(text) = render_overlay(&["prometheus"]) else {
        return;
    };
    let docs = documents(&text);
    let custom = validate_builtin("the prometheus overlay", &docs);
    assert_eq!(custom.len(), 2, "{custom:?}");

    // ServiceMonitor: selects the Service, scrapes its port that leads to the admin port.
    let sm = find(&custom, "ServiceMonitor", "signet");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc = object("Service", "signet");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k.as_str().unwrap()], v, "{k:?}");
    }
    assert_eq!(
        strs(&sm["spec"]["namespaceSelector"]["matchNames"]),
        ["signet-system"]
    );
    let endpoints = sm["spec"]["endpoints"].as_sequence().unwrap();
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(ep["scheme"], "http");
    let port = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ep["port"])
        .unwrap_or_else(|| panic!("the Service has no port named {:?}", ep["port"]));
    assert_eq!(container_port(&port["targetPort"]), 8080);

    // PrometheusRule: the alerts, on series signet really exposes.
    let rule = find(&custom, "PrometheusRule", "signet");
    let rules: Vec<&Value> = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .collect();
    let metrics = signet::metrics::Metrics::new();
    metrics
        .admission_duration
        .with_label_values(&[] as &[&str])
        .observe(0.01);
    metrics.trust_expiry.with_label_values(&["prod"]).set(2e9);
    let exposed = metrics.encode();
    let mut alerts = BTreeSet::new();
    for r in &rules {
        let name = r["alert"].as_str().expect("alerting rules only");
        alerts.insert(name);
        assert!(!r["labels"]["severity"].is_null(), "{name}: no severity");
        assert!(!r["annotations"]["summary"].is_null(), "{name}: no summary");
        let expr = r["expr"].as_str().unwrap();
        let selectors = metric_selectors(expr);
        assert!(!selectors.is_empty(), "{name}: no signet metric in {expr}");
        for (metric, labels) in selectors {
            let series: Vec<&str> = exposed
                .lines()
                .filter(|l| {
                    l.strip_prefix(metric.as_str())
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .collect();
            assert!(!series.is_empty(), "{name}: signet exposes no {metric}");
            for (label, value) in labels {
                let needle = format!("{label}=\"{value}\"");
                assert!(
                    series.iter().any(|s| s.contains(&needle)),
                    "{name}: no {metric} series with {needle}: {series:?}"
                );
            }
        }
    }
    assert_eq!(
        alerts,
        BTreeSet::from([
            "SignetDenialsSpike",
            "SignetOverloaded",
            "SignetPolicyReloadFailing",
            "SignetSlowReviews",
            "SignetTrustExpiringSoon",
        ])
    );
    let expr_of = |alert: &str| {
        rules.iter().find(|r| r["alert"] == alert).unwrap()["expr"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(expr_of("SignetSlowReviews").contains("histogram_quantile(0.99"));
    assert!(expr_of("SignetTrustExpiringSoon").contains("- time() < 14 * 86400"));

    // The PromQL parses: promtool checks the rule groups.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let mut groups = serde_yaml::Mapping::new();
    groups.insert("groups".into(), rule["spec"]["groups"].clone());
    std::fs::write(&file, serde_yaml::to_string(&groups).unwrap()).unwrap();
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is not runnable ({e}): run scripts/install-test-deps.sh (Debian package prometheus)")
        });
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // And the alerts fire on the series they are meant for, and only on those: promtool's rule
    // unit tests, on the rules without their annotations (templated text is not under test).
    let mut bare = rule["spec"]["groups"].clone();
    for g in bare.as_sequence_mut().unwrap() {
        for r in g["rules"].as_sequence_mut().unwrap() {
            r.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    let mut groups = serde_yaml::Mapping::new();
    groups.insert("groups".into(), bare);
    std::fs::write(&file, serde_yaml::to_string(&groups).unwrap()).unwrap();
    std::fs::write(dir.path().join("tests.yaml"), ALERT_TESTS).unwrap();
    let test = Command::new("promtool")
        .args(["test", "rules"])
        .arg(dir.path().join("tests.yaml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

/// promtool unit tests of the PrometheusRule's alerts (one sample a minute).
const ALERT_TESTS: &str = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # Trouble: half the reviews denied, some overloaded, a failed reload, slow answers, a
  # trust-store certificate 10 days from expiry next to one 30 days away.
  - interval: 1m
    input_series:
      - series: 'signet_admission_reviews_total{decision="allowed"}'
        values: '0+10x30'
      - series: 'signet_admission_reviews_total{decision="denied"}'
        values: '0+10x30'
      - series: 'signet_admission_reviews_total{decision="overloaded"}'
        values: '0+1x30'
      - series: 'signet_policy_reloads_total{result="failure",pod="signet-a"}'
        values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
      - series: 'signet_admission_review_duration_seconds_bucket{le="5"}'
        values: '0x30'
      - series: 'signet_admission_review_duration_seconds_bucket{le="10"}'
        values: '0+1x30'
      - series: 'signet_admission_review_duration_seconds_bucket{le="+Inf"}'
        values: '0+1x30'
      - series: 'signet_policy_trust_expiry_timestamp_seconds{policy="prod"}'
        values: '864000x30'
      - series: 'signet_policy_trust_expiry_timestamp_seconds{policy="later"}'
        values: '2592000x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: SignetDenialsSpike
        exp_alerts: [{exp_labels: {severity: warning}}]
      - eval_time: 25m
        alertname: SignetOverloaded
        exp_alerts: [{exp_labels: {severity: warning}}]
      - eval_time: 5m
        alertname: SignetPolicyReloadFailing
        exp_alerts:
          - exp_labels: {severity: warning, result: failure, pod: signet-a}
      - eval_time: 25m
        alertname: SignetSlowReviews
        exp_alerts: [{exp_labels: {severity: warning}}]
      - eval_time: 5m
        alertname: SignetTrustExpiringSoon
        exp_alerts: [{exp_labels: {severity: warning, policy: prod}}]
  # A healthy signet: nothing fires.
  - interval: 1m
    input_series:
      - series: 'signet_admission_reviews_total{decision="allowed"}'
        values: '0+10x30'
      - series: 'signet_admission_reviews_total{decision="denied"}'
        values: '0+1x30'
      - series: 'signet_admission_reviews_total{decision="overloaded"}'
        values: '0x30'
      - series: 'signet_policy_reloads_total{result="failure",pod="signet-a"}'
        values: '0x30'
      - series: 'signet_admission_review_duration_seconds_bucket{le="0.1"}'
        values: '0+1x30'
      - series: 'signet_admission_review_duration_seconds_bucket{le="+Inf"}'
        values: '0+1x30'
      - series: 'signet_policy_trust_expiry_timestamp_seconds{policy="later"}'
        values: '2592000x30'
    alert_rule_test:
      - {eval_time: 25m, alertname: SignetDenialsSpike, exp_alerts: []}
      - {eval_time: 25m, alertname: SignetOverloaded, exp_alerts: []}
      - {eval_time: 25m, alertname: SignetPolicyReloadFailing, exp_alerts: []}
      - {eval_time: 25m, alertname: SignetSlowReviews, exp_alerts: []}
      - {eval_time: 25m, alertname: SignetTrustExpiringSoon, exp_alerts: []}
"#;

#[test]
fn the_networkpolicy_component_opens_the_webhook_port_and_limits_the_admin_port() {
    let Some(text) = render_overlay(&["networkpolicy"]) else {
        return;
    };
    let docs = documents(&text);
    assert_eq!(docs.len(), objects().len() + 1);
    assert!(validate_builtin("the networkpolicy overlay", &docs).is_empty());
    let np = find(&docs, "NetworkPolicy", "signet");
    assert_eq!(np["metadata"]["namespace"], "signet-system");
    // Selects the webhook's pods.
    let labels = &find(&docs, "Deployment", "signet")["spec"]["template"]["metadata"]["labels"];
    for (k, v) in np["spec"]["podSelector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&labels[k.as_str().unwrap()], v, "{k:?}");
    }
    // Ingress only: egress to registries and DNS stays open.
    assert_eq!(strs(&np["spec"]["policyTypes"]), ["Ingress"]);
    let ingress = np["spec"]["ingress"].as_sequence().unwrap();
    let rule_for = |port: i64| {
        let found: Vec<&Value> = ingress
            .iter()
            .filter(|r| {
                r["ports"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|p| container_port(&p["port"]) == port)
            })
            .collect();
        assert_eq!(found.len(), 1, "one ingress rule for {port}: {ingress:?}");
        found[0].clone()
    };
    // The webhook port from anywhere (the API server is not selectable), nothing else in it.
    let webhook = rule_for(8443);
    assert!(
        webhook["from"].is_null(),
        "8443 must stay open: {webhook:?}"
    );
    assert_eq!(webhook["ports"].as_sequence().unwrap().len(), 1);
    // The admin port from the monitoring namespace only.
    let admin = rule_for(8080);
    let from = admin["from"].as_sequence().expect("8080 restricted");
    assert_eq!(from.len(), 1);
    assert!(from[0]["podSelector"].is_null() && from[0]["ipBlock"].is_null());
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
}

/// `certs/gen.sh --out-dir DIR` makes DIR an overlay: `kubectl apply -k DIR` creates the TLS
/// Secret from the files and fills the caBundle of both webhook configurations; extra SANs
/// land in the certificate.
#[test]
fn gen_sh_writes_an_overlay_with_the_secret_the_ca_bundle_and_extra_sans() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifests_dir())
        .arg(dir.path().join("manifests"))
        .status()
        .unwrap();
    assert!(copied.success());
    let out = dir.path().join("deploy");
    let run = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(&out)
        .arg("--manifests")
        .arg(dir.path().join("manifests"))
        .args([
            "--ip",
            "10.0.0.7",
            "--ip",
            "fd00::7",
            "--dns",
            "signet.example.test",
        ])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("kubectl apply -k {}", out.display())),
        "{stdout}"
    );
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(out.join("tls.crt"))
        .output()
        .unwrap();
    let sans = String::from_utf8_lossy(&sans.stdout);
    for san in [
        "DNS:signet.signet-system.svc,",
        "DNS:signet.example.test",
        "IP Address:10.0.0.7",
        "IP Address:FD00:0:0:0:0:0:0:7",
    ] {
        assert!(sans.contains(san), "missing {san} in:\n{sans}");
    }

    // With the pinning component added to the overlay, as its comment says.
    let mut k = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
    k.push_str("components: [\"../manifests/components/pinning\"]\n");
    std::fs::write(out.join("kustomization.yaml"), k).unwrap();
    let Some(text) = render_dir(&out) else {
        return;
    };
    let docs = documents(&text);
    assert_eq!(
        docs.len(),
        objects().len() + 2,
        "the base, the pinning webhook, the Secret"
    );
    let (ok, report) = validate(&["-".to_string()], Some(&text));
    assert_clean("gen.sh's overlay", ok, &report, docs.len());
    let ca = b64.encode(std::fs::read(out.join("ca.crt")).unwrap());
    for (kind, name) in [
        ("ValidatingWebhookConfiguration", "signet"),
        ("MutatingWebhookConfiguration", "signet-pinning"),
    ] {
        assert_eq!(
            find(&docs, kind, name)["webhooks"][0]["clientConfig"]["caBundle"].as_str(),
            Some(ca.as_str()),
            "{kind}"
        );
    }
    let secret = find(&docs, "Secret", "signet-tls");
    assert_eq!(secret["metadata"]["namespace"], "signet-system");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for file in ["tls.crt", "tls.key"] {
        let data: String = secret["data"][file]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            b64.decode(data).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn gen_sh_refuses_malformed_extra_sans() {
    for (flag, value, message) in [
        ("--ip", "10.0.0.300", "not an IP address"),
        ("--ip", "signet.example", "not an IP address"),
        ("--dns", "Signet_Example", "not a lower-case DNS name"),
        ("--dns", "a..b", "not a lower-case DNS name"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let run = Command::new("bash")
            .arg(root().join("certs/gen.sh"))
            .arg("--out-dir")
            .arg(out.path().join("o"))
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(message), "{flag} {value}: {err}");
        assert!(!out.path().join("o").exists(), "{flag} {value} wrote files");
    }
}

/// The pull-secrets component grants exactly `get` on secrets and serviceaccounts to signet's
/// own ServiceAccount (no list, no watch, no other resource), turns `--pull-secrets` on (a
/// flag `signet serve` parses) and mounts the token the base leaves out.
#[test]
fn the_pull_secrets_component_grants_get_only_and_turns_the_flag_on() {
    let Some(text) = render_overlay(&["pull-secrets"]) else {
        return;
    };
    let docs = documents(&text);
    assert_eq!(
        docs.len(),
        objects().len() + 2,
        "a ClusterRole and its binding"
    );
    assert!(validate_builtin("the pull-secrets overlay", &docs).is_empty());

    let role = find(&docs, "ClusterRole", "signet-pull-secrets");
    let rules = role["rules"].as_sequence().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(strs(&rules[0]["apiGroups"]), [""]);
    let resources: BTreeSet<&str> = strs(&rules[0]["resources"]).into_iter().collect();
    assert_eq!(resources, BTreeSet::from(["secrets", "serviceaccounts"]));
    assert_eq!(
        strs(&rules[0]["verbs"]),
        ["get"],
        "least privilege: get only"
    );
    assert!(rules[0]["resourceNames"].is_null());

    let binding = find(&docs, "ClusterRoleBinding", "signet-pull-secrets");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "signet-pull-secrets");
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1);
    let pod = &find(&docs, "Deployment", "signet")["spec"]["template"]["spec"];
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], pod["serviceAccountName"]);
    assert_eq!(subjects[0]["namespace"], "signet-system");
    // Nothing else grants anything.
    let rbac = docs
        .iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .unwrap_or("")
                .starts_with("rbac.authorization.k8s.io")
        })
        .count();
    assert_eq!(rbac, 2);

    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(true));
    let c = &pod["containers"][0];
    let mut argv = strs(&c["command"]);
    argv.extend(strs(&c["args"]));
    assert_eq!(argv.iter().filter(|a| **a == "--pull-secrets").count(), 1);
    let parsed = <signet::cli::Args as clap::Parser>::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("signet does not accept the component's arguments: {e}"));
    let signet::cli::Command::Serve(serve) = parsed.command else {
        panic!("not serve: {argv:?}");
    };
    assert!(serve.pull_secrets);
}
