//! Test support shared by the integration tests:
//! - `registry`: a real `docker-registry` process per test ([`registry::TestRegistry`]);
//! - `oci`: pushes images, indexes and referrers (with the referrers tag schema);
//! - `azure`: a test Entra ID token endpoint and Key Vault over HTTPS;
//! - `cosign`: a Cosign-style signer independent of signet's verifier;
//! - `sigstore`: a test Sigstore (Fulcio CA, Rekor, CT log, trusted root) for keyless
//!   `.sig` signatures and cosign v3 bundle referrers, also independent of the verifier;
//! - `fixtures`: real AdmissionReview bodies and image substitution;
//! - `token`: a Docker token server for Bearer-auth registries;
//! - `fake`: misbehaving servers (a black hole, a scripted liar);
//! - `layout`: pushes the shared Notation conformance OCI layouts (skips when absent);
//! - `notary`: a Notation signer (test PKI, JWS and COSE envelopes, an `openssl ts` TSA),
//!   independent of signet's verifier;
//! - `responder`: a CRL and OCSP responder (`openssl ocsp` per request) that logs requests.
//!
//! Each test module uses a different subset, so unused helpers are not dead code.
#![allow(dead_code)]

pub mod azure;
pub mod cosign;
pub mod fake;
pub mod faulty;
pub mod fixtures;
pub mod layout;
pub mod notary;
pub mod oci;
pub mod registry;
pub mod responder;
pub mod signet;
pub mod sigstore;
pub mod token;
