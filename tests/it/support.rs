//! Test support shared by the integration tests:
//! - `registry`: a real `docker-registry` process per test ([`registry::TestRegistry`]);
//! - `oci`: pushes images, indexes and referrers (with the referrers tag schema);
//! - `cosign`: a Cosign-style signer independent of signet's verifier;
//! - `fixtures`: real AdmissionReview bodies and image substitution.
//!
//! Each test module uses a different subset, so unused helpers are not dead code.
#![allow(dead_code)]

pub mod cosign;
pub mod fixtures;
pub mod oci;
pub mod registry;
