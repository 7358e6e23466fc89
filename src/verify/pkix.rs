//! The PKIX layer the Notation and Cosign verifiers share: one DER walker ([`der`]), one
//! table from signature algorithms to aws-lc-rs verification algorithms ([`algorithms`]) and
//! one RFC 3161 timestamp-token verifier ([`timestamp`]). Each format keeps only what is its
//! own: which trust anchors a timestamp authority chains to, which checks its specification
//! adds, and how a failure is worded.
//!
//! Pure like the rest of `verify`: bytes in, verdicts out, no I/O.

pub mod algorithms;
pub mod der;
pub mod timestamp;
