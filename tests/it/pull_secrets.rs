//! Registry credentials from the workload (`signet serve --pull-secrets`).
//!
//! The Kubernetes side is kube-rs's mock-service pattern: a `kube::Client` over a
//! `tower_test` mock that answers with API responses recorded from a real API server
//! (`tests/fixtures/kube-api/`). The registry side is the real `docker-registry` requiring
//! Basic auth over TLS. The decision goes through the same path a webhook request takes
//! (`admission::decode` → `Reviewer::answer` → the engine).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use signet::admission;
use signet::config::{CommandConfig, Config};
use signet::decision::Workload;
use signet::engine;
use signet::metrics::Metrics;
use signet::registry::pull_secrets::{PullSecrets, WorkloadCredentialSource};
use signet::registry::{Credentials, RegistryConfig};
use signet::review::{Reviewer, Route};

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::registry::TestRegistry;
use crate::support::signet::{cosign_policy, test_options};

// ---------------------------------------------------------------------------------------------
// A fake API server answering with recorded responses
// ---------------------------------------------------------------------------------------------

/// The response of a recorded exchange in `tests/fixtures/kube-api/`: status and body bytes.
fn recorded(name: &str) -> (u16, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube-api")
        .join(format!("{name}.json"));
    let exchange: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    (
        exchange["response"]["status"].as_u64().expect("status") as u16,
        exchange["response"]["body"]
            .as_str()
            .expect("body")
            .to_owned(),
    )
}

/// The recorded `regcred` Secret with its `.dockerconfigjson` replaced by one holding
/// `user:password` for `host` (everything else as the API server sent it).
fn regcred_for(host: &str, user: &str, password: &str) -> (u16, String) {
    let (status, body) = recorded("secret-get-dockerconfigjson");
    let mut secret: Value = serde_json::from_str(&body).unwrap();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({"auths": {host: {"auth": b64(&format!("{user}:{password}"))}}});
    secret["data"][".dockerconfigjson"] = Value::String(b64(&config.to_string()));
    (status, serde_json::to_string(&secret).unwrap() + "\n")
}

/// What the fake API server does with a request for one path.
#[derive(Clone)]
enum Answer {
    /// Status and body.
    Reply(u16, String),
    /// A transport failure (connection refused).
    Fail,
    /// Never answers.
    Hang,
}

/// A `kube::Client` whose requests are answered by path (`/api/v1/namespaces/NS/KIND/NAME`).
/// A path without an answer gets the recorded 404 Status, renamed to the requested object.
/// Returns the client and the paths asked for, in order.
fn fake_api(routes: Vec<(String, Answer)>) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
    let (client, seen, _) = fake_api_mut(routes);
    (client, seen)
}

/// Like [`fake_api`], with the routes kept changeable (a secret rotated, deleted).
type Routes = Arc<Mutex<HashMap<String, Answer>>>;

fn fake_api_mut(routes: Vec<(String, Answer)>) -> (kube::Client, Arc<Mutex<Vec<String>>>, Routes) {
    let routes: Routes = Arc::new(Mutex::new(routes.into_iter().collect()));
    let table = routes.clone();
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut handle = std::pin::pin!(handle);
        let mut hanging = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            assert_eq!(request.method(), http::Method::GET, "signet only gets");
            let path = request.uri().path().to_owned();
            log.lock().unwrap().push(path.clone());
            let answer = table.lock().unwrap().get(&path).cloned();
            let answer = answer.unwrap_or_else(|| {
                let mut parts = path.rsplit('/');
                let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
                let (status, body) = recorded("secret-get-deleted-404");
                let body = body.replace("cosign-pub", name).replace("secrets", kind);
                Answer::Reply(status, body)
            });
            match answer {
                Answer::Reply(status, body) => send.send_response(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(body.into_bytes()))
                        .unwrap(),
                ),
                Answer::Fail => send.send_error("connection refused"),
                Answer::Hang => hanging.push(send),
            }
        }
    });
    (kube::Client::new(service, "default"), seen, routes)
}

fn reply((status, body): (u16, String)) -> Answer {
    Answer::Reply(status, body)
}

