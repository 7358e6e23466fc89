//! signet's one integration-test binary (STYLE.md: one `tests/it/` binary, so the crate and
//! its dependencies are linked once). Test modules are registered here; shared helpers live in
//! `support` (a real `docker-registry`, an OCI pusher, a Cosign-style signer, fixtures).

mod support;

mod cli;
mod cosign_keyless;
mod harness;
mod manifests;
mod notation;
mod notation_files;
mod notation_revocation;
mod registry_auth;
mod registry_faults;
mod registry_multiarch;
mod registry_review;
mod revocation;
mod server_limits;
mod webhook;
