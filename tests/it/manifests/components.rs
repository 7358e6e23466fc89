//! The optional kustomize components and the image entry: each renders through an overlay,
//! validates, and grants or changes exactly what it says.

use super::*;

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

#[test]
fn the_secrets_all_namespaces_component_grants_cluster_wide_reading_and_sets_the_flag() {
    let Some(text) = render_overlay(&["secrets-all-namespaces"]) else {
        return;
    };
    let docs = documents(&text);
    validate_builtin("the secrets-all-namespaces overlay", &docs);
    let granted = grants(&docs);
    for r in ["/secrets", "/configmaps"] {
        for v in ["get", "list", "watch"] {
            assert!(
                granted.contains(&("ClusterRole".to_string(), r.to_string(), v.to_string())),
                "{r} {v} not granted cluster-wide"
            );
        }
    }
    let binding = find(&docs, "ClusterRoleBinding", "signet-trust-material");
    assert_eq!(binding["subjects"][0]["name"].as_str(), Some("signet"));
    let d = find(&docs, "Deployment", "signet");
    let args = strs(&d["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(args.contains(&"--secrets-all-namespaces"), "{args:?}");
    assert!(args.contains(&"--kubernetes"), "{args:?}");
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
            "SignetPolicyMaterialMissing",
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
  # trust-store certificate 10 days from expiry next to one 30 days away, a missing Secret.
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
      - series: 'signet_policy_material_missing{pod="signet-a"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: SignetPolicyMaterialMissing
        exp_alerts: [{exp_labels: {severity: warning}}]
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
      - series: 'signet_policy_material_missing{pod="signet-a"}'
        values: '0x30'
    alert_rule_test:
      - {eval_time: 25m, alertname: SignetPolicyMaterialMissing, exp_alerts: []}
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
    // Nothing else grants anything beyond what the base grants.
    let is_rbac = |d: &&Value| {
        d["apiVersion"]
            .as_str()
            .unwrap_or("")
            .starts_with("rbac.authorization.k8s.io")
    };
    let rbac = docs.iter().filter(is_rbac).count();
    let base = objects();
    assert_eq!(rbac, base.iter().filter(is_rbac).count() + 2);

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

/// The kubernetes-only component: no policies ConfigMap, volume, mount or `--policies`, and
/// the arguments are ones `signet serve` accepts as "every policy is a resource".
#[test]
fn the_kubernetes_only_component_drops_the_policy_directory() {
    let Some(text) = render_overlay(&["kubernetes-only"]) else {
        return;
    };
    let docs = documents(&text);
    assert_eq!(
        docs.len(),
        objects().len() - 1,
        "the base less the ConfigMap"
    );
    assert!(validate_builtin("the kubernetes-only overlay", &docs).is_empty());
    assert!(
        !docs.iter().any(|d| d["kind"] == "ConfigMap"),
        "no policies ConfigMap"
    );
    let pod = &find(&docs, "Deployment", "signet")["spec"]["template"]["spec"];
    let volumes: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(volumes, ["tls", "tmp"]);
    let c = &pod["containers"][0];
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(mounts, ["tls", "tmp"]);
    let mut argv = strs(&c["command"]);
    argv.extend(strs(&c["args"]));
    assert!(
        !argv.iter().any(|a| a.starts_with("--policies")),
        "{argv:?}"
    );
    let parsed = <signet::cli::Args as clap::Parser>::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("signet does not accept the component's arguments: {e}"));
    let config = signet::config::Config::try_from(parsed).unwrap();
    let signet::config::CommandConfig::Serve {
        serve, kubernetes, ..
    } = config.command
    else {
        panic!("not serve: {argv:?}");
    };
    assert!(kubernetes.is_some(), "{argv:?}");
    assert_eq!(serve.policies, None, "no policy directory");
    assert_eq!(serve.no_match_override, Some(signet::policy::NoMatch::Warn));
}
