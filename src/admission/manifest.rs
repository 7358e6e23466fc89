//! Plain manifests, as `kubectl apply -f` takes them, turned into reviews: each object (a Pod,
//! a Deployment, any kind; the items of a `List`) becomes the CREATE AdmissionReview the API
//! server would send for it, so `signet review` answers it through the one review path. An
//! AdmissionReview among the documents is taken as it is.
//!
//! YAML (one or many `---` documents) or JSON (one value, or several in a row). Kinds that hold
//! no pod spec are wrapped all the same: the review allows them as "kind not governed".
//!
//! Like `admission`: must not import hyper, `registry` or `decision`; bytes in, reviews out.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{DecodeError, Review, decode};

/// Why an input is not a set of manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not YAML or JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not YAML or JSON: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("document {index}: {what}")]
    NotAnObject { index: usize, what: String },
    #[error("document {index}: {source}")]
    Review {
        index: usize,
        #[source]
        source: DecodeError,
    },
}

/// Every review in `input`: AdmissionReviews as they are, any other object as its CREATE in
/// its own namespace, else `namespace`. Documents are numbered from 1 in errors.
pub fn reviews(input: &[u8], namespace: &str) -> Result<Vec<Review>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in documents(input)?.into_iter().enumerate() {
        let index = i + 1;
        let mut objects = Vec::new();
        flatten(doc, index, &mut objects)?;
        for object in objects {
            let body = if object["kind"] == "AdmissionReview" {
                object
            } else {
                create_review(object, namespace, out.len())
            };
            let bytes = serde_json::to_vec(&body)?;
            out.push(decode(&bytes).map_err(|source| ManifestError::Review { index, source })?);
        }
    }
    Ok(out)
}

/// The documents of a YAML stream or of a JSON text (one value or several), empty ones left out.
fn documents(input: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let starts_json = input
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    let docs: Vec<Value> = if starts_json {
        serde_json::Deserializer::from_slice(input)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()?
    } else {
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_slice(input) {
            docs.push(Value::deserialize(doc)?);
        }
        docs
    };
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The objects of one document: itself, or the items of a `List` (`v1 List`, `PodList`…).
fn flatten(doc: Value, index: usize, out: &mut Vec<Value>) -> Result<(), ManifestError> {
    let not_object = |what: String| ManifestError::NotAnObject { index, what };
    let Value::Object(map) = doc else {
        return Err(not_object(
            "not a Kubernetes object (a mapping with apiVersion and kind)".into(),
        ));
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.is_empty() || map.get("apiVersion").and_then(Value::as_str).is_none() {
        return Err(not_object("an object without apiVersion or kind".into()));
    }
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = map.get("items")
    {
        for item in items.clone() {
            flatten(item, index, out)?;
        }
        return Ok(());
    }
    out.push(Value::Object(map));
    Ok(())
}

/// The CREATE AdmissionReview of `object`, as the API server builds it.
fn create_review(mut object: Value, namespace: &str, n: usize) -> Value {
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => {
            object["metadata"]["namespace"] = json!(namespace);
            namespace.to_string()
        }
    };
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource(&kind)});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("signet-review-{}", n + 1),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "signet-review"},
            "object": object,
            "oldObject": null,
            "dryRun": true,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// The resource name of a kind (lower case, plural), as the API server puts it in a review.
fn resource(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Action;

    fn images(r: &Review) -> Vec<String> {
        match &r.action {
            Action::Check(uses) => uses.iter().map(|u| u.image.clone()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_yaml_stream_of_workloads_becomes_create_reviews() {
        let text = "\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: c, image: nginx:1.27}]
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      initContainers: [{name: i, image: busybox}]
      containers: [{name: c, image: example.com/api:2}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
";
        let r = reviews(text.as_bytes(), "team").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].kind(), r[0].name(), r[0].namespace()),
            ("v1/Pod".into(), "web", Some("team"))
        );
        assert_eq!(r[0].operation(), "CREATE");
        assert_eq!(images(&r[0]), ["nginx:1.27"]);
        assert_eq!(r[1].kind(), "apps/v1/Deployment");
        assert_eq!(r[1].namespace(), Some("prod"));
        assert_eq!(images(&r[1]), ["busybox", "example.com/api:2"]);
        assert!(matches!(
            r[2].action,
            Action::Skip(crate::admission::SkipReason::Kind)
        ));
        assert_ne!(r[0].uid(), r[1].uid());
    }

    #[test]
    fn json_lists_and_admission_reviews_are_taken() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"nightly"},
             "spec":{"schedule":"@daily","jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"a/b:1"}]}}}}}}]}"#;
        let r = reviews(list.as_bytes(), "default").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(images(&r[0]), ["a/b:1"]);
        let review = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/admission/pod-create.json"),
        )
        .unwrap();
        let r = reviews(&review, "default").unwrap();
        assert_eq!(r[0].uid(), "cdd550f4-f12f-4992-b3a7-356fd575c8ef");
    }

    #[test]
    fn what_is_not_a_manifest_says_which_document() {
        for (text, want) in [
            (
                "apiVersion: v1\nkind: Pod\n---\n- a list\n",
                "document 2: not a Kubernetes object",
            ),
            (
                "metadata: {name: x}\n",
                "document 1: an object without apiVersion or kind",
            ),
            ("{\"kind\": ", "not YAML or JSON"),
            ("a: [unclosed\n", "not YAML or JSON"),
            (
                "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
                "document 1: the AdmissionReview has no request",
            ),
        ] {
            let e = reviews(text.as_bytes(), "default").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn resource_names() {
        for (k, r) in [
            ("Pod", "pods"),
            ("ReplicaSet", "replicasets"),
            ("DaemonSet", "daemonsets"),
            ("NetworkPolicy", "networkpolicies"),
            ("Ingress", "ingresses"),
        ] {
            assert_eq!(resource(k), r);
        }
    }
}
