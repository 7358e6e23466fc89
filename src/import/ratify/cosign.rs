//! Cosign verifiers: `trustPolicies` with keys from providers or keyless identities; the
//! legacy single `key` and `rekorURL` parameters are reported.
//!
//! Like `import`: imports `policy` only.

use serde_yaml::Value;

use super::output::{
    AuthorityOut, CosignOut, FileOut, IdentityOut, KeyOut, KeylessOut, Required, VaultRef,
};
use super::{
    Cx, Finding, Kind, PUBLIC_REKOR, Resource, Severity, TRUST_ROOT_FILE, Unit, field, flag,
    keys_of, text,
};
use crate::policy::GlobError;
use crate::policy::ImageGlob;

/// Why a Ratify Cosign scope cannot become image globs.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScopeError {
    #[error("Ratify allows one '*', only at the end")]
    Star,
    #[error(transparent)]
    Glob(#[from] GlobError),
}

/// A Cosign trust-policy scope: `*`, a prefix ending in `*` (matched against the whole
/// reference), or an exact reference. Returns the globs and, when they cover more than the
/// scope did, why.
pub(super) fn cosign_scope(scope: &str) -> Result<(Vec<String>, Option<String>), ScopeError> {
    if scope == "*" {
        return Ok((vec!["**".into()], None));
    }
    let stars = scope.matches('*').count();
    if stars > 1 || (stars == 1 && !scope.ends_with('*')) {
        return Err(ScopeError::Star);
    }
    let check = |globs: Vec<String>, note: Option<String>| {
        for g in &globs {
            ImageGlob::parse(g)?;
        }
        Ok((globs, note))
    };
    if let Some(prefix) = scope.strip_suffix('*') {
        let Some((host, path)) = prefix.split_once('/') else {
            // A prefix of the registry host.
            if prefix.contains('.') || prefix.contains(':') {
                return check(vec![format!("{prefix}*")], None);
            }
            return check(
                vec![format!("{prefix}*.*")],
                Some(format!(
                    "registry hosts starting with {prefix:?} that contain a '.'"
                )),
            );
        };
        if path.is_empty() {
            return check(vec![format!("{host}/**")], None);
        }
        if let Some(dir) = path.strip_suffix('/') {
            return check(vec![format!("{host}/{dir}/**")], None);
        }
        // The prefix ends inside a path segment, or inside a tag or digest.
        if let Some(at) = path.find(['@', ':']) {
            let repo = &path[..at];
            return check(
                vec![format!("{host}/{repo}")],
                Some(format!(
                    "every tag and digest of {host}/{repo}, not only references starting with {scope:?}"
                )),
            );
        }
        return check(vec![format!("{host}/{path}*/**")], None);
    }
    // An exact reference: the repository, without tag or digest.
    let (name, pinned) = match scope.find('@') {
        Some(at) => (&scope[..at], true),
        None => match scope.rsplit_once(':') {
            Some((n, tag)) if !tag.contains('/') => (n, true),
            _ => (scope, false),
        },
    };
    check(
        vec![name.to_string()],
        pinned.then(|| format!("every tag and digest of {name}, not only {scope}")),
    )
}

