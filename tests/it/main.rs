//! signet's one integration-test binary (STYLE.md: one `tests/it/` binary, so the crate and
//! its dependencies are linked once). Test modules are registered here; shared helpers live in
//! `support` (a real `docker-registry`, an OCI pusher, a Cosign-style signer, fixtures).

mod support;

mod harness;
