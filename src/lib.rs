//! signet: a Kubernetes validating admission webhook that admits only signed images.
pub mod image;
pub mod policy;
pub mod reason;
pub mod verify;
