//! Test support shared by the integration tests. The signers, registries and fake servers live
//! in the `signet-testkit` crate (crates/testkit), shared with the unit tests, the benchmarks and
//! the `signet-dev` tool, and are re-exported here under their old paths
//! (`crate::support::cosign::…`); `signet` starts the real signet server in process. Helpers
//! that need signet's own types stay here, beside it, and so does `azure` (a test Entra ID token
//! endpoint and Key Vault over HTTPS), used by the Key Vault tests alone.
//!
//! Each test module uses a different subset, so unused helpers are not dead code.
#![allow(dead_code)]

pub use signet_testkit::{
    cosign, fault, fixtures, layout, memory, notary, oci, registry, responder, review, sigstore,
    token,
};

pub mod azure;
pub mod signet;
