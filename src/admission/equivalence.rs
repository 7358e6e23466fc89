//! The validating route's fast reader against the full decoder: the same review, the same
//! action, the same errors, on every captured body and on bodies derived from them. Test-only.

use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures/admission", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 20, "{} fixtures", out.len());
    out
}

/// The property: whatever the fast reader answers is what the full decoder answers (the
/// object aside), and [`decode`] fails exactly as the full decoder does.
fn agree(body: &[u8]) -> Result<Option<Review>, String> {
    agree_unless_unread(body, false)
}

/// [`agree`], except that with `unread_may_be_malformed` the full decoder may refuse a body
/// the fast reader answers (the bytes were changed where no decision reads them).
fn agree_unless_unread(
    body: &[u8],
    unread_may_be_malformed: bool,
) -> Result<Option<Review>, String> {
    let full = decode_with_object(body).map(Review::without_object);
    let fast = super::fast::decode(body);
    if let Some(fast) = &fast {
        match &full {
            Ok(full) if full == fast => {}
            // Only the types of unread fields may be wrong: the body itself must be JSON.
            Err(_) if unread_may_be_malformed => {
                if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
                    return Err(format!("fast {fast:?}\nfrom a body that is not JSON"));
                }
                return Ok(Some(fast.clone()));
            }
            other => return Err(format!("fast {fast:?}\nfull {other:?}")),
        }
    }
    let decoded = decode(body);
    if decoded != full {
        return Err(format!("decode {decoded:?}\nfull {full:?}"));
    }
    Ok(fast)
}

#[test]
fn the_fast_reader_answers_every_captured_review_as_the_full_decoder_does() {
    for (name, body) in fixtures() {
        let fast = agree(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Not by handing every body over: the fast reader decides each one itself.
        let fast = fast.unwrap_or_else(|| panic!("{name}: the fast reader gave up"));
        assert!(fast.object.is_none(), "{name}");
        // Pretty-printed as captured, and compact as a Go client writes it.
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap());
        let compact = compact.unwrap();
        assert!(agree(&compact).unwrap().is_some(), "{name} (compact)");
    }
}

/// What kube's own `AdmissionResponse` serialises for the same answer: the response is
/// written without it now, and must not change.
fn kube_response(body: &[u8], allowed: bool, message: &str, verdict: &Verdict) -> Value {
    use kube::core::admission::AdmissionResponse;
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).unwrap();
    let request: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
    let mut resp = AdmissionResponse::from(&request);
    if !allowed {
        resp = resp.deny(message);
        resp.result.code = 403;
        resp.result.reason = "Forbidden".into();
        resp.result.status = Some(kube::core::response::StatusSummary::Failure);
    }
    if !verdict.warnings.is_empty() {
        resp.warnings = Some(verdict.warnings.clone());
    }
    resp.audit_annotations = verdict
        .audit_annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::to_value(resp.into_review()).unwrap()
}

#[test]
fn responses_are_what_kube_serialises() {
    let verdicts = [
        Verdict {
            allowed: true,
            ..Verdict::default()
        },
        Verdict {
            allowed: true,
            warnings: vec!["w \"1\"".into(), "w2 é".into()],
            audit_annotations: [("signet.dev/x".to_string(), "y".to_string())].into(),
            ..Verdict::default()
        },
        Verdict {
            allowed: false,
            denials: vec!["image a is not trusted".into(), "image b\nis not".into()],
            ..Verdict::default()
        },
    ];
    for (name, body) in fixtures() {
        let review = decode(&body).unwrap();
        for v in &verdicts {
            let message = deny_message(&v.denials);
            let ours: Value = serde_json::from_slice(&respond(&review, v)).unwrap();
            assert_eq!(ours, kube_response(&body, v.allowed, &message, v), "{name}");
        }
        let ours: Value = serde_json::from_slice(&respond_action(&review)).unwrap();
        let (allowed, message) = match &review.action {
            Action::Reject(m) => (false, deny_message(std::slice::from_ref(m))),
            _ => (true, String::new()),
        };
        let none = Verdict::default();
        assert_eq!(
            ours,
            kube_response(&body, allowed, &message, &none),
            "{name}"
        );
    }
}

