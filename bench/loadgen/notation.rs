//! The Notation setting of scenario (c): a registry of its own, a signing chain, an OCSP
//! responder, and the in-process verification time of a JWS and a COSE signature.

use std::time::Instant;

use anyhow::bail;
use serde_json::json;

use crate::args::ColdKind;
use crate::limits::{first_verifier, load_policies, trusted_verify_us};
use crate::proxies::OwnRegistry;
use crate::report::Stats;
use crate::reviews::eight_at_a_time;
use crate::support;
use crate::support::notary::{
    ChainSpec, Format, LEAF_SERIAL, RevocationUrls, SigningChain, named_notation_policy,
};
use crate::support::oci::{PushedImage, sha256_digest};
use crate::support::responder::{CertStatus, Responder};

/// A Notation authority's verification settings in scenario (c).
pub const NOTATION_STRICT: &str = "{level: strict}";

/// Scenario (c)'s Notation setting: a docker-registry of its own with a counting proxy in front,
/// one signing chain (root → intermediate → ES256 leaf, by `tests/it/support/notary.rs`) whose
/// root the two Notation policies trust (level strict, `trustedIdentities: ['*']`), and a local
/// OCSP responder answering "good" for the chain's leaves. At start, the in-process time of
/// one verification of a JWS and of a COSE signature: the limits of the Notation rows.
pub struct NotationWorld {
    pub own: OwnRegistry,
    pub chain: SigningChain,
    pub responder: Responder,
    /// Mean µs of `signet::verify::notation::verify`, JWS and COSE.
    pub verify_us: [f64; 2],
}

impl NotationWorld {
    pub async fn start(verify_runs: u32) -> anyhow::Result<NotationWorld> {
        let chain = SigningChain::new(&ChainSpec::default());
        let responder = Responder::start();
        responder.answer_ocsp(&chain.intermediate, &[CertStatus::Good(LEAF_SERIAL)]);
        let mut world = NotationWorld {
            own: OwnRegistry::start().await?,
            chain,
            responder,
            verify_us: [0.0; 2],
        };
        let policy = world.policy("limit", "registry.example.com");
        for (i, format) in [Format::Jws, Format::Cose].into_iter().enumerate() {
            world.verify_us[i] = notation_verify_us(&policy, &world.chain, format, verify_runs)?;
        }
        Ok(world)
    }

    /// A policy `name` covering `host/**` with the Notation authority trusting the chain.
    pub fn policy(&self, name: &str, host: &str) -> String {
        named_notation_policy(
            name,
            &format!("{host}/**"),
            NOTATION_STRICT,
            &self.chain.root.cert_pem,
            None,
        )
    }

    pub fn verify_us(&self, format: Format) -> f64 {
        match format {
            Format::Jws => self.verify_us[0],
            Format::Cose => self.verify_us[1],
        }
    }

    /// Pushes `repo:n{seed}` for each seed and a Notation signature of each, as a referrer
    /// (referrers tag schema), signed as `kind` says.
    pub async fn push(
        &mut self,
        kind: ColdKind,
        repo: &str,
        seeds: std::ops::Range<u64>,
    ) -> Vec<PushedImage> {
        let Some(format) = kind.notation() else {
            return Vec::new();
        };
        let pusher = self.own.registry.pusher();
        // Images 8 at a time; their signatures one at a time: every signature manifest's
        // config is the same `{}` blob, and docker-registry fails concurrent uploads of one
        // blob to one repository now and then (DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN).
        let out = eight_at_a_time(seeds.clone(), |s| {
            let pusher = &pusher;
            async move { pusher.push_image(repo, &format!("n{s}"), s).await }
        })
        .await;
        let leaf = match kind {
            ColdKind::NotationJwsOcspShared => {
                RevocationUrls::ocsp(self.responder.url("/ocsp/shared"))
            }
            _ => RevocationUrls::default(),
        };
        self.chain.reissue_leaf(&leaf);
        for (img, s) in out.iter().zip(seeds) {
            if kind == ColdKind::NotationJwsOcsp {
                // A leaf per image, each naming its own URL: signet caches revocation answers
                // by URL and request, and the request (CertID: issuer, serial) is the same.
                let url = self.responder.url(&format!("/ocsp/{s}"));
                self.chain.reissue_leaf(&RevocationUrls::ocsp(url));
            }
            self.chain.sign_and_push(&pusher, img, format, None).await;
        }
        out
    }

    /// The responder's own round trip, the floor of an OCSP check: the first OCSP request it
    /// received, replayed `n` times, each on a new connection (its server answers one request
    /// per connection). `None` before any OCSP request.
    pub async fn responder_rtt(&self, n: usize) -> Option<Stats> {
        let request = self.responder.ocsp_requests().first()?.body.clone();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .ok()?;
        let url = self.responder.url("/ocsp/rtt");
        let mut stats = Stats::empty();
        let start = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let answer = client
                .post(&url)
                .header("content-type", "application/ocsp-request")
                .body(request.clone())
                .send()
                .await;
            let ok = match answer {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if ok {
                stats.ok += 1;
                stats.hist.saturating_record(t0.elapsed().as_nanos() as u64);
            } else {
                stats.errors += 1;
            }
        }
        stats.elapsed = start.elapsed();
        Some(stats)
    }
}

/// An image manifest that exists nowhere, as the subject of an in-process verification.
pub fn unpushed_image() -> PushedImage {
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": support::oci::OCI_MANIFEST,
        "config": {"mediaType": support::oci::OCI_CONFIG, "digest": sha256_digest(b"{}"), "size": 2},
        "layers": [],
    }))
    .expect("manifest JSON");
    PushedImage {
        repo: "bench/limit".into(),
        tag: None,
        digest: sha256_digest(&manifest),
        media_type: support::oci::OCI_MANIFEST.into(),
        size: manifest.len() as u64,
        manifest,
        platform: None,
        children: Vec::new(),
    }
}

/// Mean µs of `signet::verify::notation::verify` of one signature by `chain` in `format`, under
/// the Notation authority of `policy` (no I/O: the floor of a Notation verification).
pub fn notation_verify_us(
    policy: &str,
    chain: &SigningChain,
    format: Format,
    n: u32,
) -> anyhow::Result<f64> {
    use signet::policy::Verifier;
    use signet::verify::notation::NotationSignature;
    use signet::verify::{Context, Subject};
    let set = load_policies(policy)?;
    let Some(Verifier::Notation(authority)) = first_verifier(&set) else {
        bail!("the Notation policy has no Notation authority");
    };
    let image = unpushed_image();
    let subject = Subject {
        digest: image
            .digest
            .parse()
            .map_err(|e| anyhow::anyhow!("digest: {e:?}"))?,
        media_type: image.media_type.clone(),
        size: image.size,
    };
    let signatures = [NotationSignature {
        manifest_digest: sha256_digest(b"signature manifest")
            .parse()
            .map_err(|e| anyhow::anyhow!("digest: {e:?}"))?,
        media_type: format.media_type().to_owned(),
        envelope: chain.sign(format, &image, None).into(),
    }];
    let ctx = Context {
        now: std::time::SystemTime::now(),
    };
    trusted_verify_us(&format!("{format:?}"), n, || {
        signet::verify::notation::verify(authority, &subject, &signatures, &ctx)
    })
}
