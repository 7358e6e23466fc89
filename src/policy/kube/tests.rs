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

mod api;
mod material;