#[test]
fn pull_secrets_and_service_account_are_read_by_both() {
    let mut v: Value = serde_json::from_slice(&fixture("deployment-create.json")).unwrap();
    let spec = &mut v["request"]["object"]["spec"]["template"]["spec"];
    spec["imagePullSecrets"] = json!([{"name": "regcred"}, {}, {"name": "other"}]);
    spec["serviceAccountName"] = json!("builder");
    let body = serde_json::to_vec(&v).unwrap();
    let fast = agree(&body).unwrap().expect("fast");
    assert_eq!(fast.pull_secret_names(), ["regcred", "", "other"]);
    assert_eq!(fast.service_account_name(), Some("builder"));
    // A review that checks nothing has none.
    let skipped = decode(&fixture("deployment-scale.json")).unwrap();
    assert!(skipped.pull_secret_names().is_empty());
}

#[test]
fn escapes_repeated_keys_and_surrogates_read_the_same() {
    let body = String::from_utf8(fixture("pod-create.json")).unwrap();
    // An escaped image reference is read unescaped by both.
    let escaped = body.replacen("\"nginx:1.27\"", "\"\\u006eginx:1.27\\n\"", 1);
    let review = agree(escaped.as_bytes()).unwrap().expect("fast");
    assert_eq!(
        review.action,
        Action::Check(vec![ImageUse {
            image: "nginx:1.27\n".into(),
            containers: vec!["container \"web\"".into()],
        }])
    );
    // A repeated key: JSON maps keep the last, serde's structs refuse; the full decoder
    // decides, and the image checked is the last one written.
    let twice = body.replacen(
        "\"image\": \"nginx:1.27\"",
        "\"image\": \"a:1\", \"image\": \"nginx:1.27\"",
        1,
    );
    assert_ne!(twice, body);
    assert!(agree(twice.as_bytes()).unwrap().is_none());
    assert!(
        matches!(decode(twice.as_bytes()).unwrap().action, Action::Check(ref u) if u[0].image == "nginx:1.27")
    );
    // A lone surrogate anywhere is refused by the full decoder, also where only skipped.
    let lone = body.replacen("\"run\": \"web\"", "\"run\": \"\\ud800\"", 1);
    assert_ne!(lone, body);
    assert!(agree(lone.as_bytes()).unwrap().is_none());
    assert!(matches!(decode(lone.as_bytes()), Err(DecodeError::Json(_))));
    // Invalid UTF-8 in a field nobody reads, likewise.
    let mut bad = body
        .replacen("\"run\": \"web\"", "\"run\": \"w?b\"", 1)
        .into_bytes();
    let at = bad.windows(3).position(|w| w == b"w?b").unwrap() + 1;
    bad[at] = 0xff;
    assert!(agree(&bad).unwrap().is_none());
    assert!(matches!(decode(&bad), Err(DecodeError::Json(_))));
}

/// serde_json skips a value without recursing, so nesting in a field no decision reads
/// cannot exhaust the stack however deep (the body limit allows millions of levels): the
/// fast reader answers such a body, as the full decoder does for a key it ignores too
/// (it refuses one it reads into a type, like `labels`, at 128 levels).
#[test]
fn deep_nesting_where_no_decision_reads_is_skipped_without_recursion() {
    let body = String::from_utf8(fixture("pod-create.json")).unwrap();
    let deep = format!("{}1{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    for at in ["\"run\": \"web\"", "\"dryRun\": false"] {
        let nested = body.replacen(at, &format!("{at}, \"x\": {deep}"), 1);
        assert_ne!(nested, body, "{at}");
        assert!(matches!(
            decode(nested.as_bytes()).unwrap().action,
            Action::Check(_)
        ));
        agree_unless_unread(nested.as_bytes(), true).unwrap();
    }
    // Where a decision reads, the limit holds: an image nested 200 deep is a 400.
    let nested = body.replacen(
        "\"nginx:1.27\"",
        &format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        1,
    );
    assert!(matches!(
        decode(nested.as_bytes()),
        Err(DecodeError::Json(_))
    ));
}

/// What the fast reader does not check, and the full decoder does: the types of fields no
/// decision reads. The fast reader answers from what it read; the full decoder refuses.
#[test]
fn malformed_fields_no_decision_reads_are_not_checked() {
    let mut v: Value = serde_json::from_slice(&fixture("pod-create.json")).unwrap();
    v["request"]["object"]["metadata"]["labels"] = json!(5);
    v["request"]["object"]["spec"]["containers"][0]["ports"] = json!("eighty");
    let body = serde_json::to_vec(&v).unwrap();
    assert!(matches!(
        decode_with_object(&body),
        Err(DecodeError::Json(_))
    ));
    let fast = decode(&body).unwrap();
    assert_eq!(
        fast.action,
        Action::Check(vec![ImageUse {
            image: "nginx:1.27".into(),
            containers: vec!["container \"web\"".into()],
        }])
    );
}

