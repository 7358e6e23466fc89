//! Review bodies (`pod-create.json` with its images substituted) and signed images pushed
//! to the registry.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::oci::PushedImage;
use crate::support::registry::TestRegistry;

/// The image in `pod-create.json` that scenarios replace.
pub const POD_IMAGE: &str = "nginx:1.27";

pub fn pod_with(image: &str) -> Value {
    let mut review = load_review("pod-create");
    assert_eq!(replace_image(&mut review, POD_IMAGE, image), 1);
    review
}

/// `pod-create.json` with one container per image (names `c0`, `c1`, ...).
pub fn pod_with_images(images: &[String]) -> Value {
    let mut review = load_review("pod-create");
    let spec = &mut review["request"]["object"]["spec"];
    let first = spec["containers"][0].clone();
    spec["containers"] = Value::Array(
        images
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let mut c = first.clone();
                c["name"] = json!(format!("c{i}"));
                c["image"] = json!(image);
                c
            })
            .collect(),
    );
    review
}

pub fn body(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("review JSON"))
}

/// Pushes `n` images `repo:{prefix}{i}` and signs each with `key` (when given), 8 at a time.
pub async fn push_signed(
    registry: &TestRegistry,
    repo: &str,
    prefix: &str,
    seeds: std::ops::Range<u64>,
    key: Option<&CosignKey>,
) -> Vec<PushedImage> {
    let pusher = registry.pusher();
    eight_at_a_time(seeds, |s| {
        let pusher = &pusher;
        async move {
            let img = pusher.push_image(repo, &format!("{prefix}{s}"), s).await;
            if let Some(key) = key {
                cosign::sign_image(registry, repo, &img, key).await;
            }
            img
        }
    })
    .await
}

/// `push(seed)` for each seed, eight at once (the registry is on the same two cores), in
/// order.
pub async fn eight_at_a_time<F, Fut>(seeds: std::ops::Range<u64>, push: F) -> Vec<PushedImage>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = PushedImage>,
{
    let seeds: Vec<u64> = seeds.collect();
    let mut out = Vec::with_capacity(seeds.len());
    for chunk in seeds.chunks(8) {
        out.extend(futures_util::future::join_all(chunk.iter().map(|&s| push(s))).await);
    }
    out
}
