//! Import of an existing Notation `trustpolicy.json` (version 1.0) and its trust-store
//! directory, unchanged.
//!
//! Each trust-policy statement becomes a [`NotationAuthority`] built through the same code as
//! the YAML form, so both paths validate alike. Trust stores named `type:name` resolve to
//! `<root>/x509/<type>/<name>/`, Notation's own layout. The document-level rules of the spec
//! are checked here: unique statement names, `*` alone in its `registryScopes`, at most one
//! global statement, no repository in two statements, and no `skip` on the global scope.
//!
//! Like `policy`: must not import `registry` or `verify`.

use std::collections::HashMap;
use std::path::Path;

use super::{
    LoadError, NotationAuthority, NotationSpec, SignatureVerificationSpec, StoreType,
    TrustStoreSpec,
};

/// The largest `trustpolicy.json` accepted; real ones are a few KiB.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// Which artifacts a statement covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryScopes {
    /// `["*"]`: every artifact no exact scope claims.
    Global,
    /// Fully qualified repositories (`registry.example.com/team/app`), matched exactly.
    Repositories(Vec<String>),
}

/// One statement of a trust policy document, resolved.
#[derive(Debug, Clone)]
pub struct ImportedStatement {
    pub name: String,
    pub registry_scopes: RegistryScopes,
    pub authority: NotationAuthority,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document {
    version: String,
    trust_policies: Vec<Statement>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Statement {
    name: String,
    registry_scopes: Vec<String>,
    signature_verification: SignatureVerificationSpec,
    #[serde(default)]
    trust_stores: Vec<String>,
    #[serde(default)]
    trusted_identities: Vec<String>,
}

/// Why an imported `trustpolicy.json` is malformed as a whole, or one statement's name, scopes
/// or trust-store list is (`at` names the statement: `trust policy "name"`).
#[derive(Debug, thiserror::Error)]
pub enum TrustPolicyError {
    #[error("the trust policy is {0} bytes, more than the {MAX_DOCUMENT}-byte limit")]
    TooLarge(usize),
    #[error("invalid trust policy JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("trust policy version {0:?} is not supported (only \"1.0\" is)")]
    Version(String),
    #[error("trustPolicies is empty")]
    NoStatements,
    #[error("a trust policy statement has an empty name")]
    EmptyName,
    #[error("{at}: the name is used by two statements")]
    NameTwice { at: String },
    #[error("{at}: {source}")]
    Scopes {
        at: String,
        #[source]
        source: ScopeError,
    },
    #[error("{at}: only one statement may use the global scope \"*\", and {other:?} already does")]
    GlobalTwice { at: String, other: String },
    #[error(
        "{at}: level skip cannot be used with the global scope \"*\"; list the repositories \
         to skip"
    )]
    GlobalSkip { at: String },
    #[error("{at}: registryScopes lists {repository:?} twice")]
    ScopeTwice { at: String, repository: String },
    #[error(
        "{at}: registry scope {repository:?} is also in trust policy {other:?}; a repository \
         may be in only one statement"
    )]
    ScopeClaimed {
        at: String,
        repository: String,
        other: String,
    },
    #[error("{at}: trust store {item:?} is not of the form type:name (e.g. ca:acme)")]
    StoreItem { at: String, item: String },
    #[error("{at}: trust store type {kind:?} is not ca, signingAuthority or tsa")]
    StoreType { at: String, kind: String },
}

/// Why a statement's `registryScopes` is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("registryScopes is empty")]
    Empty,
    #[error("the global scope \"*\" cannot be combined with other scopes")]
    GlobalWithOthers,
    #[error(
        "registry scope {0:?} contains '*': wildcards are not supported, only the single \
         global scope \"*\""
    )]
    Wildcard(String),
    #[error(
        "registry scope {0:?} is not a fully qualified repository such as \
         registry.example.com/team/app"
    )]
    NotARepository(String),
}