fn path(kind: &str, name: &str) -> String {
    format!("/api/v1/namespaces/team-a/{kind}/{name}")
}

fn workload(secrets: &[&str], account: &str) -> Workload {
    Workload {
        namespace: "team-a".into(),
        pull_secrets: secrets.iter().map(|s| s.to_string()).collect(),
        service_account: account.into(),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn lookups(metrics: &Metrics, object: &str, result: &str) -> u64 {
    metrics
        .pull_secret_lookups
        .with_label_values(&[object, result])
        .get()
}

// ---------------------------------------------------------------------------------------------
// The lookups against recorded API answers
// ---------------------------------------------------------------------------------------------

/// The service account's `imagePullSecrets` are followed to the Secret; both answers are
/// cached, so a second review of the same workload costs no API call.
#[tokio::test]
async fn a_service_accounts_pull_secret_is_read_and_cached() {
    let (client, seen) = fake_api(vec![
        (
            path("secrets", "regcred"),
            reply(recorded("secret-get-dockerconfigjson")),
        ),
        (
            path("serviceaccounts", "signet"),
            reply(recorded("serviceaccount-get-imagepullsecrets")),
        ),
    ]);
    let metrics = Arc::new(Metrics::new());
    let source = PullSecrets::new(client, metrics.clone());
    let w = workload(&[], "signet");
    let creds = source.lookup(&w, soon()).await;
    assert_eq!(creds.note(), None);
    assert_eq!(
        creds.source_of("registry.example.com"),
        Some("pull secret \"regcred\" of service account \"signet\"")
    );
    assert!(creds.identity("registry.example.com").is_some());
    assert_eq!(creds.identity("other.example.com"), None);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            path("serviceaccounts", "signet"),
            path("secrets", "regcred")
        ]
    );
    // The pod naming the same secret itself: read once, attributed to the pod.
    let creds = source
        .lookup(&workload(&["regcred"], "signet"), soon())
        .await;
    assert_eq!(
        creds.source_of("registry.example.com"),
        Some("pull secret \"regcred\"")
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "answered from the cache");
    assert_eq!(lookups(&metrics, "secret", "found"), 1);
    assert_eq!(lookups(&metrics, "serviceaccount", "found"), 1);
}

/// An admission storm: 200 reviews of one workload at once, all cache misses, cost one `get`
/// per object (concurrent misses share one request).
#[tokio::test]
async fn an_admission_storm_costs_one_get_per_object() {
    let (client, seen) = fake_api(vec![
        (
            path("secrets", "regcred"),
            reply(recorded("secret-get-dockerconfigjson")),
        ),
        (
            path("serviceaccounts", "signet"),
            reply(recorded("serviceaccount-get-imagepullsecrets")),
        ),
    ]);
    let source = PullSecrets::new(client, Arc::new(Metrics::new()));
    let w = workload(&["regcred"], "signet");
    let started = Instant::now();
    let all = futures_util::future::join_all((0..200).map(|_| source.lookup(&w, soon()))).await;
    eprintln!(
        "MEASURE 200 concurrent pull-secret lookups of one workload: {:.2} ms, {} API requests",
        started.elapsed().as_secs_f64() * 1e3,
        seen.lock().unwrap().len()
    );
    assert!(
        all.iter()
            .all(|c| c.note().is_none() && c.identity("registry.example.com").is_some())
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "{seen:?}");
}

