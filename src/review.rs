//! One admission review, from a decoded request to the response: what `POST /validate`,
//! `POST /mutate` and `signet review` all run, so that readiness, the answer, its log line and
//! its metrics are the same on every path.
//!
//! Knows neither HTTP (the server reads bodies, decodes them off the async workers and writes
//! the bytes) nor registries (the engine does). Must not import hyper or `server`.

use std::time::Instant;

use tracing::Instrument;

use crate::admission::{self, Action, Review};
use crate::decision::{Engine, Verdict};
use crate::metrics::Metrics;

/// Which webhook asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The `ValidatingWebhookConfiguration`: allow, deny or warn.
    Validate,
    /// The optional `MutatingWebhookConfiguration`: always allow, pinning each trusted image
    /// written by tag to the digest that was verified. The validating route still decides.
    Mutate,
}

/// The answer to one review, with the decision label it was counted under.
pub struct Answer {
    /// The response AdmissionReview, as JSON.
    pub response: Vec<u8>,
    /// `allowed`, `denied` or `warned` for the validating route; `pinned` or `unchanged` for
    /// the pinning route.
    pub decision: &'static str,
}

/// What is shared by every review: the engine, the metrics, and whether a valid policy set is
/// loaded (without one, every image to check is denied: never "allow all").
pub struct Reviewer<'a> {
    pub engine: &'a Engine,
    pub metrics: &'a Metrics,
    pub ready: bool,
}

const NOT_READY: &str =
    "signet has no valid policy set loaded; every image is denied until the policies are fixed";

impl Reviewer<'_> {
    /// Whose registry credentials the images are checked with, read only when the engine uses
    /// pull secrets: a cache hit should not copy names it will never look at.
    fn workload(&self, review: &Review) -> Option<crate::registry::Workload> {
        if self.engine.uses_pull_secrets() {
            review.workload()
        } else {
            None
        }
    }

    /// Answers `review` before `deadline`; `start` is when the request arrived (for the log).
    pub async fn answer(
        &self,
        route: Route,
        review: &Review,
        start: Instant,
        deadline: Instant,
    ) -> Answer {
        let span = review.span();
        async {
            let (answer, detail) = match route {
                Route::Validate => self.validate(review, deadline).await,
                Route::Mutate => self.mutate(review, deadline).await,
            };
            let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
            match route {
                Route::Validate => {
                    self.metrics.review(answer.decision);
                    tracing::info!(decision = answer.decision, detail = %detail, dry_run = review.dry_run(), elapsed_ms, "admission review");
                }
                Route::Mutate => {
                    self.metrics
                        .pinning_reviews
                        .with_label_values(&[answer.decision])
                        .inc();
                    tracing::info!(
                        decision = answer.decision,
                        detail = %detail,
                        dry_run = review.dry_run(),
                        elapsed_ms,
                        "pinning review"
                    );
                }
            }
            answer
        }
        .instrument(span)
        .await
    }

    async fn validate(&self, review: &Review, deadline: Instant) -> (Answer, String) {
        let answer = |response, decision| Answer { response, decision };
        match &review.action {
            Action::Check(_) if !self.ready => {
                let v = Verdict {
                    allowed: false,
                    denials: vec![NOT_READY.into()],
                    ..Default::default()
                };
                (
                    answer(admission::respond(review, &v), "denied"),
                    NOT_READY.into(),
                )
            }
            Action::Check(images) => {
                let v = self
                    .engine
                    .decide_for(
                        images,
                        review.namespace(),
                        self.workload(review).as_ref(),
                        deadline,
                    )
                    .await;
                let decision = if !v.allowed {
                    "denied"
                } else if !v.warnings.is_empty() {
                    "warned"
                } else {
                    "allowed"
                };
                // One entry per failing image: bounded, or a review of thousands of images
                // writes a log line of megabytes.
                let detail = crate::telemetry::join_bounded(
                    if v.allowed { &v.warnings } else { &v.denials },
                    "; ",
                );
                for (key, value) in &v.audit_annotations {
                    tracing::info!(annotation = %key, %value, "audit: image not trusted");
                }
                admission::log_admitted(&v);
                (answer(admission::respond(review, &v), decision), detail)
            }
            Action::Skip(why) => {
                self.metrics
                    .admission_skipped
                    .with_label_values(&[why.as_str()])
                    .inc();
                (
                    answer(admission::respond_action(review), "allowed"),
                    why.to_string(),
                )
            }
            Action::Reject(why) => (
                answer(admission::respond_action(review), "denied"),
                why.clone(),
            ),
        }
    }

    /// Pins only what was verified: an image that is untrusted, undecided or not covered is
    /// left as written, and the validating route gives the verdict.
    async fn mutate(&self, review: &Review, deadline: Instant) -> (Answer, String) {
        let unchanged = |why: &str| {
            (
                Answer {
                    response: admission::respond_patch(review, json_patch::Patch(Vec::new())),
                    decision: "unchanged",
                },
                why.to_string(),
            )
        };
        let Action::Check(images) = &review.action else {
            return unchanged("nothing to check");
        };
        if !self.ready {
            return unchanged("no valid policy set loaded");
        }
        let v = self
            .engine
            .decide_for(
                images,
                review.namespace(),
                self.workload(review).as_ref(),
                deadline,
            )
            .await;
        let pins = v.pins(review.is_template());
        let patch = review.pin_patch(&pins);
        if patch.0.is_empty() {
            return unchanged("no trusted image written by tag");
        }
        let detail = crate::telemetry::join_bounded(
            &pins
                .iter()
                .map(|(image, digest)| format!("{image}@{digest}"))
                .collect::<Vec<_>>(),
            "; ",
        );
        (
            Answer {
                response: admission::respond_patch(review, patch),
                decision: "pinned",
            },
            detail,
        )
    }
}
