//! What one review may cost: [`ReviewBudget`] is the registry as one review sees it.
//!
//! Every registry operation of a review goes through its budget, which bounds how many run at
//! once (below the registry client's per-host bound, so one review cannot take a host's every
//! connection from the others) and how many the review may start in total. A review that
//! would need more is denied as a whole: the pod spec asked for it, so it is not the
//! registry's failure and `onError` does not apply. Signature blobs are read under a byte
//! budget, per review and for the process ([`SignatureBytes`]).
//!
//! Like `decision`: must not import hyper or Kubernetes types.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::discovery::{self, Defect, Kind, NotOpened};
use crate::image::{Digest, ImageRef};
use crate::reason::Reason;
use crate::registry::{Descriptor, Limits, Manifest, Registry, RegistryError, Resolved};
use crate::verify::Failure;

/// The registry as one review sees it: each operation waits for one of the review's
/// concurrency permits and counts against its total.
pub(super) struct ReviewBudget {
    registry: Arc<dyn Registry>,
    limits: Limits,
    in_flight: Semaphore,
    started: AtomicUsize,
    /// Blob bytes the review asked for, by their descriptors.
    fetched: AtomicU64,
    exhausted: AtomicBool,
    /// Blob bytes this review holds.
    bytes: Semaphore,
    /// Blob bytes every review together holds (the engine's).
    held: Arc<Semaphore>,
}

impl ReviewBudget {
    pub(super) fn new(registry: Arc<dyn Registry>, held: Arc<Semaphore>) -> Self {
        let limits = registry.limits();
        ReviewBudget {
            in_flight: Semaphore::new(limits.review_max_concurrent.max(1)),
            started: AtomicUsize::new(0),
            fetched: AtomicU64::new(0),
            exhausted: AtomicBool::new(false),
            bytes: Semaphore::new(permits(limits.review_max_bytes)),
            held,
            registry,
            limits,
        }
    }

    /// Whether the review wanted more registry operations than its limit (some were refused).
    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// What the review ran out of, in words, when it did.
    pub(super) fn exhaustion(&self) -> Option<String> {
        if !self.exhausted() {
            return None;
        }
        let l = &self.limits;
        Some(
            if self.started.load(Ordering::Relaxed) > l.review_max_requests {
                format!(
                    "more than the {} registry requests one review may make (--review-max-requests)",
                    l.review_max_requests
                )
            } else {
                format!(
                    "more than the {} MiB of blobs one review may fetch (--review-max-fetched-mib)",
                    l.review_max_fetched_bytes >> 20
                )
            },
        )
    }

    fn refuse(&self, detail: String) -> RegistryError {
        self.exhausted.store(true, Ordering::Relaxed);
        RegistryError::new(Reason::Throttled, detail)
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>, RegistryError> {
        if self.started.fetch_add(1, Ordering::Relaxed) >= self.limits.review_max_requests {
            return Err(self.refuse(format!(
                "the review needs more than {} registry requests",
                self.limits.review_max_requests
            )));
        }
        self.in_flight
            .acquire()
            .await
            .map_err(|_| RegistryError::new(Reason::Internal, "the review budget is closed"))
    }
}

#[async_trait::async_trait]
impl Registry for ReviewBudget {
    async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        let _permit = self.permit().await?;
        self.registry.resolve(image).await
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let _permit = self.permit().await?;
        self.registry.manifest(image, reference).await
    }

    /// The body is read under the same permit, so bytes in flight are bounded with requests.
    async fn blob(
        &self,
        image: &ImageRef,
        descriptor: &Descriptor,
    ) -> Result<Bytes, RegistryError> {
        // A blob over the blob limit is refused by the client without a fetch.
        let size = descriptor.size;
        if size <= self.limits.max_blob_bytes
            && self.fetched.fetch_add(size, Ordering::Relaxed) + size
                > self.limits.review_max_fetched_bytes
        {
            return Err(self.refuse(format!(
                "the review needs more than {} bytes of blobs",
                self.limits.review_max_fetched_bytes
            )));
        }
        let _permit = self.permit().await?;
        self.registry.blob(image, descriptor).await
    }