/// A rotated secret is used once the cache entry expires, and a deleted one stops giving
/// credentials: the cache only bounds how often the API server is asked.
#[tokio::test]
async fn a_rotated_or_deleted_secret_is_honoured_after_the_ttl() {
    let (client, seen, routes) = fake_api_mut(vec![(
        path("secrets", "regcred"),
        reply(regcred_for("registry.example.com", "robot", "first")),
    )]);
    let ttl = Duration::from_millis(300);
    let source = PullSecrets::with_ttl(client, Arc::new(Metrics::new()), ttl);
    let w = workload(&["regcred"], "default");
    let first = source.lookup(&w, soon()).await;
    let id = |c: &signet::registry::WorkloadCredentials| c.identity("registry.example.com");
    assert!(id(&first).is_some());
    routes.lock().unwrap().insert(
        path("secrets", "regcred"),
        reply(regcred_for("registry.example.com", "robot", "second")),
    );
    assert_eq!(id(&source.lookup(&w, soon()).await), id(&first), "cached");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let rotated = source.lookup(&w, soon()).await;
    assert!(id(&rotated).is_some());
    assert_ne!(id(&rotated), id(&first), "the rotated secret is used");

    routes.lock().unwrap().remove(&path("secrets", "regcred"));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let deleted = source.lookup(&w, soon()).await;
    assert_eq!(id(&deleted), None);
    assert!(
        deleted
            .note()
            .unwrap()
            .contains("pull secret \"regcred\" was not found")
    );
    let gets = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| **p == path("secrets", "regcred"))
        .count();
    assert_eq!(gets, 3, "one get per TTL");
}

/// A forbidden, a wrong-type and a missing secret, and a missing service account: none is
/// fatal, each is named in the note, counted under its closed label, and (being the API
/// server's answer) cached.
#[tokio::test]
async fn unreadable_secrets_are_named_counted_and_not_fatal() {
    let (client, seen) = fake_api(vec![
        (
            path("secrets", "regcred"),
            reply(recorded("rbac-get-secret-forbidden-sa")),
        ),
        (
            path("secrets", "cosign-pub"),
            reply(recorded("secret-get-opaque")),
        ),
    ]);
    let metrics = Arc::new(Metrics::new());
    let source = PullSecrets::new(client, metrics.clone());
    let w = workload(&["regcred", "cosign-pub", "gone"], "default");
    let creds = source.lookup(&w, soon()).await;
    let note = creds.note().expect("problems");
    for expected in [
        "pull secret \"regcred\" cannot be read: signet is not allowed to get it (403)",
        "pull secret \"cosign-pub\" is of type \"Opaque\", not kubernetes.io/dockerconfigjson",
        "pull secret \"gone\" was not found",
        "service account \"default\" was not found",
    ] {
        assert!(note.contains(expected), "{expected:?} not in {note:?}");
    }
    assert_eq!(creds.identity("registry.example.com"), None);
    assert_eq!(lookups(&metrics, "secret", "forbidden"), 1);
    assert_eq!(lookups(&metrics, "secret", "wrong_type"), 1);
    assert_eq!(lookups(&metrics, "secret", "not_found"), 1);
    assert_eq!(lookups(&metrics, "serviceaccount", "not_found"), 1);
    let asked = seen.lock().unwrap().len();
    assert_eq!(asked, 4);
    source.lookup(&w, soon()).await;
    assert_eq!(seen.lock().unwrap().len(), asked, "API answers are cached");
}