/// An UPDATE whose old object has a wrongly typed field no decision reads: the old object only
/// lends its images to the comparison, and both decoders read them the same way, so they agree
/// (the new image is compared with the old images, not checked as if there were no old object).
/// A wrongly typed field the comparison does read still leaves nothing to compare with.
#[test]
fn an_old_object_wrongly_typed_where_no_decision_reads_is_compared_by_its_images() {
    let body = String::from_utf8(fixture("pod-update-label.json")).unwrap();
    let field = "\"terminationGracePeriodSeconds\": 30";
    let at = body.rfind(field).unwrap();
    assert!(
        at > body.find("\"oldObject\"").unwrap(),
        "the old object's field"
    );
    let mut bent = body.clone();
    bent.replace_range(
        at..at + field.len(),
        "\"terminationGracePeriodSeconds\": 3.5",
    );
    let review = agree(bent.as_bytes())
        .unwrap()
        .expect("the fast reader answers");
    assert_eq!(review.action, Action::Skip(SkipReason::NoNewImage));
    // The object itself so bent is refused by the full decoder, as before.
    let first = body.find(field).unwrap();
    assert!(first < body.find("\"oldObject\"").unwrap());
    let mut new_bent = body.clone();
    new_bent.replace_range(
        first..first + field.len(),
        "\"terminationGracePeriodSeconds\": 3.5",
    );
    assert!(matches!(
        decode_with_object(new_bent.as_bytes()).unwrap().action,
        Action::Reject(_)
    ));
    // A field the comparison reads, wrongly typed: no evidence, every image checked.
    let mut v: Value = serde_json::from_str(&body).unwrap();
    v["request"]["oldObject"]["spec"]["containers"][0]["image"] = json!(5);
    let review = agree(&serde_json::to_vec(&v).unwrap()).unwrap();
    let full = decode_with_object(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert!(
        review.is_none(),
        "the fast reader leaves it to the full decoder"
    );
    let Action::Check(all) = &full.action else {
        panic!("{:?}", full.action)
    };
    assert_eq!(
        all.iter().map(|u| u.image.as_str()).collect::<Vec<_>>(),
        ["nginx:1.28"]
    );
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON value of any shape a field could be given.
fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z:./@0-9]{0,12}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{"name": "x", "image": "y:1"}])),
        Just(json!(["a", "b"])),
        Just(json!(["a", 1])),
        Just(json!([null])),
        Just(json!({"k": ["v"]})),
        Just(json!({"k": "v"})),
        Just(json!({"group": "", "version": "v1", "kind": "Pod"})),
        Just(json!(["", "v1", "Pod"])),
    ]
}