/// and `rekorURL` parameters are reported.
impl Cx {
    pub(super) fn cosign(&mut self, r: &Resource) -> Vec<Unit> {
        let params = r.params().cloned().unwrap_or(Value::Null);
        let policies = field(&params, "trustPolicies").and_then(Value::as_sequence);
        for k in keys_of(&params) {
            if !["trustPolicies", "key", "rekorURL"].contains(&k.as_str()) {
                self.find(
                    Severity::Note,
                    r,
                    &format!("spec.parameters.{k}"),
                    "unknown parameter; ignored",
                );
            }
        }
        if field(&params, "key").is_some() {
            self.find(
                Severity::Dropped,
                r,
                "spec.parameters.key",
                "a key file inside the Ratify pod cannot be carried over: put the public key in a KeyManagementProvider (contentType: key) or paste it into the policy's cosign.keys",
            );
        }
        let Some(policies) = policies else {
            if field(&params, "key").is_none() && field(&params, "rekorURL").is_none() {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.trustPolicies",
                    "missing or not a list: nothing to verify with",
                );
            }
            if field(&params, "rekorURL").is_some() {
                self.find(
                    Severity::Dropped,
                    r,
                    "spec.parameters.rekorURL",
                    "legacy keyless verification accepted any signer's certificate; signet needs the signers' identities (issuer and subject): write a trust policy with keyless.certificateIdentity and certificateOIDCIssuer",
                );
            }
            return Vec::new();
        };
        let mut units = Vec::new();
        for (i, tp) in policies.iter().enumerate() {
            if let Some(u) = self.cosign_policy(r, i, tp) {
                units.push(u);
            }
        }
        units
    }

    fn cosign_policy(&mut self, r: &Resource, i: usize, tp: &Value) -> Option<Unit> {
        let name = text(field(tp, "name")).unwrap_or_else(|| format!("policy-{i}"));
        let at = format!("spec.parameters.trustPolicies[{i}] ({name:?})");
        let mut images = Vec::new();
        let scopes: Vec<String> = field(tp, "scopes")
            .and_then(Value::as_sequence)
            .map(|s| s.iter().filter_map(|x| text(Some(x))).collect())
            .unwrap_or_default();
        for s in &scopes {
            match cosign_scope(s) {
                Ok((globs, wider)) => {
                    if let Some(w) = wider {
                        self.find(
                            Severity::Changed,
                            r,
                            &format!("{at}.scopes"),
                            &format!(
                                "scope {s:?} becomes {}: it covers {w} (stricter)",
                                globs.join(", ")
                            ),
                        );
                    }
                    images.extend(globs);
                }
                Err(e) => self.find(
                    Severity::Dropped,
                    r,
                    &format!("{at}.scopes"),
                    &format!("scope {s:?} not converted: {e}"),
                ),
            }
        }
        if images.is_empty() {
            self.find(
                Severity::Dropped,
                r,
                &format!("{at}.scopes"),
                "no scope could be converted; the trust policy is left out",
            );
            return None;
        }
        let mut keys = Vec::new();
        if let Some(list) = field(tp, "keys").and_then(Value::as_sequence) {
            for (j, k) in list.iter().enumerate() {
                keys.extend(self.cosign_key(r, &format!("{at}.keys[{j}]"), k));
            }
        }
        let keyless = match field(tp, "keyless") {
            Some(k) => self.keyless(r, &at, k),
            None => None,
        };
        let tlog_verify = flag(tp, "tLogVerify");
        let mut tlog = None;
        if let Some(url) = text(field(tp, "rekorURL"))
            && url.trim_end_matches('/') != PUBLIC_REKOR
        {
            self.find(
                Severity::Note,
                r,
                &format!("{at}.rekorURL"),
                &format!(
                    "{url}: signet reads Rekor's keys from the trust root ({TRUST_ROOT_FILE}); it must be that instance's trusted_root.json"
                ),
            );
        }
        if keyless.is_some() {
            if tlog_verify == Some(false) {
                self.find(
                    Severity::Changed,
                    r,
                    &format!("{at}.tLogVerify"),
                    "false: signet always requires a verified Rekor entry for keyless signatures (it is their only trusted signing time); signatures never logged are denied",
                );
            }
        } else if !keys.is_empty() {
            match tlog_verify {
                Some(true) => self.find(
                    Severity::Dropped,
                    r,
                    &format!("{at}.tLogVerify"),
                    "true: signet checks key-based signatures without a Rekor entry unless the authority has a trust root (cosign.keyless.trustRoot) and cosign.tlog.required; add them by hand",
                ),
                None => self.find(
                    Severity::Note,
                    r,
                    &format!("{at}.tLogVerify"),
                    "unset (Ratify documents true as its default): the key-based authority does not require a Rekor entry; add cosign.tlog.required with a trust root if your signatures are logged",
                ),
                Some(false) => tlog = Some(Required { required: false }),
            }
        }
        if keys.is_empty() && keyless.is_none() {
            self.find(
                Severity::Dropped,
                r,
                &at,
                "no key or keyless identity could be converted; the trust policy is left out",
            );
            return None;
        }
        Some(Unit {
            skip: false,
            kind: Kind::Cosign,
            verifier: r.name.clone(),
            statement: name,
            images,
            authority: AuthorityOut {
                name: String::new(),
                cosign: Some(CosignOut {
                    keys,
                    keyless,
                    tlog,
                }),
                notation: None,
            },
        })
    }

    /// One `keys[]` entry: every key of a provider, or one named key of it.
    fn cosign_key(&mut self, r: &Resource, at: &str, k: &Value) -> Vec<KeyOut> {
        if let Some(file) = text(field(k, "file")) {
            self.find(
                Severity::Dropped,
                r,
                at,
                &format!(
                    "key file {file} lives in the Ratify pod: paste the key into cosign.keys as inline PEM, or put it beside the policies and use file:"
                ),
            );
            return Vec::new();
        }
        let Some(pname) = text(field(k, "provider")) else {
            self.find(Severity::Dropped, r, at, "names no provider and no file");
            return Vec::new();
        };
        let Some(p) = self.providers.get(&pname).or_else(|| {
            pname
                .rsplit_once('/')
                .and_then(|(_, n)| self.providers.get(n))
        }) else {
            let msg = self.missing(&pname, "keys");
            self.find(Severity::Dropped, r, at, &msg);
            return Vec::new();
        };
        let wanted = text(field(k, "name"));
        let version = text(field(k, "version"));
        let mut out = Vec::new();
        let mut problem = None;
        if let Some(pem) = &p.inline_key {
            if wanted.is_some() {
                problem = Some(Finding {
                    severity: Severity::Note,
                    resource: r.id(),
                    field: at.to_string(),
                    message:
                        "an inline provider holds one key: the name and version are not needed"
                            .into(),
                });
            }
            out.push(KeyOut {
                inline: Some(pem.clone()),
                key_vault: None,
            });
        }
        if let Some(v) = &p.vault {
            for key in &v.keys {
                if wanted.as_ref().is_some_and(|w| *w != key.name) {
                    continue;
                }
                out.push(KeyOut {
                    inline: None,
                    key_vault: Some(VaultRef {
                        vault_uri: v.uri.clone(),
                        name: key.name.clone(),
                        version: version.clone().or_else(|| key.version.clone()),
                        chain: None,
                    }),
                });
            }
        }
        if out.is_empty() {
            let id = p.id.clone();
            self.find(
                Severity::Dropped,
                r,
                at,
                &match wanted {
                    Some(w) => format!("provider {id} has no key named {w:?}"),
                    None => format!("provider {id} holds no key (certificates cannot verify Cosign key-based signatures)"),
                },
            );
        }
        if let Some(f) = problem {
            self.findings.push(f);
        }
        out
    }

    fn keyless(&mut self, r: &Resource, at: &str, k: &Value) -> Option<KeylessOut> {
        let at = format!("{at}.keyless");
        let subject = text(field(k, "certificateIdentity"));
        let subject_re = text(field(k, "certificateIdentityRegExp"));
        let issuer = text(field(k, "certificateOIDCIssuer"));
        let issuer_re = text(field(k, "certificateOIDCIssuerRegExp"));
        if subject.is_none() && subject_re.is_none() || issuer.is_none() && issuer_re.is_none() {
            self.find(
                Severity::Dropped,
                r,
                &at,
                "needs an identity (certificateIdentity or ...RegExp) and an issuer (certificateOIDCIssuer or ...RegExp); left out",
            );
            return None;
        }
        if subject_re.is_some() || issuer_re.is_some() {
            self.find(
                Severity::Changed,
                r,
                &at,
                "signet anchors regular expressions at both ends (Ratify, like cosign, matched them anywhere in the value): an identity that only contained a match is no longer trusted",
            );
        }
        // Ratify takes the exact value when both are given.
        let (subject, subject_re) = match subject {
            Some(s) => (Some(s), None),
            None => (None, subject_re),
        };
        let (issuer, issuer_re) = match issuer {
            Some(s) => (Some(s), None),
            None => (None, issuer_re),
        };
        self.find(
            Severity::Note,
            r,
            &at,
            &format!(
                "signet reads the Sigstore trust root from a file, never from the network: put the trusted_root.json of the Sigstore instance you use at {TRUST_ROOT_FILE} in the policy directory"
            ),
        );
        let ctlog = match flag(k, "ctLogVerify") {
            Some(false) => Some(Required { required: false }),
            _ => None,
        };
        Some(KeylessOut {
            identities: vec![IdentityOut {
                issuer,
                subject,
                issuer_reg_exp: issuer_re,
                subject_reg_exp: subject_re,
            }],
            trust_root: FileOut {
                file: TRUST_ROOT_FILE.into(),
            },
            ctlog,
        })
    }
}
