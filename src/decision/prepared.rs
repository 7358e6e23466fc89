//! What a review needs of an image reference before any cache is asked, kept between reviews
//! for the active policy set: the reference parsed and written out, and the policies that cover
//! it. A cache hit otherwise parses, writes out and matches the same reference at every review
//! of the same pod spec, which cost about as much as both cache lookups together.
//!
//! One [`Prepared`] per policy set: a new set starts with none kept. Bounded by the bytes its
//! entries hold ([`KEPT_BYTES`]); an entry that would go over the bound empties it first, so a
//! flood of distinct references costs each review what it cost without this, never memory.
//! References that do not parse are not kept (their review fails on them anyway).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::image::{ImageRef, ParseError};
use crate::policy::{Policy, PolicySet};

/// The most bytes the entries kept hold ([`footprint`]).
pub(super) const KEPT_BYTES: usize = 4 << 20;

/// An image reference as a review uses it.
#[derive(Debug)]
pub(super) struct Image {
    pub image: ImageRef,
    /// `image` written out (normalised): what the digest cache and the report use.
    pub reference: String,
    /// `registry/repository`: what the verdict cache is keyed by.
    pub repository: String,
    /// The policies that cover it, when no policy of the set is namespaced: they are the same
    /// for every namespace then. `None`: match for each review's namespace.
    pub policies: Option<Vec<Arc<Policy>>>,
}

/// The active policy set with the references prepared for it.
#[derive(Debug)]
pub(super) struct Prepared {
    pub set: Arc<PolicySet>,
    /// Whether some policy covers only its own namespace.
    namespaced: bool,
    kept: RwLock<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    images: HashMap<Box<str>, Arc<Image>, ahash::RandomState>,
    bytes: usize,
}

impl Prepared {
    pub fn new(set: Arc<PolicySet>) -> Prepared {
        Prepared {
            namespaced: set.policies.iter().any(|p| p.namespace.is_some()),
            set,
            kept: RwLock::default(),
        }
    }

    /// `written` (a reference as the pod spec writes it) prepared, from what is kept or parsed
    /// now.
    pub fn image(&self, written: &str) -> Result<Arc<Image>, ParseError> {
        let kept = self.kept.read().unwrap_or_else(|p| p.into_inner());
        if let Some(image) = kept.images.get(written) {
            return Ok(image.clone());
        }
        drop(kept);
        let image: ImageRef = written.parse()?;
        let prepared = Arc::new(Image {
            reference: image.to_string(),
            repository: image.name(),
            policies: (!self.namespaced)
                .then(|| self.set.matching(&image, None).cloned().collect()),
            image,
        });
        let bytes = footprint(written, &prepared);
        let mut kept = self.kept.write().unwrap_or_else(|p| p.into_inner());
        if kept.bytes + bytes > KEPT_BYTES {
            *kept = Kept::default();
        }
        if kept
            .images
            .insert(written.into(), prepared.clone())
            .is_none()
        {
            kept.bytes += bytes;
        }
        Ok(prepared)
    }

    /// The policies that cover `image` in a review from `namespace`: the kept list, borrowed,
    /// unless some policy is namespaced.
    pub fn policies<'a>(
        &'a self,
        image: &'a Image,
        namespace: Option<&str>,
    ) -> Cow<'a, [Arc<Policy>]> {
        match &image.policies {
            Some(all) => Cow::Borrowed(all),
            None => self
                .set
                .matching(&image.image, namespace)
                .cloned()
                .collect(),
        }
    }

    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let kept = self.kept.read().unwrap_or_else(|p| p.into_inner());
        (kept.images.len(), kept.bytes)
    }
}

