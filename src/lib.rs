//! signet: a Kubernetes validating admission webhook that admits only signed container images.
//!
//! Request path: [`server`] (HTTPS, routes) → [`admission`] (AdmissionReview ↔ images) →
//! [`decision`] (policies, caches, deadline) → [`discovery`] (signatures of a digest) and
//! [`verify`] (Cosign, Notation) → [`registry`] (OCI distribution API) and [`policy`] →
//! [`image`]. Dependencies point one way: Kubernetes types live in `admission` (reviews),
//! `policy::crd`/`policy::kube` (policy resources, watched Secrets and ConfigMaps) and
//! `registry::pull_secrets` (a workload's pull secrets); only `server` knows HTTP serving, only
//! `registry` talks to registries (and `azure` to Entra and Key Vault), only `config` reads
//! arguments. [`run`] is the one composition root.

#![forbid(unsafe_code)]

pub mod admission;
pub mod azure;
pub mod cli;
pub mod config;
pub mod decision;
pub mod discovery;
pub mod engine;
pub mod image;
pub mod import;
pub mod metrics;
pub mod policy;
pub mod reason;
pub mod registry;
pub mod review;
pub mod revocation;
pub mod runtime;
pub mod server;
pub mod telemetry;
pub mod verify;

mod commands;

use std::process::ExitCode;

pub use commands::run;

/// Exit code for "untrusted" (`signet verify`), "denied" (`signet review`) or "errors found"
/// (`signet policy check`).
pub const EXIT_UNTRUSTED: u8 = 1;
/// Exit code for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for "could not check" (`signet verify`): no image is untrusted, but one could not
/// be verified (registry unreachable or refusing, deadline).
pub const EXIT_UNCHECKED: u8 = 3;

/// Maps an exit status number to an [`ExitCode`].
pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}
