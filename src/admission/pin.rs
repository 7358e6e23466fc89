//! Digest pinning for the optional `/mutate` route: a JSONPatch that rewrites each image the
//! engine found trusted from `name:tag` to `name:tag@sha256:…`, so the kubelet pulls exactly
//! the digest that was verified, not whatever the tag names by then.
//!
//! Pure: the pod spec as JSON in, patch operations out. Only images written without a digest
//! and present in `pins` are touched; everything else in the object stays byte for byte.
//!
//! Like `admission`: must not import hyper, `registry` or anything with I/O.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, ReplaceOperation};
use serde_json::Value;

use crate::image::Digest;

/// The container lists of a pod spec, in the order the patch visits them.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// The patch pinning every image of the pod spec at `base` (the JSON path of the pod spec in
/// the object, e.g. `["spec", "template", "spec"]`) that `pins` maps to a digest: the image
/// string exactly as written in the spec → the digest verified for it.
pub fn patch(object: &Value, base: &[&str], pins: &BTreeMap<String, Digest>) -> Patch {
    let mut spec = object;
    for key in base {
        spec = &spec[*key];
    }
    let mut ops = Vec::new();
    let mut pin = |tokens: Vec<String>, image: Option<&str>| {
        let Some(image) = image else {
            return;
        };
        if image.contains('@') {
            return;
        }
        if let Some(digest) = pins.get(image) {
            ops.push(PatchOperation::Replace(ReplaceOperation {
                path: PointerBuf::from_tokens(tokens),
                value: Value::String(format!("{image}@{digest}")),
            }));
        }
    };
    let at = |rest: &[&str]| -> Vec<String> {
        base.iter().chain(rest).map(|s| (*s).to_string()).collect()
    };
    for list in CONTAINER_LISTS {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let index = i.to_string();
            pin(at(&[list, &index, "image"]), c["image"].as_str());
        }
    }
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let index = i.to_string();
        pin(
            at(&["volumes", &index, "image", "reference"]),
            v["image"]["reference"].as_str(),
        );
    }
    Patch(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_slice(&bytes).unwrap()
    }

    fn base_of(kind: &str) -> &'static [&'static str] {
        match kind {
            "Pod" => &["spec"],
            "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }

    /// Every image string of the pod spec, as written.
    fn images(spec: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for list in CONTAINER_LISTS {
            for c in spec[list].as_array().into_iter().flatten() {
                out.extend(c["image"].as_str().map(str::to_string));
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            out.extend(v["image"]["reference"].as_str().map(str::to_string));
        }
        out
    }

    fn spec_at<'a>(object: &'a Value, base: &[&str]) -> &'a Value {
        base.iter().fold(object, |v, k| &v[*k])
    }

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// Applied to every captured object, the patch pins each image written by tag, leaves
    /// images with a digest alone, and changes nothing else.
    #[test]
    fn the_patch_pins_tagged_images_of_every_fixture_and_nothing_else() {
        let dir = format!("{}/tests/fixtures/admission", env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".json") {
                continue;
            }
            let review = fixture(&name);
            let object = &review["request"]["object"];
            let kind = review["request"]["kind"]["kind"].as_str().unwrap_or("");
            if object.is_null() || review["request"]["subResource"] == "scale" {
                continue;
            }
            let base = base_of(kind);
            let before = images(spec_at(object, base));
            if before.is_empty() {
                continue;
            }
            let digest: Digest = DIGEST.parse().unwrap();
            let pins: BTreeMap<String, Digest> =
                before.iter().map(|i| (i.clone(), digest.clone())).collect();
            let p = patch(object, base, &pins);
            let mut patched = object.clone();
            json_patch::patch(&mut patched, &p).unwrap_or_else(|e| panic!("{name}: {e}"));
            let after = images(spec_at(&patched, base));
            assert_eq!(before.len(), after.len(), "{name}");
            for (b, a) in before.iter().zip(&after) {
                if b.contains('@') {
                    assert_eq!(a, b, "{name}: an image with a digest is left alone");
                } else {
                    assert_eq!(a, &format!("{b}@{DIGEST}"), "{name}");
                }
            }
            // Undo the pins: the object is the original, byte for byte.
            let undone = serde_json::to_string(&patched)
                .unwrap()
                .replace(&format!("@{DIGEST}"), "");
            let original = serde_json::to_string(object).unwrap();
            assert_eq!(
                undone, original,
                "{name}: the patch changed more than images"
            );
            // The wire form the API server decodes: a JSON array of operations.
            let wire: Value = serde_json::to_value(&p).unwrap();
            for op in wire.as_array().unwrap() {
                assert_eq!(op["op"], "replace", "{name}: {op}");
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} fixtures had images");
    }

    #[test]
    fn only_images_in_pins_are_touched() {
        let review = fixture("pod-duplicate-images.json");
        let object = &review["request"]["object"];
        let pins = BTreeMap::from([(
            "registry.example.com/team/app:2.0".to_string(),
            DIGEST.parse().unwrap(),
        )]);
        let p = patch(object, &["spec"], &pins);
        let paths: Vec<String> = p.0.iter().map(|op| op.path().to_string()).collect();
        assert_eq!(
            paths,
            ["/spec/containers/0/image", "/spec/containers/1/image"]
        );
        assert!(patch(object, &["spec"], &BTreeMap::new()).0.is_empty());
    }

    #[test]
    fn image_volumes_are_pinned_too() {
        let mut review = fixture("pod-create.json");
        review["request"]["object"]["spec"]["volumes"] = serde_json::json!([
            {"name": "data", "image": {"reference": "registry.example.com/data:1", "pullPolicy": "IfNotPresent"}}
        ]);
        let object = &review["request"]["object"];
        let pins = BTreeMap::from([(
            "registry.example.com/data:1".to_string(),
            DIGEST.parse().unwrap(),
        )]);
        let p = patch(object, &["spec"], &pins);
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &p).unwrap();
        assert_eq!(
            patched["spec"]["volumes"][0]["image"]["reference"],
            format!("registry.example.com/data:1@{DIGEST}")
        );
    }
}