/// What one entry holds, near enough: the reference as written, parsed (about as long again)
/// and written out, the repository, the policy list, and the allocations and the table's slot.
fn footprint(written: &str, image: &Image) -> usize {
    written.len()
        + 2 * image.reference.len()
        + image.repository.len()
        + image
            .policies
            .as_ref()
            .map_or(0, |p| p.len() * size_of::<Arc<Policy>>())
        + 256
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn set(yaml: &str) -> Arc<PolicySet> {
        Arc::new(crate::policy::load_str(Path::new("p.yaml"), yaml).expect("policies load"))
    }

    /// A ClusterImagePolicy `name` over `glob`; with `namespace`, an ImagePolicy there.
    fn policy(name: &str, glob: &str, namespace: Option<&str>) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("key")
            .public_key_pem();
        let yaml = signet_testkit::policy::cosign_policy(name, glob, "enforce", "deny", &key);
        match namespace {
            None => yaml,
            Some(ns) => yaml
                .replace("kind: ClusterImagePolicy", "kind: ImagePolicy")
                .replace(
                    &format!("  name: {name}\n"),
                    &format!("  name: {name}\n  namespace: {ns}\n"),
                ),
        }
    }

    fn names(policies: &[Arc<Policy>]) -> Vec<String> {
        policies.iter().map(|p| p.name.to_string()).collect()
    }

    /// A kept reference gives what parsing and matching it again gives, for every namespace
    /// when no policy is namespaced.
    #[test]
    fn a_kept_reference_is_what_parsing_and_matching_give() {
        let prepared = Prepared::new(set(&format!(
            "{}---\n{}",
            policy("a", "registry.example.com/**", None),
            policy("b", "registry.example.com/team/*", None)
        )));
        for written in [
            "registry.example.com/team/app:1",
            "nginx",
            "registry.example.com/x",
        ] {
            let parsed: ImageRef = written.parse().expect("valid");
            let first = prepared.image(written).expect("valid");
            let again = prepared.image(written).expect("valid");
            assert!(Arc::ptr_eq(&first, &again), "{written} is kept");
            assert_eq!(first.image, parsed);
            assert_eq!(first.reference, parsed.to_string());
            assert_eq!(first.repository, parsed.name());
            for ns in [None, Some("default"), Some("team")] {
                assert_eq!(
                    names(&prepared.policies(&first, ns)),
                    names(
                        &prepared
                            .set
                            .matching(&parsed, ns)
                            .cloned()
                            .collect::<Vec<_>>()
                    ),
                    "{written} in {ns:?}"
                );
            }
        }
        assert_eq!(prepared.kept().0, 3);
    }

    /// With a namespaced policy the policies are matched for each review's namespace.
    #[test]
    fn namespaced_policies_are_matched_per_namespace() {
        let prepared = Prepared::new(set(&format!(
            "{}---\n{}",
            policy("all", "registry.example.com/**", None),
            policy("mine", "registry.example.com/**", Some("team"))
        )));
        let image = prepared.image("registry.example.com/app:1").expect("valid");
        assert!(image.policies.is_none());
        assert_eq!(
            names(&prepared.policies(&image, Some("team"))),
            ["all", "team/mine"]
        );
        assert_eq!(names(&prepared.policies(&image, Some("other"))), ["all"]);
        assert_eq!(names(&prepared.policies(&image, None)), ["all"]);
    }

    /// Invalid references are refused as the parser refuses them and never kept; past the
    /// bound, what was kept is dropped rather than the bound exceeded.
    #[test]
    fn invalid_references_are_not_kept_and_the_bytes_are_bounded() {
        let prepared = Prepared::new(set(&policy("a", "**", None)));
        assert_eq!(
            prepared.image("Bad Ref").unwrap_err(),
            "Bad Ref".parse::<ImageRef>().unwrap_err()
        );
        assert_eq!(prepared.kept(), (0, 0));
        // About 390 bytes each: the longest repository and a long tag.
        let long = format!("r.example.com/{}:{}", "a".repeat(250), "t".repeat(120));
        let mut most = 0;
        for i in 0..(KEPT_BYTES / long.len() + 10) {
            let written = format!("{long}{i}");
            prepared.image(&written).expect("valid");
            let (_, bytes) = prepared.kept();
            assert!(bytes <= KEPT_BYTES, "{bytes} bytes kept");
            most = most.max(bytes);
        }
        assert!(most > KEPT_BYTES - 2_000, "the bound was reached: {most}");
        assert!(prepared.kept().1 < most, "and what was kept was dropped");
    }
}
