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
//!
//! This file holds the base and the shared helpers; `policies`, `certs` and `components` the
//! rest, by subject.

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
        (
            "CustomResourceDefinition",
            "clusterimagepolicies.signet.dev",
        ),
        ("CustomResourceDefinition", "imagepolicies.signet.dev"),
        ("ClusterRole", "signet-policies"),
        ("ClusterRoleBinding", "signet-policies"),
        ("Role", "signet-trust-material"),
        ("RoleBinding", "signet-trust-material"),
    ] {
        assert!(
            kinds.contains(&(kind.to_string(), name.to_string())),
            "missing {kind} {name}; have {kinds:?}"
        );
    }
    const CLUSTER_SCOPED: [&str; 4] = [
        "Namespace",
        "ValidatingWebhookConfiguration",
        "CustomResourceDefinition",
        "ClusterRole",
    ];
    for o in objects() {
        let kind = o["kind"].as_str().unwrap();
        if CLUSTER_SCOPED.contains(&kind) || kind == "ClusterRoleBinding" {
            continue;
        }
        assert_eq!(
            o["metadata"]["namespace"].as_str(),
            Some("signet-system"),
            "{kind} {:?} is not in signet-system",
            o["metadata"]["name"]
        );
    }
}

/// Every RBAC rule the base grants, as (apiGroup/resource, verb), from every Role and
/// ClusterRole in `docs`.
fn grants(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for o in docs {
        let kind = o["kind"].as_str().unwrap_or("");
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        for rule in o["rules"].as_sequence().unwrap() {
            assert!(
                rule["resourceNames"].is_null() || kind == "Role",
                "resourceNames in {rule:?}"
            );
            for g in strs(&rule["apiGroups"]) {
                for r in strs(&rule["resources"]) {
                    for v in strs(&rule["verbs"]) {
                        out.insert((kind.to_string(), format!("{g}/{r}"), v.to_string()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn rbac_grants_reading_policies_and_own_namespace_material_and_patching_status() {
    let granted = grants(&objects());
    let expected: BTreeSet<(String, String, String)> = [
        ("signet.dev/clusterimagepolicies", "get"),
        ("signet.dev/clusterimagepolicies", "list"),
        ("signet.dev/clusterimagepolicies", "watch"),
        ("signet.dev/imagepolicies", "get"),
        ("signet.dev/imagepolicies", "list"),
        ("signet.dev/imagepolicies", "watch"),
        ("signet.dev/clusterimagepolicies/status", "patch"),
        ("signet.dev/imagepolicies/status", "patch"),
    ]
    .into_iter()
    .map(|(r, v)| ("ClusterRole".to_string(), r.to_string(), v.to_string()))
    .chain(
        ["/secrets", "/configmaps"]
            .into_iter()
            .flat_map(|r| ["get", "list", "watch"].map(|v| (r, v)))
            .map(|(r, v)| ("Role".to_string(), r.to_string(), v.to_string())),
    )
    .collect();
    assert_eq!(
        granted, expected,
        "the base grants more or less than the policy source needs"
    );
    let role = object("Role", "signet-trust-material");
    assert_eq!(
        role["metadata"]["namespace"].as_str(),
        Some("signet-system"),
        "Secrets are read in signet's own namespace only"
    );
    let binding = object("ClusterRoleBinding", "signet-policies");
    assert_eq!(binding["roleRef"]["name"].as_str(), Some("signet-policies"));
    assert_eq!(binding["subjects"][0]["name"].as_str(), Some("signet"));
    assert_eq!(
        binding["subjects"][0]["namespace"].as_str(),
        Some("signet-system")
    );
}

#[test]
fn the_crds_in_the_base_are_the_generated_ones() {
    for name in [
        "clusterimagepolicies.signet.dev",
        "imagepolicies.signet.dev",
    ] {
        let crd = object("CustomResourceDefinition", name);
        let file: Value = serde_yaml::from_str(
            &std::fs::read_to_string(manifests_dir().join(format!("crds/{name}.yaml"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            crd["spec"], file["spec"],
            "{name}: kustomize changed the spec"
        );
    }
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
            "--kubernetes",
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
    // The token is for the policy source's watches and status writes (rbac.yaml).
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(true));
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
// Rendering overlays: the components, and the one gen.sh writes
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

mod certs;
mod components;
mod policies;
