//! Trust material from watched Secrets and from Key Vault: rotation, deletion and withdrawal
//! reach the loaded set and the resources' status.

use super::*;

/// A spec that takes its first key from the recorded Secret `cosign-pub`.
fn secret_spec(namespace: Option<&str>) -> Value {
    let mut r = json!({"name": "cosign-pub", "key": "cosign.pub"});
    if let Some(ns) = namespace {
        r["namespace"] = json!(ns);
    }
    json!({
        "images": ["registry.example.com/team-a/**"],
        "authorities": [
            {"name": "release", "cosign": {"keys": [{"secretRef": r}]}},
            {"name": "inline", "cosign": {"keys": [{"inline": key_pem()}]}},
        ],
    })
}

#[tokio::test]
async fn a_key_from_a_secret_is_rotated_and_deleted_without_a_restart() {
    let api = FakeApi::default();
    api.push(
        Route::ListCluster,
        recorded("list-clusterimagepolicies-empty"),
    );
    api.push(
        Route::ListNamespaced,
        recorded_with_specs(
            "list-imagepolicies-all-namespaces",
            &[
                ("team-a/apps", secret_spec(None)),
                // Another tenant's policy names team-a's Secret: refused.
                ("team-b/apps", secret_spec(Some("team-a"))),
            ],
        ),
    );
    for _ in 0..20 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let (_dir, files) = empty_dir();
    let opts = KubeOptions {
        secrets_all_namespaces: true,
        ..options()
    };
    let source = Arc::new(KubeSource::start(
        api.client(),
        files,
        opts,
        metrics.clone(),
    ));
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let policy = |set: &PolicySet, name: &str| {
        set.policies
            .iter()
            .find(|p| p.name.as_str() == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let set = source.load().unwrap();
    let apps = policy(&set, "team-a/apps");
    assert_eq!(apps.authorities.len(), 2);
    let first = apps.generation.clone();
    assert!(
        set.policies
            .iter()
            .all(|p| p.name.as_str() != "team-b/apps"),
        "a policy that breaks the tenant rules never loaded"
    );

    let readiness = Arc::new(crate::policy::source::Readiness::new(true));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = crate::policy::source::spawn_watch(
        source.clone(),
        Duration::from_secs(600),
        readiness,
        metrics.clone(),
        move |set| {
            let _ = tx.send(set);
        },
    );
    // Rotation: the recorded MODIFIED event, its key replaced by a new one.
    let rotated = key_pem();
    let (status, body) = watch_lines("watch-secrets-fieldselector", &[0], &[]);
    let mut event: Value = serde_json::from_slice(&body).unwrap();
    use base64::Engine;
    event["object"]["data"]["cosign.pub"] =
        json!(base64::engine::general_purpose::STANDARD.encode(&rotated));
    let sent = Instant::now();
    api.push(
        Route::WatchSecrets,
        (status, format!("{event}\n").into_bytes()),
    );
    let set = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the rotation applies within 2 s")
        .unwrap();
    eprintln!("Secret event to applied policy set: {:?}", sent.elapsed());
    let apps = policy(&set, "team-a/apps");
    assert_ne!(apps.generation, first, "a rotated key is a new generation");
    assert_eq!(apps.authorities.len(), 2);

    // Deletion: the recorded DELETED event. The authority that used the key trusts nothing;
    // the policy still covers its images with its other authority.
    api.push(
        Route::WatchSecrets,
        watch_lines("watch-secrets-fieldselector", &[1], &[]),
    );
    let set = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the deletion applies within 2 s")
        .unwrap();
    let apps = policy(&set, "team-a/apps");
    let names: Vec<&str> = apps.authorities.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["inline"]);
    eventually("the missing Secret in the status", || {
        status_bodies(&api).iter().any(|b| {
            let c = &b["status"]["conditions"][0];
            b["metadata"]["namespace"] == "team-a"
                && b["metadata"]["name"] == "apps"
                && c["reason"] == "ReferenceNotFound"
                && c["message"].as_str().is_some_and(|m| {
                    m.starts_with(
                        "spec.authorities[0].cosign.keys[0]: Secret team-a/cosign-pub not found",
                    )
                })
        })
    })
    .await;
    let refused = status_bodies(&api)
        .into_iter()
        .find(|b| b["metadata"]["namespace"] == "team-b")
        .expect("a status for team-b/apps");
    assert_eq!(
        refused["status"]["conditions"][0]["reason"],
        "ReferenceNotAllowed"
    );
    task.abort();
}

#[test]
fn a_policy_whose_only_key_is_missing_covers_its_images_and_trusts_nothing() {
    let mut spec = secret_spec(None);
    spec["authorities"] = json!([spec["authorities"][0].clone()]);
    let o = object(Kind::ImagePolicy, Some("team-a"), "apps", 1, spec);
    #[derive(Debug)]
    struct Nothing;
    impl crate::policy::material::ObjectMaterial for Nothing {
        fn get(
            &self,
            kind: crate::policy::material::ObjectKind,
            r: &crate::policy::material::ObjectKeyRef,
            _: &Context<'_>,
        ) -> Result<(Vec<u8>, String), MaterialError> {
            Err(MaterialError::NotFound(format!(
                "{} {} not found",
                kind.as_str(),
                r.name
            )))
        }
        fn version(&self) -> u64 {
            0
        }
    }
    let resolver = Resolver::files().with_objects(Arc::new(Nothing));
    match load_object(&o, &resolver) {
        Err(ObjectError::Missing { message, degraded }) => {
            assert!(message.contains("Secret cosign-pub not found"), "{message}");
            assert!(degraded.authorities.is_empty());
            let image = "registry.example.com/team-a/app:1".parse().unwrap();
            assert!(degraded.matches(&image, Some("team-a")));
            assert!(!degraded.matches(&image, Some("team-b")));
        }
        other => panic!("{other:?}"),
    }
}

// --- Key Vault material in the status ------------------------------------------------------

/// A vault whose every answer the test sets.
#[derive(Default)]
struct Vault(StdMutex<Option<Result<Vec<u8>, crate::azure::AzureError>>>);

#[async_trait::async_trait]
impl crate::policy::keyvault::VaultSource for Vault {
    async fn fetch(
        &self,
        _: &crate::policy::keyvault::Entry,
    ) -> Result<Vec<u8>, crate::azure::AzureError> {
        self.0.lock().unwrap().clone().unwrap()
    }
}

/// A resolver over a vault that answered `answers` in turn for every reference `spec` names.
async fn vault_resolver(
    spec: &Value,
    answers: Vec<Result<Vec<u8>, crate::azure::AzureError>>,
) -> Resolver {
    let vault = Arc::new(Vault::default());
    let store = Arc::new(crate::policy::keyvault::KeyVaultStore::new(
        vault.clone(),
        Duration::from_secs(3600),
        Arc::new(Metrics::new()),
    ));
    let resolver = Resolver::files().with_key_vault(store.clone());
    // Asking once makes the store fetch the reference at its next refresh.
    let _ = load_object(
        &object(Kind::ClusterImagePolicy, None, "p", 1, spec.clone()),
        &resolver,
    );
    for answer in answers {
        *vault.0.lock().unwrap() = Some(answer);
        store.refresh().await;
    }
    resolver
}

/// One authority with an inline key and a Key Vault key.
fn key_vault_spec() -> Value {
    let mut spec = good_spec("registry.example.com/**");
    spec["authorities"][0]["cosign"]["keys"] = json!([
        {"inline": key_pem()},
        {"keyVault": {"vaultURI": "https://v.vault.azure.net/", "name": "cosign-key", "version": "1"}},
    ]);
    spec
}

fn ready(outcome: &Outcome) -> Condition {
    desired_status(Some(1), outcome, None, "2026-01-01T00:00:00Z")
        .conditions
        .remove(0)
}

#[tokio::test]
async fn a_withdrawn_key_vault_key_shows_in_the_status_and_is_trusted_no_more() {
    let spec = key_vault_spec();
    let resolver = vault_resolver(
        &spec,
        vec![
            Ok(key_pem().into_bytes()),
            Err(crate::azure::AzureError::Disabled {
                what: "key cosign-key/1".into(),
            }),
        ],
    )
    .await;
    let mut last_good = LastGood::new();
    let r = reconcile(
        &BTreeMap::new(),
        vec![object(Kind::ClusterImagePolicy, None, "p", 1, spec)],
        &mut last_good,
        &resolver,
    );
    // Still enforced, with the inline key only.
    assert_eq!(r.policies.len(), 1);
    match &r.policies[0].authorities[0].verifier {
        crate::policy::Verifier::Cosign(c) => assert_eq!(c.keys.len(), 1),
        other => panic!("{other:?}"),
    }
    let outcome = outcome_of(&r, "p");
    assert_eq!(outcome.reason(), "MaterialWithdrawn", "{outcome:?}");
    let c = ready(outcome);
    assert_eq!(c.status, ConditionStatus::False);
    assert!(
        c.message
            .starts_with("spec.authorities[0].cosign.keys[1].keyVault: Key Vault key ")
            && c.message.contains("disabled")
            && c.message.contains("trust nothing through"),
        "{}",
        c.message
    );
}

#[tokio::test]
async fn an_unreadable_key_vault_keeps_the_last_good_generation_and_says_so() {
    let spec = key_vault_spec();
    let mut last_good = LastGood::new();
    let good = object(
        Kind::ClusterImagePolicy,
        None,
        "p",
        1,
        good_spec("registry.example.com/**"),
    );
    let r = reconcile(
        &BTreeMap::new(),
        vec![good],
        &mut last_good,
        &Resolver::files(),
    );
    assert_eq!(outcome_of(&r, "p"), &Outcome::Loaded);
    let resolver = vault_resolver(
        &spec,
        vec![Err(crate::azure::AzureError::Unreachable {
            host: "v.vault.azure.net".into(),
            detail: "connection refused".into(),
        })],
    )
    .await;
    let r = reconcile(
        &BTreeMap::new(),
        vec![object(Kind::ClusterImagePolicy, None, "p", 2, spec)],
        &mut last_good,
        &resolver,
    );
    assert_eq!(r.policies.len(), 1, "generation 1 stays in force");
    let outcome = outcome_of(&r, "p");
    assert_eq!(outcome.reason(), "KeyVaultUnavailable", "{outcome:?}");
    let c = ready(outcome);
    assert_eq!(c.status, ConditionStatus::False);
    assert!(
        c.message
            .starts_with("spec.authorities[0].cosign.keys[1].keyVault: ")
            && c.message.contains("connection refused")
            && c.message.ends_with("(generation 1 stays in force)"),
        "{}",
        c.message
    );
}

#[tokio::test]
async fn a_withdrawn_key_vault_key_is_written_to_the_resource_status() {
    let spec = key_vault_spec();
    let resolver = vault_resolver(
        &spec,
        vec![
            Ok(key_pem().into_bytes()),
            Err(crate::azure::AzureError::NotFound {
                what: "key cosign-key/1".into(),
                code: "KeyNotFound".into(),
            }),
        ],
    )
    .await;
    let api = FakeApi::default();
    api.push(
        Route::ListCluster,
        recorded_with_specs("list-clusterimagepolicies", &[("baseline", spec)]),
    );
    api.push(
        Route::ListNamespaced,
        recorded("list-imagepolicies-all-namespaces"),
    );
    for _ in 0..5 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    material_lists(&api);
    let (_dir, files) = empty_dir();
    let source = KubeSource::start(
        api.client(),
        files.with_resolver(resolver),
        options(),
        Arc::new(Metrics::new()),
    );
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let set = source.load().unwrap();
    assert!(
        set.policies.iter().any(|p| p.name.as_str() == "baseline"),
        "still enforced"
    );
    let baseline = || {
        status_bodies(&api)
            .into_iter()
            .find(|b| b["metadata"]["name"] == "baseline")
    };
    eventually("the status of baseline", || baseline().is_some()).await;
    let ready = baseline().unwrap()["status"]["conditions"][0].clone();
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "MaterialWithdrawn", "{ready}");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.authorities[0].cosign.keys[1].keyVault: Key Vault key ")
            && message.contains("not found"),
        "{message}"
    );
}

