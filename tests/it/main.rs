//! signet's one integration-test binary (one `tests/it/` binary, so the crate and
//! its dependencies are linked once). Test modules are registered here; shared helpers live in
//! `support` (a real `docker-registry`, an OCI pusher, a Cosign-style signer, fixtures).

// Tests and benchmarks may unwrap: a panic here is a failed run, not a crashed webhook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod cli_errors;
mod cli_serve;
mod cosign_bundles;
mod cosign_keyless;
mod engine_bounds;
mod expiry;
mod harness;
mod image;
mod import_ratify;
mod keyvault;
mod manifests;
mod missing_material;
mod notation;
mod notation_files;
mod notation_revocation;
mod pinning;
mod pull_secrets;
mod registry_auth;
mod registry_faults;
mod registry_faults_content;
mod registry_faults_hosts;
mod registry_memory;
mod registry_multiarch;
mod registry_review;
mod renewal;
mod revocation;
mod server_limits;
mod update_rule;
mod walkthrough;
mod webhook;