/// An API server that cannot be reached is not an answer: nothing is cached, the next review
/// asks again. One that does not answer costs a review at most half its time left.
#[tokio::test]
async fn an_unreachable_api_is_not_cached_and_a_hanging_one_is_cut_short() {
    let (client, seen) = fake_api(vec![
        (path("secrets", "regcred"), Answer::Fail),
        (path("serviceaccounts", "default"), Answer::Fail),
    ]);
    let metrics = Arc::new(Metrics::new());
    let source = PullSecrets::new(client, metrics.clone());
    let w = workload(&["regcred"], "default");
    let creds = source.lookup(&w, soon()).await;
    let note = creds.note().unwrap();
    assert!(
        note.contains("pull secret \"regcred\" could not be read from the Kubernetes API"),
        "{note}"
    );
    assert_eq!(lookups(&metrics, "secret", "error"), 1);
    source.lookup(&w, soon()).await;
    assert_eq!(seen.lock().unwrap().len(), 4, "asked again: {seen:?}");

    let (client, _) = fake_api(vec![(path("serviceaccounts", "default"), Answer::Hang)]);
    let source = PullSecrets::new(client, Arc::new(Metrics::new()));
    let started = Instant::now();
    let creds = source
        .lookup(&w, started + Duration::from_millis(600))
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(550),
        "{took:?}"
    );
    assert!(
        creds
            .note()
            .unwrap()
            .contains("the Kubernetes API did not answer within"),
        "{creds:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The facts taken from the admission request, and the flag
// ---------------------------------------------------------------------------------------------

fn decode(review: &Value) -> admission::Review {
    admission::decode(&serde_json::to_vec(review).unwrap()).expect("decodes")
}

#[test]
fn pull_secrets_and_service_account_come_from_the_pod_spec_or_template() {
    // A Pod as the API server sent it: the ServiceAccount admission plugin set the account.
    let pod = decode(&load_review("pod-create"));
    assert_eq!(pod.pull_secrets(), Vec::<String>::new());
    assert_eq!(pod.service_account(), "default");
    let w = pod.workload().unwrap();
    assert_eq!(w.namespace, "default");

    // A Deployment's template with neither: the default account.
    let mut review = load_review("deployment-create");
    assert_eq!(decode(&review).service_account(), "default");
    let spec = review
        .pointer_mut("/request/object/spec/template/spec")
        .unwrap();
    spec["imagePullSecrets"] = json!([{"name": "regcred"}, {"name": ""}, {}, {"name": "other"}]);
    spec["serviceAccountName"] = json!("builder");
    let d = decode(&review);
    assert_eq!(d.pull_secrets(), ["regcred", "other"]);
    assert_eq!(d.service_account(), "builder");

    // A CronJob's template sits deeper; the deprecated `serviceAccount` still names it.
    let mut review = load_review("cronjob-create");
    let spec = review
        .pointer_mut("/request/object/spec/jobTemplate/spec/template/spec")
        .unwrap();
    spec["imagePullSecrets"] = json!([{"name": "nightly"}]);
    spec["serviceAccount"] = json!("legacy");
    let c = decode(&review);
    assert_eq!(c.pull_secrets(), ["nightly"]);
    assert_eq!(c.service_account(), "legacy");

    // The namespace is the request's, whatever the object claims.
    let mut review = load_review("pod-create");
    review["request"]["object"]["metadata"]["namespace"] = json!("kube-system");
    review["request"]["namespace"] = json!("team-a");
    assert_eq!(decode(&review).workload().unwrap().namespace, "team-a");
}

#[test]
fn pull_secrets_is_one_opt_in_flag_on_serve() {
    let serve = |extra: &[&str]| {
        let mut argv = vec!["signet", "serve"];
        argv.extend_from_slice(extra);
        match Config::try_from(signet::cli::Args::try_parse_from(argv).unwrap())
            .unwrap()
            .command
        {
            CommandConfig::Serve { serve, .. } => serve.pull_secrets,
            _ => unreachable!(),
        }
    };
    assert!(!serve(&[]), "off by default: it needs get on Secrets");
    assert!(serve(&["--pull-secrets"]));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--pull-secrets"), "{help}");
    assert!(help.contains("imagePullSecrets"), "{help}");
}

// ---------------------------------------------------------------------------------------------
// End to end: a private registry, two workloads
// ---------------------------------------------------------------------------------------------

/// A signed image in a registry that requires Basic auth, a policy trusting its key.
struct Private {
    registry: TestRegistry,
    image: String,
    policy: String,
}

/// Basic auth (htpasswd), or with `token` Bearer tokens from the harness's token server.
async fn private_registry(token: bool) -> Private {
    let builder = TestRegistry::builder().test_tls();
    let registry = if token {
        builder.token_auth("robot", "s3cret").start()
    } else {
        builder.htpasswd("robot", "s3cret").start()
    };
    let key = CosignKey::p256();
    let pushed = registry.pusher().push_image("team/private", "v1", 71).await;
    cosign::sign_image(&registry, "team/private", &pushed, &key).await;
    let image = pushed.reference_by_tag(&registry.addr());
    let policy = cosign_policy(
        "private",
        &format!("{}/**", registry.addr()),
        "enforce",
        "deny",
        &key.public_key_pem(),
    );
    Private {
        registry,
        image,
        policy,
    }
}

/// The engine `signet serve --pull-secrets` builds, over `api`, with `cluster` as the
/// `--docker-config` credentials.
fn engine_over(
    p: &Private,
    api: kube::Client,
    cluster: HashMap<String, Credentials>,
) -> (signet::decision::Engine, Arc<Metrics>) {
    let set = signet::policy::load_str(Path::new("policies.yaml"), &p.policy).expect("loads");
    // The harness's token server speaks plain HTTP on 127.0.0.1.
    let insecure = p
        .registry
        .token_server()
        .map(|t| {
            t.realm()
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .into_iter()
        .collect();
    let config = RegistryConfig {
        ca_pem: vec![p.registry.ca_pem().unwrap().as_bytes().to_vec()],
        credentials: cluster,
        insecure,
        ..RegistryConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let engine = engine::build(config, set, metrics.clone(), test_options())
        .expect("engine")
        .with_pull_secrets(Arc::new(PullSecrets::new(api, metrics.clone())));
    (engine, metrics)
}

/// A Pod in `team-a` running `image`, with these pull secrets and the default account.
fn pod(image: &str, secrets: &[&str]) -> admission::Review {
    let mut review = load_review("pod-create");
    assert_eq!(replace_image(&mut review, "nginx:1.27", image), 1);
    review["request"]["namespace"] = json!("team-a");
    review["request"]["object"]["metadata"]["namespace"] = json!("team-a");
    let refs: Vec<Value> = secrets.iter().map(|s| json!({"name": s})).collect();
    review["request"]["object"]["spec"]["imagePullSecrets"] = Value::Array(refs);
    decode(&review)
}

/// `(allowed, message)` of the validating route's answer.
async fn admit(engine: &signet::decision::Engine, review: &admission::Review) -> (bool, String) {
    let metrics = Metrics::new();
    let reviewer = Reviewer {
        engine,
        metrics: &metrics,
        ready: true,
    };
    let start = Instant::now();
    let answer = reviewer
        .answer(
            Route::Validate,
            review,
            start,
            start + Duration::from_secs(10),
        )
        .await;
    let whole: serde_json::Value = serde_json::from_slice(&answer.response).unwrap();
    let r = &whole["response"];
    (
        r["allowed"].as_bool().unwrap(),
        r["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn registry_requests(metrics: &Metrics) -> f64 {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("signet_registry_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// Two workloads, one with the pull secret and one without, against a registry requiring
/// auth: the first is verified with its own secret; the second is refused by the registry and
/// denied, also after the first one's verdict is cached (a trusted verdict is shared, but
/// only with a workload that resolved the image with its own credentials); the message names
/// the pull secret that was missing.
#[tokio::test]
async fn a_private_image_is_verified_with_the_pods_own_pull_secret_and_only_with_it() {
    let p = private_registry(false).await;
    let (api, _) = fake_api(vec![(
        path("secrets", "regcred"),
        reply(regcred_for(&p.registry.addr(), "robot", "s3cret")),
    )]);
    let (engine, metrics) = engine_over(&p, api, HashMap::new());
    let with_secret = pod(&p.image, &["regcred"]);
    let without = pod(&p.image, &["gone"]);

    let (allowed, message) = admit(&engine, &without).await;
    assert!(!allowed);
    assert!(message.contains("answered 401"), "{message}");
    assert!(
        message.contains("pull secret \"gone\" was not found"),
        "{message}"
    );

    let (started, before) = (Instant::now(), registry_requests(&metrics));
    let (allowed, message) = admit(&engine, &with_secret).await;
    assert!(allowed, "{message}");
    eprintln!(
        "MEASURE first review with a pull secret (API lookup, resolve, verify): {:.2} ms, {} registry requests",
        started.elapsed().as_secs_f64() * 1e3,
        registry_requests(&metrics) - before
    );

    // The trusted verdict is cached now; the workload without credentials still asks the
    // registry itself, and is still refused.
    let before = registry_requests(&metrics);
    let (allowed, message) = admit(&engine, &without).await;
    assert!(!allowed, "admitted on another workload's credentials");
    assert!(message.contains("answered 401"), "{message}");
    assert!(registry_requests(&metrics) > before);

    // The workload with the secret is answered from its own cached resolution and the shared
    // verdict: no registry request at all.
    let before = registry_requests(&metrics);
    let started = Instant::now();
    let (allowed, _) = admit(&engine, &with_secret).await;
    assert!(allowed);
    eprintln!(
        "MEASURE the same workload again (all cached): {:.2} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(registry_requests(&metrics), before);
}

/// A credential of the pull secret is sent only to the host its key names: a secret for
/// another host gives nothing here, and the cluster-wide `--docker-config` is the fallback.
#[tokio::test]
async fn a_secret_for_another_host_gives_nothing_and_the_docker_config_is_the_fallback() {
    let p = private_registry(false).await;
    let (api, _) = fake_api(vec![(
        path("secrets", "regcred"),
        reply(regcred_for("registry.example.com", "robot", "s3cret")),
    )]);
    let (engine, _) = engine_over(&p, api.clone(), HashMap::new());
    let review = pod(&p.image, &["regcred"]);
    let (allowed, message) = admit(&engine, &review).await;
    assert!(!allowed);
    assert!(
        message.contains("no credentials are configured for it"),
        "{message}"
    );

    let cluster = HashMap::from([(
        p.registry.addr(),
        Credentials {
            username: "robot".into(),
            password: "s3cret".into(),
        },
    )]);
    let (engine, _) = engine_over(&p, api, cluster);
    let (allowed, message) = admit(&engine, &review).await;
    assert!(allowed, "{message}");
}

/// With no right to get Secrets, the review goes on without them and the deny message says
/// which secret could not be read; a secret with a wrong password is named as refused.
#[tokio::test]
async fn forbidden_and_refused_pull_secrets_are_named_in_the_denial() {
    let p = private_registry(false).await;
    let (forbidden, _) = fake_api(vec![(
        path("secrets", "regcred"),
        reply(recorded("rbac-get-secret-forbidden-sa")),
    )]);
    let (engine, _) = engine_over(&p, forbidden, HashMap::new());
    let (allowed, message) = admit(&engine, &pod(&p.image, &["regcred"])).await;
    assert!(!allowed);
    assert!(
        message.contains(
            "pull secret \"regcred\" cannot be read: signet is not allowed to get it (403)"
        ),
        "{message}"
    );

    let (wrong, _) = fake_api(vec![(
        path("secrets", "regcred"),
        reply(regcred_for(
            &p.registry.addr(),
            "robot",
            "not-the-password-q7",
        )),
    )]);
    let (engine, _) = engine_over(&p, wrong, HashMap::new());
    let (allowed, message) = admit(&engine, &pod(&p.image, &["regcred"])).await;
    assert!(!allowed);
    assert!(
        message.contains("the credentials of pull secret \"regcred\" were not accepted"),
        "{message}"
    );
    assert!(
        !message.contains("q7"),
        "no password in messages: {message}"
    );
}

/// The Bearer flow: the pull secret goes to the registry's own token realm, the token it buys
/// is cached for that secret only, and a workload without it asks the realm anonymously and
/// is refused.
#[tokio::test]
async fn a_token_bought_with_a_pull_secret_serves_only_that_workload() {
    let p = private_registry(true).await;
    let (api, _) = fake_api(vec![(
        path("secrets", "regcred"),
        reply(regcred_for(&p.registry.addr(), "robot", "s3cret")),
    )]);
    let (engine, _) = engine_over(&p, api, HashMap::new());
    let token = p.registry.token_server().unwrap();
    let before = token.requests().len();

    let (allowed, message) = admit(&engine, &pod(&p.image, &["regcred"])).await;
    assert!(allowed, "{message}");
    let (allowed, message) = admit(&engine, &pod(&p.image, &["gone"])).await;
    assert!(!allowed);
    assert!(message.contains("refused a pull token"), "{message}");
    assert!(
        message.contains("pull secret \"gone\" was not found"),
        "{message}"
    );

    let asked: Vec<_> = token.requests().into_iter().skip(before).collect();
    let granted: Vec<_> = asked.iter().filter(|r| r.granted).collect();
    let anonymous: Vec<_> = asked.iter().filter(|r| r.authorization.is_none()).collect();
    assert!(!granted.is_empty(), "{asked:?}");
    assert!(
        !anonymous.is_empty(),
        "the second workload asked anonymously: {asked:?}"
    );
    assert_eq!(granted.len() + anonymous.len(), asked.len(), "{asked:?}");
}

// ---------------------------------------------------------------------------------------------
// The binary: `signet serve --pull-secrets` finds the cluster from KUBECONFIG
// ---------------------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary with `--pull-secrets` and a kubeconfig naming a small HTTP server that
/// answers like the API server (recorded bytes): the pod with the pull secret is admitted, the
/// one without is denied, and the secret was read with the kubeconfig's token. Without any
/// cluster configuration, serve refuses to start and says why.
#[tokio::test]
async fn serve_with_pull_secrets_reads_them_through_the_kubeconfigs_cluster() {
    use crate::support::fault::{FaultServer, Reply};

    let p = private_registry(false).await;
    let secret = regcred_for(&p.registry.addr(), "robot", "s3cret");
    let api = FaultServer::start(move |seen| {
        let (status, body) = if seen.path.starts_with(&path("secrets", "regcred")) {
            secret.clone()
        } else {
            let (name, kind) = {
                let mut parts = seen.path.split('?').next().unwrap().rsplit('/');
                (
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap().to_owned(),
                )
            };
            let (status, body) = recorded("secret-get-deleted-404");
            (
                status,
                body.replace("cosign-pub", &name).replace("secrets", &kind),
            )
        };
        Reply::with(status, &[("content-type", "application/json")], body)
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: signet\n  user:\n    token: test-token-5f2\ncontexts:\n- name: test\n  context: {{cluster: test, user: signet, namespace: default}}\ncurrent-context: test\n",
            api.url("")
        ),
    )
    .unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("p.yaml"), &p.policy).unwrap();
    let registry_ca = dir.path().join("registry-ca.pem");
    std::fs::write(&registry_ca, p.registry.ca_pem().unwrap()).unwrap();
    let ca = dir.path().join("ca.pem");
    let (port, admin) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let admin_listen = format!("127.0.0.1:{admin}");
    let args = [
        "serve",
        "--pull-secrets",
        "--listen",
        &listen,
        "--admin-listen",
        &admin_listen,
        "--policies",
        policies.to_str().unwrap(),
        "--self-signed-ca-out",
        ca.to_str().unwrap(),
        "--registry-ca",
        registry_ca.to_str().unwrap(),
    ];

    // No KUBECONFIG, not in a pod: a clear refusal.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("--pull-secrets needs the Kubernetes API"),
        "{log}"
    );

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = probe
            .get(format!("http://{admin_listen}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = async {
        assert!(ready, "signet did not become ready");
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
            .build()
            .unwrap();
        let mut answers = Vec::new();
        for secrets in [&["regcred"][..], &["gone"]] {
            let mut review = load_review("pod-create");
            replace_image(&mut review, "nginx:1.27", &p.image);
            review["request"]["namespace"] = json!("team-a");
            review["request"]["object"]["spec"]["imagePullSecrets"] =
                Value::Array(secrets.iter().map(|s| json!({"name": s})).collect());
            let resp: Value = client
                .post(format!("https://localhost:{port}/validate?timeout=10s"))
                .json(&review)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answers.push(resp["response"].clone());
        }
        answers
    }
    .await;
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;

    assert_eq!(outcome[0]["allowed"], true, "{:?}", outcome[0]);
    assert_eq!(outcome[1]["allowed"], false);
    let message = outcome[1]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("pull secret \"gone\" was not found"),
        "{message}"
    );
    let seen = api.requests();
    let get = seen
        .iter()
        .find(|s| s.path.starts_with(&path("secrets", "regcred")))
        .unwrap_or_else(|| panic!("the secret was not read: {seen:?}"));
    assert_eq!(get.method, "GET");
    assert_eq!(get.header("authorization"), Some("Bearer test-token-5f2"));
    assert!(seen.iter().all(|s| s.method == "GET"), "{seen:?}");
}