#[tokio::test]
async fn a_withdrawn_notation_certificate_names_its_trust_store_field() {
    let mut spec = good_spec("registry.example.com/**");
    spec["authorities"] = json!([{"name": "release", "notation": {
        "signatureVerification": {"level": "strict"},
        "trustStores": [{"type": "ca", "name": "akv", "certificates": [
            {"keyVault": {"vaultURI": "https://v.vault.azure.net/", "name": "release-ca"}},
        ]}],
        "trustedIdentities": ["*"],
    }}]);
    let resolver = vault_resolver(
        &spec,
        vec![Err(crate::azure::AzureError::Disabled {
            what: "certificate release-ca".into(),
        })],
    )
    .await;
    let o = object(Kind::ClusterImagePolicy, None, "p", 1, spec);
    match load_object(&o, &resolver) {
        Err(ObjectError::Withdrawn { message, policy }) => {
            assert!(
                message.starts_with(
                    "spec.authorities[0].notation.trustStores[0].certificates[0].keyVault: \
                     Key Vault certificate "
                ) && message.contains("disabled"),
                "{message}"
            );
            assert_eq!(policy.authorities.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_key_vault_reference_is_an_invalid_spec_not_an_unavailable_vault() {
    let spec = key_vault_spec();
    let resolver = vault_resolver(&spec, vec![Ok(key_pem().into_bytes())]).await;
    for (field, value) in [
        ("chain", json!(true)),
        ("vaultURI", json!("http://v.vault.azure.net/")),
    ] {
        let mut bad = spec.clone();
        bad["authorities"][0]["cosign"]["keys"][1]["keyVault"][field] = value;
        let mut last_good = LastGood::new();
        let r = reconcile(
            &BTreeMap::new(),
            vec![object(Kind::ClusterImagePolicy, None, "p", 1, bad)],
            &mut last_good,
            &resolver,
        );
        let outcome = outcome_of(&r, "p");
        assert_eq!(outcome.reason(), "InvalidSpec", "{field}: {outcome:?}");
    }
}

// --- no policy directory, and file policies whose Secret is missing ------------------------

/// With no policy directory the resources are the whole set: not ready until every list has
/// arrived, `--no-match` applies, and a rotated Secret still reaches the set (no directory
/// fingerprint carries the material's version any more).
#[tokio::test]
async fn without_a_directory_the_resources_are_the_set_and_ready_once_listed() {
    let api = FakeApi::default();
    for _ in 0..20 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    let metrics = Arc::new(Metrics::new());
    let files = Files::None {
        no_match: Some(NoMatch::Warn),
        resolver: Resolver::files(),
    };
    let opts = KubeOptions {
        secrets_all_namespaces: true,
        ..options()
    };
    let source = Arc::new(KubeSource::start(
        api.client(),
        files,
        opts,
        metrics.clone(),
    ));
    assert!(source.describe().contains("no policy directory"));
    let (_, valid) = crate::policy::source::load_initial(source.as_ref(), &metrics);
    assert!(!valid, "nothing listed yet: not ready");
    let readiness = Arc::new(crate::policy::source::Readiness::new(valid));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = crate::policy::source::spawn_watch(
        source.clone(),
        Duration::from_secs(600),
        readiness.clone(),
        metrics.clone(),
        move |set| {
            let _ = tx.send(set);
        },
    );
    api.push(
        Route::ListCluster,
        recorded_with_specs(
            "list-clusterimagepolicies",
            &[("baseline", good_spec("registry.example.com/**"))],
        ),
    );
    api.push(
        Route::ListNamespaced,
        recorded_with_specs(
            "list-imagepolicies-all-namespaces",
            &[("team-a/apps", secret_spec(None))],
        ),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !readiness.valid(),
        "policies listed, Secrets and ConfigMaps not yet: still not ready"
    );
    material_lists(&api);
    let set = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the first set once everything is listed")
        .unwrap();
    assert!(readiness.valid());
    let names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"baseline") && names.contains(&"team-a/apps"),
        "{names:?}"
    );
    assert_eq!(set.no_match, NoMatch::Warn, "--no-match applies");
    let generation = |set: &PolicySet| {
        set.policies
            .iter()
            .find(|p| p.name.as_str() == "team-a/apps")
            .map(|p| p.generation.clone())
            .unwrap()
    };
    let first = generation(&set);

    let (status, body) = watch_lines("watch-secrets-fieldselector", &[0], &[]);
    let mut event: Value = serde_json::from_slice(&body).unwrap();
    use base64::Engine;
    event["object"]["data"]["cosign.pub"] =
        json!(base64::engine::general_purpose::STANDARD.encode(key_pem()));
    api.push(
        Route::WatchSecrets,
        (status, format!("{event}\n").into_bytes()),
    );
    let set = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the rotation applies within 2 s")
        .unwrap();
    assert_ne!(generation(&set), first, "the rotated key is enforced");
    task.abort();
}

/// A policy file whose Secret is deleted: the directory still loads (a new file with it), the
/// file's policy keeps covering its images without the authority that needed the key, and the
/// set names file, line and object.
#[tokio::test]
async fn a_file_policy_whose_secret_is_deleted_trusts_nothing_through_it_and_the_rest_loads() {
    let api = FakeApi::default();
    api.push(
        Route::ListCluster,
        recorded("list-clusterimagepolicies-empty"),
    );
    api.push(
        Route::ListNamespaced,
        recorded("list-clusterimagepolicies-empty"),
    );
    material_lists(&api);
    let dir = tempfile::tempdir().unwrap();
    let key = key_pem().replace('\n', "\n              ");
    std::fs::write(
        dir.path().join("a.yaml"),
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: files-a\nspec:\n  images: [\"registry.example.com/a/**\"]\n  authorities:\n    - name: release\n      cosign:\n        keys:\n          - secretRef: {{name: cosign-pub, key: cosign.pub}}\n    - name: ci\n      cosign:\n        keys:\n          - inline: |\n              {key}\n"
        ),
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    // The recorded Secret is in team-a: signet's own namespace here, where file policies read.
    let opts = KubeOptions {
        namespace: "team-a".into(),
        ..options()
    };
    let source = Arc::new(KubeSource::start(
        api.client(),
        Directory::new(dir.path(), None),
        opts,
        metrics.clone(),
    ));
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let set = source.load().unwrap();
    assert_eq!(set.policies[0].authorities.len(), 2);
    assert!(set.missing.is_empty());

    let readiness = Arc::new(crate::policy::source::Readiness::new(true));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = crate::policy::source::spawn_watch(
        source.clone(),
        Duration::from_secs(600),
        readiness,
        metrics.clone(),
        move |set| {
            let _ = tx.send(set);
        },
    );
    std::fs::write(
        dir.path().join("b.yaml"),
        format!(
            "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: files-b\nspec:\n  images: [\"registry.example.com/b/**\"]\n  authorities:\n    - name: ci\n      cosign:\n        keys:\n          - inline: |\n              {key}\n"
        ),
    )
    .unwrap();
    api.push(
        Route::WatchSecrets,
        watch_lines("watch-secrets-fieldselector", &[1], &[]),
    );
    let set = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the deletion applies within 2 s")
        .unwrap();
    let names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["files-a", "files-b"], "the new file loads too");
    let left: Vec<&str> = set.policies[0]
        .authorities
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(left, ["ci"], "the deleted key is trusted no more");
    let missing: Vec<String> = set.missing.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        missing,
        [format!(
            "{}:11: spec.authorities[0].cosign.keys[0]: Secret team-a/cosign-pub not found",
            dir.path().join("a.yaml").display()
        )]
    );
    metrics.policies(&set);
    let text = metrics.encode();
    assert!(text.contains("signet_policy_material_missing 1"), "{text}");
    task.abort();
}

/// `signet policy check --kubernetes`: the source read once, without writing any status,
/// names the file, line and object of each reference missing in the cluster.
#[tokio::test]
async fn a_read_only_source_names_missing_objects_and_writes_no_status() {
    let api = FakeApi::default();
    api.push(
        Route::ListCluster,
        recorded_with_specs(
            "list-clusterimagepolicies",
            &[("baseline", good_spec("registry.example.com/**"))],
        ),
    );
    api.push(
        Route::ListNamespaced,
        recorded("list-clusterimagepolicies-empty"),
    );
    material_lists(&api);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: files-a\nspec:\n  images: [\"registry.example.com/a/**\"]\n  authorities:\n    - name: present\n      cosign:\n        keys:\n          - secretRef: {name: cosign-pub, key: cosign.pub}\n    - name: gone\n      cosign:\n        keys:\n          - secretRef: {name: gone, key: cosign.pub}\n",
    )
    .unwrap();
    let opts = KubeOptions {
        namespace: "team-a".into(),
        ..options()
    };
    let source = KubeSource::start_read_only(
        api.client(),
        Directory::new(dir.path(), None),
        opts,
        Arc::new(Metrics::new()),
    );
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let set = source.load().unwrap();
    let names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"files-a") && names.contains(&"baseline"),
        "{names:?}"
    );
    let missing: Vec<String> = set.missing.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        missing,
        [format!(
            "{}:15: spec.authorities[1].cosign.keys[0]: Secret team-a/gone not found",
            dir.path().join("a.yaml").display()
        )]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        api.seen(Route::PatchStatus).is_empty(),
        "a check writes nothing"
    );
}
