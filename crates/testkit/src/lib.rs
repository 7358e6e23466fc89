//! signet's test kit, shared by the unit tests, the integration tests (`tests/it`), the
//! benchmarks (`bench/`) and the `signet-dev` walk-through tool:
//! - `registry`: a real `docker-registry` process per test ([`registry::TestRegistry`]);
//! - `memory`: an in-process OCI registry, contents in memory, for fast engine tests
//!   ([`memory::MemoryRegistry`]; referrers API switchable);
//! - `oci`: pushes images, indexes and referrers (with the referrers tag schema);
//! - `cosign`: a Cosign-style signer independent of signet's verifier;
//! - `sigstore`: a test Sigstore (Fulcio CA, Rekor, CT log, trusted root) for keyless
//!   `.sig` signatures and cosign v3 bundle referrers, also independent of the verifier;
//! - `fixtures`: real AdmissionReview bodies and image substitution;
//! - `token`: a Docker token server for Bearer-auth registries;
//! - `fault`: a fault-injection HTTP server (scripted replies, delays, hangs, trickles, lying
//!   lengths, a black hole) that records every request before answering it;
//! - `layout`: pushes the shared Notation conformance OCI layouts (skips when absent);
//! - `notary`: a Notation signer (test PKI, JWS and COSE envelopes, an `openssl ts` TSA),
//!   independent of signet's verifier;
//! - `openssl`: an openssl CA making CRLs, OCSP answers and responder certificates;
//! - `responder`: a CRL and OCSP responder (`openssl ocsp` per request) that logs requests;
//! - `policy`: policy documents as text;
//! - `review`: assertions on AdmissionReview responses.
//!
//! It does not depend on `signet`: signet's own unit tests use it, and a dependency back would
//! build a second copy of signet's types. Helpers that start signet itself live with the tests
//! (`tests/it/support/signet.rs`).
//!
//! Test code: a failed expectation panics with a message, which fails the test that asked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cosign;
pub mod fault;
pub mod fixtures;
pub mod layout;
pub mod memory;
pub mod notary;
pub mod oci;
pub mod openssl;
pub mod policy;
pub mod registry;
pub mod responder;
pub mod review;
pub mod sigstore;
pub mod token;
