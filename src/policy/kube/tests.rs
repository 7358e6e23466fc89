//! The reconciliation as plain functions, and the kube client code against kube's mock service
//! answering with recorded API server responses (tests/fixtures/kube-api/).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex as StdMutex;

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::policy::crd::{Condition, ConditionStatus, READY};

fn key_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .public_key_pem()
}

/// A spec that loads: one cosign key.
fn good_spec(glob: &str) -> Value {
    json!({
        "images": [glob],
        "mode": "enforce",
        "authorities": [{"name": "ci", "cosign": {"keys": [{"inline": key_pem()}]}}],
    })
}

fn object(kind: Kind, ns: Option<&str>, name: &str, generation: i64, spec: Value) -> Object {
    Object {
        kind,
        name: name.into(),
        namespace: ns.map(Into::into),
        uid: format!("uid-{}-{name}", ns.unwrap_or("")),
        generation: Some(generation),
        spec,
        status: None,
    }
}

fn outcome_of<'a>(r: &'a Reconciled, name: &str) -> &'a Outcome {
    &r.outcomes.iter().find(|(o, _)| o.name == name).unwrap().1
}

#[test]
fn a_broken_object_keeps_its_last_good_generation_and_spoils_no_other() {
    let mut last_good = LastGood::new();
    let files = BTreeMap::new();
    let a = object(
        Kind::ClusterImagePolicy,
        None,
        "a",
        1,
        good_spec("registry.example.com/a/**"),
    );
    let b = object(
        Kind::ClusterImagePolicy,
        None,
        "b",
        1,
        good_spec("registry.example.com/b/**"),
    );
    let r = reconcile(
        &files,
        vec![a.clone(), b.clone()],
        &mut last_good,
        &Resolver::files(),
    );
    assert_eq!(r.policies.len(), 2);
    let generation_a = r.policies[0].generation.clone();

    // Generation 2 of `a` names a bad glob: `a` generation 1 stays, `b` is untouched.
    let mut broken = a.clone();
    broken.generation = Some(2);
    broken.spec["images"] = json!(["registry.example.com/a/**", "Registry.example.com/a:tag"]);
    let r = reconcile(
        &files,
        vec![broken, b.clone()],
        &mut last_good,
        &Resolver::files(),
    );
    assert_eq!(r.policies.len(), 2);
    assert_eq!(r.policies[0].generation, generation_a);
    match outcome_of(&r, "a") {
        Outcome::Invalid { message, kept } => {
            assert!(message.starts_with("spec.images[1]: "), "{message}");
            assert_eq!(*kept, Some(1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcome_of(&r, "b"), &Outcome::Loaded);

    // A new object that never loaded enforces nothing; a deleted one is forgotten.
    let mut fresh = object(
        Kind::ClusterImagePolicy,
        None,
        "c",
        1,
        json!({"images": []}),
    );
    fresh.spec = json!({"images": ["**"], "authorities": []});
    let r = reconcile(&files, vec![fresh], &mut last_good, &Resolver::files());
    assert!(r.policies.is_empty());
    assert!(last_good.is_empty(), "deleted objects are forgotten");
    assert!(matches!(
        outcome_of(&r, "c"),
        Outcome::Invalid { kept: None, message } if message.starts_with("spec.authorities: ")
    ));
}

#[test]
fn a_name_in_both_the_directory_and_the_cluster_is_reported_and_the_file_wins() {
    let mut last_good = LastGood::new();
    let files = BTreeMap::from([
        (PolicyName::new("prod"), "policies/prod.yaml:1".to_string()),
        (
            PolicyName::new("team-a/apps"),
            "policies/team.yaml:1".to_string(),
        ),
    ]);
    let r = reconcile(
        &files,
        vec![
            object(Kind::ClusterImagePolicy, None, "prod", 1, good_spec("**")),
            object(
                Kind::ImagePolicy,
                Some("team-a"),
                "apps",
                1,
                good_spec("**"),
            ),
            object(
                Kind::ImagePolicy,
                Some("team-b"),
                "apps",
                1,
                good_spec("**"),
            ),
        ],
        &mut last_good,
        &Resolver::files(),
    );
    assert_eq!(r.policies.len(), 1);
    assert_eq!(r.policies[0].name.as_str(), "team-b/apps");
    let dups: Vec<_> = r
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::DuplicateName { .. }))
        .map(|(o, _)| o.describe())
        .collect();
    assert_eq!(dups, ["ClusterImagePolicy prod", "ImagePolicy team-a/apps"]);
}

#[test]
fn an_image_policy_applies_in_its_own_namespace_only() {
    let mut last_good = LastGood::new();
    let r = reconcile(
        &BTreeMap::new(),
        vec![object(
            Kind::ImagePolicy,
            Some("team-a"),
            "apps",
            1,
            good_spec("registry.example.com/**"),
        )],
        &mut last_good,
        &Resolver::files(),
    );
    let p = &r.policies[0];
    let image = "registry.example.com/app:1".parse().unwrap();
    assert!(p.matches(&image, Some("team-a")));
    assert!(!p.matches(&image, Some("team-b")));
    assert!(!p.matches(&image, None));
}

#[test]
fn errors_name_the_field_of_the_resource() {
    let mut spec = good_spec("**");
    spec["authorities"][0]["cosign"]["keys"] =
        json!([{"inline": key_pem()}, {"inline": "not a key"}]);
    let o = object(Kind::ClusterImagePolicy, None, "p", 1, spec);
    let e = load_object(&o, &Resolver::files()).unwrap_err().to_string();
    assert!(e.starts_with("spec.authorities[0].cosign.keys[1]: "), "{e}");

    let mut spec = good_spec("**");
    spec["authorities"][0]["cosign"]["keys"] = json!([{"file": "/etc/shadow"}]);
    let e = load_object(
        &object(Kind::ClusterImagePolicy, None, "p", 1, spec),
        &Resolver::files(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("spec.authorities[0].cosign.keys[0]: ")
            && e.contains("this policy does not come from a file"),
        "{e}"
    );

    let mut spec = good_spec("**");
    spec["mode"] = json!("block");
    let e = load_object(
        &object(Kind::ClusterImagePolicy, None, "p", 1, spec),
        &Resolver::files(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("spec.mode: unknown variant `block`"), "{e}");

    let mut spec = good_spec("**");
    spec["authorities"][0]["notation"] = json!({"signatureVerification": {"level": "strict"}});
    let e = load_object(
        &object(Kind::ClusterImagePolicy, None, "p", 1, spec),
        &Resolver::files(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("spec.authorities[0]: authority \"ci\" has both"),
        "{e}"
    );
}

#[test]
fn the_same_spec_as_a_file_or_a_resource_has_the_same_generation() {
    let spec = good_spec("registry.example.com/**");
    let o = object(Kind::ClusterImagePolicy, None, "prod", 1, spec.clone());
    let from_resource = load_object(&o, &Resolver::files()).unwrap();
    let doc = json!({
        "apiVersion": API_VERSION, "kind": "ClusterImagePolicy",
        "metadata": {"name": "prod"}, "spec": spec,
    });
    let yaml = serde_yaml::to_string(&doc).unwrap();
    let from_file = crate::policy::load_str(Path::new("p.yaml"), &yaml).unwrap();
    assert_eq!(from_file.policies[0].generation, from_resource.generation);
}

// --- the kube client code, against recorded responses -------------------------------------

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube-api")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The recorded response: status and body bytes (a watch's lines joined as they came).
fn recorded(name: &str) -> (u16, Vec<u8>) {
    let f = fixture(name);
    let status = f["response"]["status"].as_u64().unwrap() as u16;
    let body = match &f["response"]["body"] {
        Value::String(s) => s.clone().into_bytes(),
        Value::Array(lines) => lines
            .iter()
            .map(|l| format!("{}\n", l.as_str().unwrap()))
            .collect::<String>()
            .into_bytes(),
        other => panic!("{other}"),
    };
    (status, body)
}

/// The recorded response with the `spec` of the named objects replaced (the recording's
/// stand-in CRD had another schema): everything else, metadata and resourceVersions included,
/// as the API server sent it.
fn recorded_with_specs(name: &str, specs: &[(&str, Value)]) -> (u16, Vec<u8>) {
    let (status, body) = recorded(name);
    let text = String::from_utf8(body).unwrap();
    let replace = |o: &mut Value| {
        let n = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        let full = format!("{}/{n}", o["metadata"]["namespace"].as_str().unwrap_or(""));
        if let Some((_, s)) = specs.iter().find(|(k, _)| *k == n || *k == full) {
            o["spec"] = s.clone();
        }
    };
    let out = if text.starts_with("{\"type\"") {
        text.lines()
            .map(|l| {
                let mut ev: Value = serde_json::from_str(l).unwrap();
                replace(&mut ev["object"]);
                format!("{ev}\n")
            })
            .collect::<String>()
    } else {
        let mut list: Value = serde_json::from_str(&text).unwrap();
        for item in list["items"].as_array_mut().unwrap() {
            replace(item);
        }
        list.to_string()
    };
    (status, out.into_bytes())
}

/// One watch line of a recorded watch, with a replaced spec.
fn watch_lines(name: &str, lines: &[usize], specs: &[(&str, Value)]) -> (u16, Vec<u8>) {
    let (status, body) = recorded_with_specs(name, specs);
    let text = String::from_utf8(body).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let picked: String = lines.iter().map(|i| format!("{}\n", all[*i])).collect();
    (status, picked.into_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    ListCluster,
    WatchCluster,
    ListNamespaced,
    WatchNamespaced,
    ListSecrets,
    WatchSecrets,
    ListConfigMaps,
    WatchConfigMaps,
    PatchStatus,
    Other,
}

fn route(req: &http::request::Parts) -> Route {
    let path = req.uri.path();
    let watch = req.uri.query().unwrap_or("").contains("watch=true");
    let last = path.rsplit('/').next().unwrap_or("");
    if req.method == http::Method::PATCH {
        return if last == "status" {
            Route::PatchStatus
        } else {
            Route::Other
        };
    }
    match (last, watch) {
        ("clusterimagepolicies", false) => Route::ListCluster,
        ("clusterimagepolicies", true) => Route::WatchCluster,
        ("imagepolicies", false) => Route::ListNamespaced,
        ("imagepolicies", true) => Route::WatchNamespaced,
        ("secrets", false) => Route::ListSecrets,
        ("secrets", true) => Route::WatchSecrets,
        ("configmaps", false) => Route::ListConfigMaps,
        ("configmaps", true) => Route::WatchConfigMaps,
        _ => Route::Other,
    }
}

/// A request the fake API server received.
#[derive(Clone, Debug)]
struct Seen {
    route: Route,
    uri: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

type Responder = tower_test::mock::SendResponse<Response<Body>>;

#[derive(Default)]
struct FakeState {
    scripts: HashMap<u8, VecDeque<(u16, Vec<u8>)>>,
    /// Requests with no scripted answer yet (a watch that stays open with nothing to say),
    /// answered by the next response pushed for their route.
    parked: HashMap<u8, VecDeque<Responder>>,
    seen: Vec<Seen>,
}

/// A fake API server: answers each route from its script in order.
#[derive(Clone, Default)]
struct FakeApi {
    state: Arc<StdMutex<FakeState>>,
}

fn respond(send: Responder, (status, bytes): (u16, Vec<u8>)) {
    send.send_response(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .unwrap(),
    );
}

impl FakeApi {
    fn push(&self, r: Route, response: (u16, Vec<u8>)) {
        let mut state = self.state.lock().unwrap();
        match state.parked.get_mut(&(r as u8)).and_then(|q| q.pop_front()) {
            Some(send) => respond(send, response),
            None => state
                .scripts
                .entry(r as u8)
                .or_default()
                .push_back(response),
        }
    }

    fn seen(&self, r: Route) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.route == r)
            .cloned()
            .collect()
    }

    /// A client whose requests this fake answers.
    fn client(&self) -> kube::Client {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            let mut handle = std::pin::pin!(handle);
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let body = body.collect_bytes().await.unwrap_or_default().to_vec();
                let r = route(&parts);
                let mut state = me.state.lock().unwrap();
                state.seen.push(Seen {
                    route: r,
                    uri: parts.uri.to_string(),
                    content_type: parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_string()),
                    body,
                });
                match state
                    .scripts
                    .get_mut(&(r as u8))
                    .and_then(|q| q.pop_front())
                {
                    Some(response) => respond(send, response),
                    None => state.parked.entry(r as u8).or_default().push_back(send),
                }
            }
        });
        kube::Client::new(service, "default")
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn empty_dir() -> (tempfile::TempDir, Directory) {
    let dir = tempfile::tempdir().unwrap();
    let d = Directory::new(dir.path(), None);
    (dir, d)
}

fn options() -> KubeOptions {
    KubeOptions {
        namespace: "signet-system".into(),
        cluster_policy_namespaces: Vec::new(),
        secrets_all_namespaces: false,
    }
}

/// A recorded empty list turned into a ConfigMapList (no ConfigMap list was recorded; a list
/// response differs only in its kind and apiVersion).
fn empty_config_maps() -> (u16, Vec<u8>) {
    let (status, body) = recorded("list-clusterimagepolicies-empty");
    let mut list: Value = serde_json::from_slice(&body).unwrap();
    list["apiVersion"] = json!("v1");
    list["kind"] = json!("ConfigMapList");
    (status, list.to_string().into_bytes())
}

/// Scripts the first lists of Secrets (the recorded team-a list) and ConfigMaps (empty).
fn material_lists(api: &FakeApi) {
    api.push(Route::ListSecrets, recorded("secret-list-namespace"));
    api.push(Route::ListConfigMaps, empty_config_maps());
}

fn status_bodies(api: &FakeApi) -> Vec<Value> {
    api.seen(Route::PatchStatus)
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect()
}

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

#[test]
fn the_example_resources_load_as_resources() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/crds");
    for (file, kind) in [
        ("cluster-image-policy.yaml", Kind::ClusterImagePolicy),
        ("image-policy.yaml", Kind::ImagePolicy),
    ] {
        let v: Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        assert_eq!(v["kind"], kind.as_str());
        let o = Object {
            kind,
            name: v["metadata"]["name"].as_str().unwrap().into(),
            namespace: v["metadata"]["namespace"].as_str().map(Into::into),
            uid: "uid".into(),
            generation: Some(1),
            spec: v["spec"].clone(),
            status: None,
        };
        if let Err(e) = load_object(&o, &Resolver::files()) {
            panic!("{file}: {e}");
        }
    }
}

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
