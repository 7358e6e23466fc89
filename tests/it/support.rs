//! Test support shared by the integration tests. The signers, registries and fake servers live
//! in the `signet-testkit` crate (crates/testkit), shared with the unit tests, the benchmarks and
//! the `signet-dev` tool, and are re-exported here under their old paths
//! (`crate::support::cosign::…`); `signet` starts the real signet server in process.

pub use signet_testkit::{
    cosign, fake, faulty, fixtures, layout, notary, oci, registry, responder, review, sigstore,
    token,
};

#[allow(dead_code)]
pub mod signet;
