//! The `notation` authority: Notary Project trust-policy semantics (levels, trust stores,
//! trusted identities). Placeholder until the Notation verifier lands: a policy that uses it is
//! a load error, never silently ignored.

use std::path::Path;

/// The YAML form (accepted shape only; validated by [`NotationAuthority::load`]).
pub type NotationSpec = serde_json::Value;

/// A resolved Notation authority.
#[derive(Debug, Clone)]
pub struct NotationAuthority {
    _private: (),
}

impl NotationAuthority {
    /// Resolves a spec, reading trust-store files relative to `base`.
    pub fn load(_spec: &NotationSpec, _base: &Path) -> Result<(Self, Vec<u8>), String> {
        Err("notation authorities are not supported by this build yet".into())
    }
}