/// Where in a review an edit lands: the request's own fields, and every field a decision
/// reads in the object and the old object.
fn any_pointer() -> impl Strategy<Value = String> {
    let request = prop::sample::select(vec![
        "",
        "/kind",
        "/apiVersion",
        "/request",
        "/request/uid",
        "/request/kind",
        "/request/kind/kind",
        "/request/kind/group",
        "/request/resource",
        "/request/resource/resource",
        "/request/resource/api_version",
        "/request/requestKind",
        "/request/requestKind/version",
        "/request/requestResource",
        "/request/requestResource/group",
        "/request/requestSubResource",
        "/request/subResource",
        "/request/name",
        "/request/namespace",
        "/request/operation",
        "/request/userInfo",
        "/request/userInfo/username",
        "/request/userInfo/uid",
        "/request/userInfo/groups",
        "/request/userInfo/groups/0",
        "/request/userInfo/extra",
        "/request/userInfo/extra/k",
        "/request/userInfo/extra/k/0",
        "/request/dryRun",
        "/request/options",
        "/request/object",
        "/request/oldObject",
    ]);
    let object = prop::sample::select(vec!["object", "oldObject"]);
    let spec = prop::sample::select(vec![
        "/spec",
        "/spec/template",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
        "/metadata",
        "/metadata/deletionTimestamp",
    ]);
    let field = prop::sample::select(vec![
        "",
        "/containers",
        "/containers/0",
        "/containers/0/image",
        "/containers/0/name",
        "/containers/1",
        "/initContainers",
        "/initContainers/0/image",
        "/ephemeralContainers",
        "/ephemeralContainers/0/image",
        "/volumes",
        "/volumes/0/image",
        "/volumes/0/image/reference",
        "/volumes/0/name",
        "/imagePullSecrets",
        "/imagePullSecrets/0/name",
        "/serviceAccountName",
    ]);
    prop_oneof![
        request.prop_map(str::to_owned),
        (object, spec, field).prop_map(|(o, s, f)| format!("/request/{o}{s}{f}")),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Set(String, Value),
    Remove(String),
    Operation(&'static str),
    Kind(&'static str, &'static str),
    SubResource(Option<&'static str>),
    DeletionTimestamp(&'static str),
}

fn any_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any_pointer(), any_value()).prop_map(|(p, v)| Edit::Set(p, v)),
        any_pointer().prop_map(Edit::Remove),
        prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"])
            .prop_map(Edit::Operation),
        prop::sample::select(vec![
            ("", "Pod"),
            ("apps", "Deployment"),
            ("batch", "CronJob"),
            ("batch", "Job"),
            ("", "ReplicationController"),
            ("apps", "Pod"),
            ("", "ConfigMap"),
        ])
        .prop_map(|(g, k)| Edit::Kind(g, k)),
        prop::option::of(prop::sample::select(vec![
            "ephemeralcontainers",
            "status",
            ""
        ]))
        .prop_map(Edit::SubResource),
        prop::sample::select(vec!["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+01:00"])
            .prop_map(Edit::DeletionTimestamp),
    ]
}

/// Sets (creating objects on the way when the parent is an object) or removes at `pointer`.
fn apply(review: &mut Value, edit: &Edit) {
    match edit {
        Edit::Set(pointer, value) => {
            // Metadata only gets a valid deletionTimestamp: the rest is not read.
            if pointer.is_empty() || pointer.contains("/metadata") {
                return;
            }
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            match review.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.insert(key.to_owned(), value.clone());
                }
                Some(Value::Array(items)) => {
                    if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        *slot = value.clone();
                    }
                }
                _ => {}
            }
        }
        Edit::Remove(pointer) => {
            let Some((parent, key)) = pointer.rsplit_once('/') else {
                return;
            };
            match review.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(key);
                }
                Some(Value::Array(items)) => {
                    if let Some(i) = key.parse::<usize>().ok().filter(|i| *i < items.len()) {
                        items.remove(i);
                    }
                }
                _ => {}
            }
        }
        Edit::Operation(op) => insert(review, "/request", "operation", json!(op)),
        Edit::Kind(group, kind) => {
            let gvk = json!({"group": group, "version": "v1", "kind": kind});
            insert(review, "/request", "kind", gvk)
        }
        Edit::SubResource(Some(sub)) => insert(review, "/request", "subResource", json!(sub)),
        Edit::SubResource(None) => apply(review, &Edit::Remove("/request/subResource".into())),
        Edit::DeletionTimestamp(t) => insert(
            review,
            "/request/object/metadata",
            "deletionTimestamp",
            json!(t),
        ),
    }
}

/// Sets `key` in the object at `parent`, if there is one.
fn insert(review: &mut Value, parent: &str, key: &str, value: Value) {
    if let Some(Value::Object(map)) = review.pointer_mut(parent) {
        map.insert(key.to_owned(), value);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_fast_reader_agrees_with_the_full_decoder_on_edited_reviews(
        which in 0usize..64,
        edits in prop::collection::vec(any_edit(), 0..6),
        pretty in any::<bool>(),
    ) {
        let all = fixtures();
        let (name, body) = &all[which % all.len()];
        let mut review: Value = serde_json::from_slice(body).unwrap();
        for e in &edits {
            apply(&mut review, e);
        }
        let body = if pretty {
            serde_json::to_vec_pretty(&review).unwrap()
        } else {
            serde_json::to_vec(&review).unwrap()
        };
        if let Err(e) = agree(&body) {
            panic!("{name} with {edits:?}:\n{e}");
        }
    }

    #[test]
    fn the_fast_reader_agrees_with_the_full_decoder_on_cut_and_spliced_bytes(
        which in 0usize..64,
        cut in any::<prop::sample::Index>(),
        len in 0usize..8,
        insert in prop::sample::select(vec!["", "\"", "{", "}", "[", ",", "null", "\\", "\\u0041", "1e999"]),
    ) {
        let all = fixtures();
        let (name, body) = &all[which % all.len()];
        let at = cut.index(body.len());
        let end = (at + len).min(body.len());
        let mut spliced = body[..at].to_vec();
        spliced.extend_from_slice(insert.as_bytes());
        spliced.extend_from_slice(&body[end..]);
        if let Err(e) = agree_unless_unread(&spliced, true) {
            panic!("{name} at {at}..{end} with {insert:?}:\n{e}");
        }
    }
}
