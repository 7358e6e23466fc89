//! Notation verification. Placeholder: no policy can configure a Notation authority yet (the
//! loader rejects it), so this is never reached with a real authority.

use super::{Context, Failure, NotationSignature, Outcome, Subject};
use crate::policy::notation::NotationAuthority;
use crate::reason::Reason;

/// Verifies Notary Project signatures of `subject` under one authority.
pub fn verify(
    _authority: &NotationAuthority,
    _subject: &Subject,
    _signatures: &[NotationSignature],
    _ctx: &Context,
) -> Outcome {
    Outcome::Failed(Failure::new(
        Reason::Internal,
        "Notation verification is not available in this build",
    ))
}
