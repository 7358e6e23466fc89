//! The kube client code against the mock API server: lists, watches (a DELETED object, a
//! 410), status writes by one and by two replicas, and RBAC refusals.

use super::*;

#[tokio::test]
async fn the_recorded_lists_load_each_object_on_its_own_and_statuses_name_the_fields() {
    let api = FakeApi::default();
    // `baseline` gets a valid spec; `audit-everything` keeps the recorded one, which this
    // schema rejects.
    api.push(
        Route::ListCluster,
        recorded_with_specs(
            "list-clusterimagepolicies",
            &[("baseline", good_spec("registry.example.com/**"))],
        ),
    );
    api.push(
        Route::ListNamespaced,
        recorded("list-imagepolicies-all-namespaces"),
    );
    for _ in 0..5 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let (_dir, files) = empty_dir();
    let source = KubeSource::start(api.client(), files, options(), metrics.clone());
    assert!(
        source.load().is_err(),
        "not ready before the first list has synced"
    );
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let set = source.load().unwrap();
    let names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["baseline"]);

    eventually("a status for each object", || {
        status_bodies(&api).len() >= 3
    })
    .await;
    let bodies = status_bodies(&api);
    let ready = |name: &str| {
        bodies
            .iter()
            .find(|b| b["metadata"]["name"] == name)
            .map(|b| b["status"]["conditions"][0].clone())
            .unwrap_or_else(|| panic!("no status for {name}: {bodies:?}"))
    };
    assert_eq!(ready("baseline")["status"], "True");
    assert_eq!(ready("baseline")["reason"], "Loaded");
    let audit = ready("audit-everything");
    assert_eq!(audit["status"], "False");
    assert_eq!(audit["reason"], "InvalidSpec");
    assert!(
        audit["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.authorities[0].keyless: unknown field `keyless`"),
        "{audit}"
    );
    // Namespaced objects are patched at their namespaced path.
    let paths: Vec<String> = api
        .seen(Route::PatchStatus)
        .iter()
        .map(|s| s.uri.clone())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/apis/signet.dev/v1alpha1/namespaces/team-a/imagepolicies/")),
        "{paths:?}"
    );
    // The write is a server-side apply on /status by field manager `signet`, like the recorded
    // exchange.
    let recorded_request = fixture("status-apply-ssa");
    let sent = &api.seen(Route::PatchStatus)[0];
    assert_eq!(
        sent.content_type.as_deref(),
        recorded_request["request"]["headers"]["Content-Type"].as_str()
    );
    let query: std::collections::BTreeSet<String> = sent
        .uri
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter(|p| !p.is_empty())
        .map(Into::into)
        .collect();
    assert_eq!(
        query,
        ["fieldManager=signet", "force=true"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[tokio::test]
async fn watch_events_change_the_set_within_moments_and_a_410_relists() {
    let api = FakeApi::default();
    let temp_spec = good_spec("quay.io/example/*");
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
    let metrics = Arc::new(Metrics::new());
    let (_dir, files) = empty_dir();
    let source = Arc::new(KubeSource::start(
        api.client(),
        files,
        options(),
        metrics.clone(),
    ));
    assert!(source.wait_synced(Duration::from_secs(5)).await);
    let readiness = Arc::new(crate::policy::source::Readiness::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = crate::policy::source::spawn_watch(
        source.clone(),
        // Far longer than the test: only the watch's wake-up can explain a quick reload.
        Duration::from_secs(600),
        readiness.clone(),
        metrics.clone(),
        move |set| {
            let names: Vec<String> = set
                .policies
                .iter()
                .map(|p| p.name.as_str().to_string())
                .collect();
            let _ = tx.send((Instant::now(), names));
        },
    );
    // The first load after the sync.
    source.shared.wake.notify_one();
    let (_, names) = rx.recv().await.unwrap();
    assert_eq!(names, ["baseline"]);
    assert!(readiness.valid());

    // ADDED temp-policy (recorded line 0).
    let sent = Instant::now();
    api.push(
        Route::WatchCluster,
        watch_lines(
            "watch-clusterimagepolicies",
            &[0],
            &[("temp-policy", temp_spec.clone())],
        ),
    );
    let (at, names) = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("the change applies within 2 s")
        .unwrap();
    assert_eq!(names, ["baseline", "temp-policy"]);
    let latency = at.duration_since(sent);
    eprintln!("watch event to applied policy set: {latency:?}");

    // DELETED temp-policy (recorded line 3), in the next watch from the last resourceVersion.
    api.push(
        Route::WatchCluster,
        watch_lines(
            "watch-clusterimagepolicies",
            &[3],
            &[("temp-policy", temp_spec.clone())],
        ),
    );
    let (_, names) = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names, ["baseline"]);

    // The next watch gets 410 Gone as an ERROR event: the watcher lists again; the recorded
    // empty list leaves no resource policy.
    api.push(Route::WatchCluster, recorded("watch-rv-too-old-410"));
    api.push(
        Route::ListCluster,
        recorded("list-clusterimagepolicies-empty"),
    );
    let (_, names) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(api.seen(Route::ListCluster).len(), 2, "re-listed after 410");
    let watches = api.seen(Route::WatchCluster);
    assert!(
        watches[1].uri.contains("resourceVersion=228"),
        "the second watch resumes after the ADDED event: {}",
        watches[1].uri
    );
    task.abort();
}

#[tokio::test]
async fn forbidden_lists_keep_signet_not_ready_and_count_as_stale() {
    let api = FakeApi::default();
    for _ in 0..20 {
        api.push(
            Route::ListCluster,
            recorded("rbac-list-clusterimagepolicies-forbidden-sa"),
        );
    }
    api.push(
        Route::ListNamespaced,
        recorded("list-clusterimagepolicies-empty"),
    );
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let (_dir, files) = empty_dir();
    let source = KubeSource::start(api.client(), files, options(), metrics.clone());
    assert!(!source.wait_synced(Duration::from_millis(1500)).await);
    let errors = source.load().unwrap_err();
    assert!(
        errors[0]
            .message
            .contains("waiting for the first list of clusterimagepolicies"),
        "{errors:?}"
    );
    let stale = metrics
        .policy_source_stale
        .with_label_values(&["clusterimagepolicies"])
        .get();
    assert!(stale > 0.0, "stale for {stale} s");
    assert_eq!(
        metrics
            .policy_source_stale
            .with_label_values(&["imagepolicies"])
            .get(),
        0.0
    );
}

/// An object on the fake API server, whose status the writers' patches change.
fn served_object(status: Option<PolicyStatus>) -> Object {
    Object {
        kind: Kind::ClusterImagePolicy,
        name: "baseline".into(),
        namespace: None,
        uid: "b09acdad-33de-4591-b6df-5163c2779133".into(),
        generation: Some(1),
        spec: good_spec("**"),
        status,
    }
}

#[tokio::test]
async fn two_writers_converge_and_then_neither_writes_again() {
    let api = FakeApi::default();
    for _ in 0..10 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let mut one = StatusWriter::new(api.client(), metrics.clone());
    let mut two = StatusWriter::new(api.client(), metrics.clone());
    // The object as both replicas see it, updated from each status write (what their watches
    // would show).
    let mut server = served_object(None);
    let mut writes = 0;
    for round in 0..5 {
        for (writer, now) in [
            (&mut one, "2026-12-06T07:00:00Z"),
            (&mut two, "2026-12-06T07:00:01Z"),
        ] {
            let update = StatusUpdate {
                object: server.clone(),
                outcome: Outcome::Loaded,
            };
            let before = api.seen(Route::PatchStatus).len();
            writer.apply(update, now).await;
            let after = api.seen(Route::PatchStatus);
            if after.len() > before {
                writes += 1;
                let body: Value = serde_json::from_slice(&after[after.len() - 1].body).unwrap();
                server.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
            }
        }
        assert!(
            round > 0 || writes == 1,
            "the first writer writes, the second agrees"
        );
    }
    assert_eq!(writes, 1, "one write in five rounds of two replicas");
    let s = server.status.unwrap();
    assert_eq!(s.conditions[0].status, ConditionStatus::True);
    assert_eq!(s.conditions[0].type_, READY);
    assert_eq!(s.conditions[0].last_transition_time, "2026-12-06T07:00:00Z");
}

#[tokio::test]
async fn two_writers_that_disagree_write_once_each_not_forever() {
    let api = FakeApi::default();
    for _ in 0..20 {
        api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    }
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let mut old = StatusWriter::new(api.client(), metrics.clone());
    let mut new = StatusWriter::new(api.client(), metrics.clone());
    let mut server = served_object(None);
    // During a rollout the old version loads the policy, the new one rejects it.
    let outcomes = [
        Outcome::Loaded,
        Outcome::Invalid {
            message: "spec.images[0]: nope".into(),
            kept: None,
        },
    ];
    for _ in 0..5 {
        for (writer, outcome) in [(&mut old, &outcomes[0]), (&mut new, &outcomes[1])] {
            let before = api.seen(Route::PatchStatus).len();
            writer
                .apply(
                    StatusUpdate {
                        object: server.clone(),
                        outcome: outcome.clone(),
                    },
                    "2026-12-06T07:00:00Z",
                )
                .await;
            let after = api.seen(Route::PatchStatus);
            if after.len() > before {
                let body: Value = serde_json::from_slice(&after[after.len() - 1].body).unwrap();
                server.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
            }
        }
    }
    assert_eq!(api.seen(Route::PatchStatus).len(), 2);
}

#[tokio::test]
async fn a_forbidden_status_write_is_counted_and_retried_later() {
    let api = FakeApi::default();
    api.push(
        Route::PatchStatus,
        recorded("rbac-list-clusterimagepolicies-forbidden-sa"),
    );
    api.push(Route::PatchStatus, recorded("status-apply-ssa"));
    material_lists(&api);
    let metrics = Arc::new(Metrics::new());
    let mut w = StatusWriter::new(api.client(), metrics.clone());
    let update = StatusUpdate {
        object: served_object(None),
        outcome: Outcome::Loaded,
    };
    assert!(!w.apply(update.clone(), "2026-12-06T07:00:00Z").await);
    assert_eq!(w.pending.len(), 1);
    assert!(w.apply(update, "2026-12-06T07:00:00Z").await);
    let text = metrics.encode();
    assert!(
        text.contains("signet_policy_status_writes_total{result=\"failed\"} 1"),
        "{text}"
    );
}

/// A fake API server with state: one ClusterImagePolicy (the recorded `baseline`, with a spec
/// that loads). Lists return it; watches wait for a change; a status apply that changes the
/// status bumps its resourceVersion and wakes every watch with a MODIFIED event, and one that
/// changes nothing is a no-op, as on the real server.
#[derive(Default)]
struct Live {
    object: Value,
    watchers: Vec<Responder>,
    idle: Vec<Responder>,
    patches: usize,
}

fn live_client(live: &Arc<StdMutex<Live>>) -> kube::Client {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let live = live.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let body = body.collect_bytes().await.unwrap_or_default();
            let mut state = live.lock().unwrap();
            match route(&parts) {
                Route::ListCluster => {
                    let (status, bytes) = recorded("list-clusterimagepolicies");
                    let mut list: Value = serde_json::from_slice(&bytes).unwrap();
                    list["items"] = json!([state.object.clone()]);
                    list["metadata"]["resourceVersion"] =
                        state.object["metadata"]["resourceVersion"].clone();
                    respond(send, (status, list.to_string().into_bytes()));
                }
                Route::WatchCluster => state.watchers.push(send),
                Route::ListNamespaced => respond(send, recorded("list-clusterimagepolicies-empty")),
                Route::ListSecrets => respond(send, recorded("secret-list-namespace")),
                Route::ListConfigMaps => respond(send, empty_config_maps()),
                Route::PatchStatus => {
                    state.patches += 1;
                    let applied: Value = serde_json::from_slice(&body).unwrap();
                    if state.object["status"] != applied["status"] {
                        state.object["status"] = applied["status"].clone();
                        let rv: u64 = state.object["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap()
                            .parse()
                            .unwrap();
                        state.object["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
                        let event = json!({"type": "MODIFIED", "object": state.object.clone()});
                        for w in state.watchers.drain(..) {
                            respond(w, (200, format!("{event}\n").into_bytes()));
                        }
                    }
                    let (status, _) = recorded("status-apply-ssa");
                    respond(send, (status, state.object.to_string().into_bytes()));
                }
                _ => state.idle.push(send),
            }
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test]
async fn two_replicas_write_a_status_once_between_them_and_then_never_again() {
    let (_, bytes) = recorded_with_specs(
        "list-clusterimagepolicies",
        &[("baseline", good_spec("**"))],
    );
    let list: Value = serde_json::from_slice(&bytes).unwrap();
    let baseline = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["metadata"]["name"] == "baseline")
        .unwrap()
        .clone();
    let live = Arc::new(StdMutex::new(Live {
        object: baseline,
        ..Live::default()
    }));
    let mut replicas = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..2 {
        let metrics = Arc::new(Metrics::new());
        let (dir, files) = empty_dir();
        let source = Arc::new(KubeSource::start(
            live_client(&live),
            files,
            options(),
            metrics.clone(),
        ));
        assert!(source.wait_synced(Duration::from_secs(5)).await);
        let tx = tx.clone();
        let task = crate::policy::source::spawn_watch(
            source.clone(),
            Duration::from_millis(50),
            Arc::new(crate::policy::source::Readiness::new(false)),
            metrics,
            move |set| {
                let _ = tx.send(set.policies.len());
            },
        );
        source.shared.wake.notify_one();
        replicas.push((dir, source, task));
    }
    // Both replicas load once.
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
    }
    eventually("a status on the object", || {
        live.lock().unwrap().object["status"]["conditions"][0]["status"] == "True"
    })
    .await;
    // Let every watch event and poll settle, then record the writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = live.lock().unwrap().patches;
    assert!(
        (1..=2).contains(&settled),
        "{settled} writes: one, or two when both replicas wrote before seeing the other's"
    );
    // Status events reach both replicas but change no generation: no reload, no write.
    for (_, source, _) in &replicas {
        source.shared.wake.notify_one();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        live.lock().unwrap().patches,
        settled,
        "a replica wrote again"
    );
    assert!(rx.try_recv().is_err(), "a status change caused a reload");
    for (_, _, task) in replicas {
        task.abort();
    }
}
