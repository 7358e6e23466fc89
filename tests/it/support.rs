//! Test support shared by the integration tests:
//! - `registry`: a real `docker-registry` process per test ([`registry::TestRegistry`]);
//! - `oci`: pushes images, indexes and referrers (with the referrers tag schema);
//! - `cosign`: a Cosign-style signer independent of signet's verifier;
//! - `fixtures`: real AdmissionReview bodies and image substitution;
//! - `token`: a Docker token server for Bearer-auth registries;
//! - `fake`: misbehaving servers (a black hole, a scripted liar);
//! - `layout`: pushes the shared Notation conformance OCI layouts (skips when absent).
//!
//! Each test module uses a different subset, so unused helpers are not dead code.
#![allow(dead_code)]

pub mod cosign;
pub mod fake;
pub mod fixtures;
pub mod layout;
pub mod oci;
pub mod registry;
pub mod token;