/// Parses a Notation `trustpolicy.json` and resolves its trust stores under `trust_store_root`
/// (the directory that holds `x509/`). Errors name the statement and the rule broken.
pub fn import_trust_policy(
    json: &str,
    trust_store_root: &Path,
) -> Result<Vec<ImportedStatement>, LoadError> {
    if json.len() > MAX_DOCUMENT {
        return Err(TrustPolicyError::TooLarge(json.len()).into());
    }
    let doc: Document = serde_json::from_str(json).map_err(TrustPolicyError::Json)?;
    if doc.version != "1.0" {
        return Err(TrustPolicyError::Version(doc.version).into());
    }
    if doc.trust_policies.is_empty() {
        return Err(TrustPolicyError::NoStatements.into());
    }
    let mut out: Vec<ImportedStatement> = Vec::with_capacity(doc.trust_policies.len());
    // Repository → the statement that claims it, to report overlaps by name.
    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut global: Option<String> = None;
    for st in doc.trust_policies {
        let at = format!("trust policy {:?}", st.name);
        if st.name.trim().is_empty() {
            return Err(TrustPolicyError::EmptyName.into());
        }
        if out.iter().any(|o| o.name == st.name) {
            return Err(TrustPolicyError::NameTwice { at }.into());
        }
        let scopes =
            parse_scopes(&st.registry_scopes).map_err(|source| TrustPolicyError::Scopes {
                at: at.clone(),
                source,
            })?;
        match &scopes {
            RegistryScopes::Global => {
                if let Some(other) = &global {
                    return Err(TrustPolicyError::GlobalTwice {
                        at,
                        other: other.clone(),
                    }
                    .into());
                }
                if st.signature_verification.level == super::Level::Skip {
                    return Err(TrustPolicyError::GlobalSkip { at }.into());
                }
                global = Some(st.name.clone());
            }
            RegistryScopes::Repositories(repos) => {
                for r in repos {
                    if let Some(other) = claimed.insert(r.clone(), st.name.clone()) {
                        let repository = r.clone();
                        let e = if other == st.name {
                            TrustPolicyError::ScopeTwice { at, repository }
                        } else {
                            TrustPolicyError::ScopeClaimed {
                                at,
                                repository,
                                other,
                            }
                        };
                        return Err(e.into());
                    }
                }
            }
        }
        let mut stores: Vec<TrustStoreSpec> = Vec::with_capacity(st.trust_stores.len());
        // Items are `type:name`; the spec also shows `ca:acme,tsa:acme-tsa` in one item.
        let names = st
            .trust_stores
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim);
        for s in names {
            let Some((kind, name)) = s.split_once(':') else {
                return Err(TrustPolicyError::StoreItem {
                    at,
                    item: s.to_string(),
                }
                .into());
            };
            let kind = StoreType::parse(kind).ok_or_else(|| TrustPolicyError::StoreType {
                at: at.clone(),
                kind: kind.to_string(),
            })?;
            super::validate_store_name(name).map_err(|source| LoadError::Store {
                at: at.clone(),
                source,
            })?;
            stores.push(TrustStoreSpec {
                kind,
                name: name.to_string(),
                certificates: Vec::new(),
                directory: Some(format!("x509/{}/{name}", kind.as_str())),
            });
        }
        let spec = NotationSpec {
            signature_verification: st.signature_verification,
            trust_stores: stores,
            trusted_identities: st.trusted_identities,
        };
        let (authority, _) = NotationAuthority::load(
            &spec,
            &crate::policy::material::Resolver::files(),
            &crate::policy::material::Context::file(trust_store_root),
        )
        .map_err(|source| LoadError::Statement {
            at,
            source: Box::new(source),
        })?;
        out.push(ImportedStatement {
            name: st.name,
            registry_scopes: scopes,
            authority,
        });
    }
    Ok(out)
}

fn parse_scopes(scopes: &[String]) -> Result<RegistryScopes, ScopeError> {
    if scopes.is_empty() {
        return Err(ScopeError::Empty);
    }
    if scopes.iter().any(|s| s == "*") {
        if scopes.len() > 1 {
            return Err(ScopeError::GlobalWithOthers);
        }
        return Ok(RegistryScopes::Global);
    }
    for s in scopes {
        if s.contains('*') {
            return Err(ScopeError::Wildcard(s.clone()));
        }
        // Fully qualified: a registry host and at least one repository path component, with
        // no tag or digest. References are not expanded (the spec forbids it).
        let valid = match s.split_once('/') {
            Some((host, path)) => {
                !host.is_empty()
                    && !path.is_empty()
                    && !s.contains('@')
                    && path.split('/').all(|c| {
                        !c.is_empty()
                            && c.bytes().all(|b| {
                                b.is_ascii_lowercase()
                                    || b.is_ascii_digit()
                                    || matches!(b, b'.' | b'_' | b'-')
                            })
                    })
                    && !path.contains(':')
            }
            None => false,
        };
        if !valid {
            return Err(ScopeError::NotARepository(s.clone()));
        }
    }
    Ok(RegistryScopes::Repositories(scopes.to_vec()))
}