    async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let _permit = self.permit().await?;
        self.registry.referrers(image, digest).await
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}

/// Semaphore permits for a byte count (tokio counts permits in `u32` for `acquire_many`).
fn permits(bytes: u64) -> usize {
    usize::try_from(bytes.min(u64::from(u32::MAX))).unwrap_or(u32::MAX as usize)
}

/// The signature blobs of one verification: each digest is fetched once however many layers
/// list it, and the bytes held count against the review's and the process's byte budgets.
///
/// No hold-and-wait: when a reservation cannot be had at once, everything held is released
/// before waiting, so verifications waiting for bytes never wait on each other.
pub(super) struct SignatureBytes<'a> {
    budget: &'a ReviewBudget,
    blobs: HashMap<Digest, Bytes>,
    permits: Vec<SemaphorePermit<'a>>,
}

impl<'a> SignatureBytes<'a> {
    pub(super) fn new(budget: &'a ReviewBudget) -> Self {
        SignatureBytes {
            budget,
            blobs: HashMap::new(),
            permits: Vec::new(),
        }
    }

    /// The blob of a signature layer, fetched unless already held.
    pub(super) async fn fetch(
        &mut self,
        image: &ImageRef,
        layer: &Descriptor,
        kind: Kind,
    ) -> Result<Bytes, NotOpened> {
        if let Some(b) = self.blobs.get(&layer.digest) {
            return Ok(b.clone());
        }
        // A layer claiming more than the blob limit fails in the client without a fetch.
        if layer.size <= self.budget.limits.max_blob_bytes {
            self.reserve(layer.size, kind).await?;
        }
        let what = format!("signature blob {}", layer.digest.short());
        let bytes = self
            .budget
            .blob(image, layer)
            .await
            .map_err(|e| discovery::classify(e, &[kind], &what))?;
        self.blobs.insert(layer.digest.clone(), bytes.clone());
        Ok(bytes)
    }

