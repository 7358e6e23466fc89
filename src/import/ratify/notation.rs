//! Notation verifiers: trust stores from `verificationCertStores` (the flat `name: [providers]`
//! form and the nested `ca:` / `tsa:` / `signingAuthority:` form), statements from
//! `trustPolicyDoc`.
//!
//! Like `import`: imports `policy` only.

use serde_yaml::Value;

use super::output::{AuthorityOut, CertOut, NotationOut, StoreOut, VaultRef};
use super::{Cx, Kind, Resource, Severity, Unit, field, keys_of, text};
use crate::policy::ImageGlob;
use crate::policy::notation::{Level, SignatureVerificationSpec};

impl Cx {
    pub(super) fn notation(&mut self, r: &Resource) -> Vec<Unit> {
        let params = r.params().cloned().unwrap_or(Value::Null);
        for k in keys_of(&params) {
            if ![
                "verificationCertStores",
                "verificationCerts",
                "trustPolicyDoc",
            ]
            .contains(&k.as_str())
            {
                self.find(
                    Severity::Note,
                    r,
                    &format!("spec.parameters.{k}"),
                    "unknown parameter; ignored",
                );
            }
        }
        // Store name → (type when the nested form gives it, provider names).
        let mut stores: Vec<(Option<String>, String, Vec<String>)> = Vec::new();
        if let Some(m) = field(&params, "verificationCertStores").and_then(Value::as_mapping) {
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                match v {
                    Value::Sequence(list) => stores.push((
                        None,
                        k.to_string(),
                        list.iter().filter_map(|x| text(Some(x))).collect(),
                    )),
                    Value::Mapping(inner) => {
                        for (name, list) in inner {
                            let (Some(name), Some(list)) = (name.as_str(), list.as_sequence())
                            else {
                                continue;
                            };
                            stores.push((
                                Some(k.to_string()),
                                name.to_string(),
                                list.iter().filter_map(|x| text(Some(x))).collect(),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        if field(&params, "verificationCerts").is_some() {
            let (sev, msg) = if stores.is_empty() {
                (
                    Severity::Dropped,
                    "certificate paths inside the Ratify pod cannot be carried over: put the certificates in a KeyManagementProvider, or in the policy's trustStores",
                )
            } else {
                (
                    Severity::Note,
                    "superseded by verificationCertStores, as in Ratify; ignored",
                )
            };
            self.find(sev, r, "spec.parameters.verificationCerts", msg);
        }
        let doc = match field(&params, "trustPolicyDoc") {
            Some(Value::String(s)) => serde_yaml::from_str::<Value>(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        let Some(statements) = field(&doc, "trustPolicies").and_then(Value::as_sequence) else {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.trustPolicyDoc",
                "missing or without trustPolicies: nothing to verify with",
            );
            return Vec::new();
        };
        if let Some(v) = text(field(&doc, "version"))
            && v != "1.0"
        {
            self.find(
                Severity::Note,
                r,
                "spec.parameters.trustPolicyDoc.version",
                &format!("{v:?}: converted with the 1.0 semantics"),
            );
        }
        let mut units = Vec::new();
        for (i, st) in statements.iter().enumerate() {
            if let Some(u) = self.statement(r, i, st, &stores) {
                units.push(u);
            }
        }
        units
    }

    fn statement(
        &mut self,
        r: &Resource,
        i: usize,
        st: &Value,
        stores: &[(Option<String>, String, Vec<String>)],
    ) -> Option<Unit> {
        let name = text(field(st, "name")).unwrap_or_else(|| format!("statement-{i}"));
        let at = format!("spec.parameters.trustPolicyDoc.trustPolicies[{i}] ({name:?})");
        let dropped = |cx: &mut Cx, what: &str, msg: String| {
            cx.find(Severity::Dropped, r, &format!("{at}{what}"), &msg);
            None
        };
        let verification: SignatureVerificationSpec =
            match field(st, "signatureVerification").map(|v| serde_yaml::from_value(v.clone())) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    return dropped(
                        self,
                        ".signatureVerification",
                        format!("not convertible: {e}"),
                    );
                }
                None => return dropped(self, ".signatureVerification", "missing".into()),
            };
        let mut images = Vec::new();
        let scopes: Vec<String> = field(st, "registryScopes")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|x| text(Some(x))).collect())
            .unwrap_or_default();
        if scopes.is_empty() {
            return dropped(self, ".registryScopes", "missing or empty".into());
        }
        for s in &scopes {
            match notation_scope(s) {
                Ok(g) => images.push(g),
                Err(e) => {
                    self.find(
                        Severity::Dropped,
                        r,
                        &format!("{at}.registryScopes"),
                        &format!("scope {s:?} not converted: {e}"),
                    );
                }
            }
        }
        if images.is_empty() {
            return None;
        }
        let identities: Vec<String> = field(st, "trustedIdentities")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|x| text(Some(x))).collect())
            .unwrap_or_default();
        let refs: Vec<String> = field(st, "trustStores")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|x| text(Some(x))).collect())
            .unwrap_or_default();
        let skip = verification.level == Level::Skip;
        let mut trust_stores = Vec::new();
        let mut trusted_identities = identities;
        if skip {
            if !refs.is_empty() || !trusted_identities.is_empty() {
                self.find(
                    Severity::Note,
                    r,
                    &at,
                    "level skip verifies nothing: its trustStores and trustedIdentities are left out",
                );
            }
            trusted_identities.clear();
        } else {
            for reference in refs.iter().flat_map(|s| s.split(',')).map(str::trim) {
                if let Some(s) = self.trust_store(r, &at, reference, stores) {
                    trust_stores.push(s);
                }
            }
            if !trust_stores
                .iter()
                .any(|s: &StoreOut| s.kind == "ca" || s.kind == "signingAuthority")
            {
                return dropped(
                    self,
                    ".trustStores",
                    "no ca or signingAuthority trust store with certificates could be converted, so no signature can verify; the statement is left out".into(),
                );
            }
            if trusted_identities.is_empty() {
                return dropped(
                    self,
                    ".trustedIdentities",
                    "missing or empty (Notation rejects the statement); left out".into(),
                );
            }
        }
        let verifier = r.name.clone();
        if skip {
            self.find(
                Severity::Changed,
                r,
                &at,
                "level skip: signet trusts these images without looking for a signature (Ratify still needed a signature artifact to exist, unverified); the statement becomes a policy of its own, so it never stands in for another verifier",
            );
        }
        Some(Unit {
            skip,
            kind: Kind::Notation,
            authority: AuthorityOut {
                name: String::new(),
                cosign: None,
                notation: Some(NotationOut {
                    signature_verification: verification,
                    trust_stores,
                    trusted_identities,
                }),
            },
            verifier,
            statement: name,
            images,
        })
    }

    /// Resolves `type:name` through `verificationCertStores` to certificate sources.
    fn trust_store(
        &mut self,
        r: &Resource,
        at: &str,
        reference: &str,
        stores: &[(Option<String>, String, Vec<String>)],
    ) -> Option<StoreOut> {
        let at = format!("{at}.trustStores {reference:?}");
        let Some((kind, name)) = reference.split_once(':') else {
            self.find(
                Severity::Dropped,
                r,
                &at,
                "not of the form type:name; left out",
            );
            return None;
        };
        if !matches!(kind, "ca" | "signingAuthority" | "tsa") {
            self.find(
                Severity::Dropped,
                r,
                &at,
                &format!("trust store type {kind:?} is not ca, signingAuthority or tsa; left out"),
            );
            return None;
        }
        let Some((_, _, providers)) = stores
            .iter()
            .find(|(t, n, _)| n == name && t.as_deref().is_none_or(|t| t == kind))
        else {
            self.find(
                Severity::Dropped,
                r,
                &at,
                "not in verificationCertStores; left out",
            );
            return None;
        };
        let mut certificates = Vec::new();
        for pname in providers.clone() {
            let Some(p) = self.providers.get(&pname).or_else(|| {
                pname
                    .rsplit_once('/')
                    .and_then(|(_, n)| self.providers.get(n))
            }) else {
                let msg = self.missing(&pname, "certificates");
                self.find(Severity::Dropped, r, &at, &msg);
                continue;
            };
            let before = certificates.len();
            if let Some(pem) = &p.inline_certificates {
                certificates.push(CertOut {
                    inline: Some(pem.clone()),
                    key_vault: None,
                });
            }
            if let Some(v) = &p.vault {
                for c in &v.certificates {
                    certificates.push(CertOut {
                        inline: None,
                        key_vault: Some(VaultRef {
                            vault_uri: v.uri.clone(),
                            name: c.name.clone(),
                            version: c.version.clone(),
                            chain: Some(true),
                        }),
                    });
                }
            }
            if certificates.len() == before {
                let id = p.id.clone();
                self.find(
                    Severity::Dropped,
                    r,
                    &at,
                    &format!("provider {id} holds no certificate (a key cannot root a Notation trust store)"),
                );
            }
        }
        if certificates.is_empty() {
            return None;
        }
        Some(StoreOut {
            kind: kind.to_string(),
            name: sanitize_store(name),
            certificates,
        })
    }
}

/// Trust store names: letters, digits, '_', '.', '-'.
fn sanitize_store(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Why a Ratify Notation registry scope does not convert.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScopeError {
    #[error(
        "Notation scopes are \"*\" or a fully qualified repository; wildcards inside a scope \
         are not supported"
    )]
    Wildcard,
    #[error("{0}")]
    Repository(#[from] crate::policy::GlobError),
}

/// A Notation registry scope: `*`, or a repository named exactly.
pub(super) fn notation_scope(scope: &str) -> Result<String, ScopeError> {
    if scope == "*" {
        return Ok("**".into());
    }
    if scope.contains('*') {
        return Err(ScopeError::Wildcard);
    }
    ImageGlob::parse(scope)?;
    Ok(scope.to_string())
}
