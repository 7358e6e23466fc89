//! Real AdmissionReview bodies (tests/fixtures/admission/, captured from kube-apiserver v1.36)
//! and helpers to point their images at the test registry.

use std::path::PathBuf;

use serde_json::Value;

/// `tests/fixtures/admission/` of the signet checkout this crate sits in (`crates/testkit`).
pub fn admission_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/admission")
}

/// Loads `tests/fixtures/admission/<name>` (`.json` optional), e.g. `load_review("pod-create")`.
pub fn load_review(name: &str) -> Value {
    let file = if name.ends_with(".json") {
        name.to_owned()
    } else {
        format!("{name}.json")
    };
    let path = admission_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read fixture {}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("parse {}: {err}", path.display()))
}

/// The raw bytes of a fixture, exactly as the API server sent them (pretty-printed).
pub fn review_bytes(name: &str) -> Vec<u8> {
    let file = if name.ends_with(".json") {
        name.to_owned()
    } else {
        format!("{name}.json")
    };
    std::fs::read(admission_dir().join(file)).expect("read fixture")
}

/// Names (without `.json`) of all fixtures, sorted.
pub fn review_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(admission_dir())
        .expect("list fixtures")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Replaces every string equal to `old` inside `request.object` and `request.oldObject` with
/// `new` (container images in any pod template depth). Returns how many were replaced.
pub fn replace_image(review: &mut Value, old: &str, new: &str) -> usize {
    let mut count = 0;
    for key in ["object", "oldObject"] {
        if let Some(object) = review
            .get_mut("request")
            .and_then(|request| request.get_mut(key))
        {
            count += replace_strings(object, old, new);
        }
    }
    count
}

fn replace_strings(value: &mut Value, old: &str, new: &str) -> usize {
    match value {
        Value::String(s) if s == old => {
            *s = new.to_owned();
            1
        }
        Value::Array(items) => items
            .iter_mut()
            .map(|item| replace_strings(item, old, new))
            .sum(),
        Value::Object(map) => map
            .values_mut()
            .map(|item| replace_strings(item, old, new))
            .sum(),
        _ => 0,
    }
}

/// Sets the strings at these JSON pointers (e.g.
/// `/request/object/spec/containers/0/image`); panics when a pointer does not exist.
pub fn with_images(mut review: Value, images: &[(&str, &str)]) -> Value {
    for (pointer, image) in images {
        let slot = review
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in review"));
        *slot = Value::String((*image).to_owned());
    }
    review
}

/// Every `image` field under `request.object`, as (JSON pointer, image), in document order.
pub fn images_in(review: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Some(object) = review.pointer("/request/object") {
        collect_images(object, "/request/object".to_owned(), &mut found);
    }
    found
}

fn collect_images(value: &Value, pointer: String, found: &mut Vec<(String, String)>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_images(item, format!("{pointer}/{i}"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                match item {
                    // Only container-like objects: an `image` string next to a `name`.
                    Value::String(image) if key == "image" && map.contains_key("name") => {
                        found.push((child, image.clone()));
                    }
                    _ => collect_images(item, child, found),
                }
            }
        }
        _ => {}
    }
}