    async fn reserve(&mut self, size: u64, kind: Kind) -> Result<(), NotOpened> {
        let limits = &self.budget.limits;
        let cap = limits.review_max_bytes.min(limits.max_held_bytes);
        let n = u32::try_from(size).ok().filter(|_| size <= cap).ok_or_else(|| {
            NotOpened::Defect(Defect {
                kinds: vec![kind],
                failure: Failure::new(
                    Reason::TooLarge,
                    format!("a signature blob of {size} bytes is more than a review may hold ({cap})"),
                ),
            })
        })?;
        if n == 0 {
            return Ok(());
        }
        let (review, all) = (&self.budget.bytes, self.budget.held.as_ref());
        if let Ok(r) = review.try_acquire_many(n)
            && let Ok(a) = all.try_acquire_many(n)
        {
            self.permits.extend([r, a]);
            return Ok(());
        }
        // Waiting while holding would let two verifications wait on each other.
        self.blobs.clear();
        self.permits.clear();
        let closed =
            || NotOpened::Registry(RegistryError::new(Reason::Internal, "byte budget closed"));
        let r = review.acquire_many(n).await.map_err(|_| closed())?;
        let a = all.acquire_many(n).await.map_err(|_| closed())?;
        self.permits.extend([r, a]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Limits, Manifest};
    use std::sync::Mutex;

    /// A registry whose every blob is `size` zero bytes (digests unchecked), counting fetches.
    struct Blobs {
        limits: Limits,
        fetched: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl Registry for Blobs {
        async fn resolve(&self, _: &ImageRef) -> Result<Resolved, RegistryError> {
            Err(RegistryError::new(Reason::NotFound, "none"))
        }
        async fn manifest(&self, _: &ImageRef, _: &str) -> Result<Option<Manifest>, RegistryError> {
            Ok(None)
        }
        async fn blob(&self, _: &ImageRef, d: &Descriptor) -> Result<Bytes, RegistryError> {
            *self.fetched.lock().unwrap() += 1;
            Ok(Bytes::from(vec![0u8; d.size as usize]))
        }
        async fn referrers(
            &self,
            _: &ImageRef,
            _: &Digest,
        ) -> Result<Vec<Descriptor>, RegistryError> {
            Ok(Vec::new())
        }
        fn limits(&self) -> Limits {
            self.limits
        }
    }

    fn layer(seed: u8, size: u64) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/octet-stream",
            "digest": format!("sha256:{}", hex::encode([seed; 32])),
            "size": size,
        }))
        .unwrap()
    }

    fn budget(limits: Limits) -> (Arc<Blobs>, ReviewBudget) {
        let registry = Arc::new(Blobs {
            limits,
            fetched: Mutex::new(0),
        });
        let held = Arc::new(Semaphore::new(permits(limits.max_held_bytes)));
        (registry.clone(), ReviewBudget::new(registry, held))
    }

    #[tokio::test]
    async fn one_digest_is_fetched_once_and_bytes_are_bounded() {
        let limits = Limits {
            review_max_bytes: 1000,
            max_held_bytes: 5000,
            ..Limits::default()
        };
        let (registry, budget) = budget(limits);
        let image: ImageRef = "example.com/a:b".parse().unwrap();
        let mut bytes = SignatureBytes::new(&budget);
        for _ in 0..10 {
            bytes
                .fetch(&image, &layer(1, 600), Kind::Cosign)
                .await
                .unwrap();
        }
        assert_eq!(*registry.fetched.lock().unwrap(), 1);
        assert_eq!(budget.bytes.available_permits(), 400);
        // A second distinct blob does not fit beside the first: the first is let go.
        bytes
            .fetch(&image, &layer(2, 600), Kind::Cosign)
            .await
            .unwrap();
        assert_eq!(budget.bytes.available_permits(), 400);
        assert_eq!(bytes.blobs.len(), 1);
        // A blob bigger than a review may hold is a defect of the signature, decided.
        match bytes.fetch(&image, &layer(3, 1001), Kind::Cosign).await {
            Err(NotOpened::Defect(d)) => assert_eq!(d.failure.reason, Reason::TooLarge),
            other => panic!("{other:?}"),
        }
        drop(bytes);
        assert_eq!(budget.bytes.available_permits(), 1000);
        assert_eq!(budget.held.available_permits(), 5000);
    }

    #[tokio::test]
    async fn a_review_may_start_only_so_many_operations() {
        let (_, budget) = budget(Limits {
            review_max_requests: 3,
            ..Limits::default()
        });
        let image: ImageRef = "example.com/a:b".parse().unwrap();
        for _ in 0..3 {
            assert!(budget.manifest(&image, "x").await.is_ok());
        }
        assert!(!budget.exhausted());
        let e = budget.manifest(&image, "x").await.unwrap_err();
        assert_eq!(e.reason, Reason::Throttled);
        assert!(budget.exhausted());
        assert!(budget.exhaustion().unwrap().contains("3 registry requests"));
    }

    #[tokio::test]
    async fn a_review_may_fetch_only_so_many_bytes() {
        let (registry, budget) = budget(Limits {
            review_max_fetched_bytes: 1000,
            ..Limits::default()
        });
        let image: ImageRef = "example.com/a:b".parse().unwrap();
        assert!(budget.blob(&image, &layer(1, 600)).await.is_ok());
        let e = budget.blob(&image, &layer(2, 600)).await.unwrap_err();
        assert_eq!(e.reason, Reason::Throttled);
        assert_eq!(
            *registry.fetched.lock().unwrap(),
            1,
            "refused before fetching"
        );
        assert!(budget.exhaustion().unwrap().contains("MiB of blobs"));
    }
}
