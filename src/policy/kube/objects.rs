//! Secrets and ConfigMaps as trust material: the kube part of the material resolver, answering
//! from the watched stores, and the tenant rules on which namespaces a policy may read.
//!
//! Like `policy`: must not import `registry`, `verify` or `decision`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::policy::material::{
    Context, MaterialError, ObjectKeyRef, ObjectKind, ObjectMaterial, TenantError,
};

/// Which namespaces a policy may take Secrets and ConfigMaps from, and which are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRules {
    /// signet's own namespace: the default, and the only one a `ClusterImagePolicy` may name
    /// unless `cluster_extra` allows more.
    pub own: String,
    /// Further namespaces `ClusterImagePolicy` references may name (`*`: any).
    pub cluster_extra: Vec<String>,
    /// Whether Secrets and ConfigMaps are watched in every namespace (else in `own` only).
    pub all_namespaces: bool,
}

impl TenantRules {
    /// The namespace `r` reads from for a policy in context `cx`, or why it may not.
    ///
    /// An `ImagePolicy` (`cx.namespace` set) reads only its own namespace, which is also the
    /// default. Any other policy defaults to signet's namespace and may name only that one and
    /// `cluster_extra`. A namespace that is not watched is refused with the flag that watches
    /// it, rather than reported missing.
    pub fn namespace_for(
        &self,
        kind: ObjectKind,
        r: &ObjectKeyRef,
        cx: &Context<'_>,
    ) -> Result<String, TenantError> {
        let field = kind.field();
        let ns = match (cx.namespace, r.namespace.as_deref()) {
            (Some(own), None) => own.to_string(),
            (Some(own), Some(named)) if named == own => own.to_string(),
            (Some(own), Some(named)) => {
                return Err(TenantError::OtherNamespace {
                    field,
                    own: own.to_string(),
                    named: named.to_string(),
                });
            }
            (None, None) => self.own.clone(),
            (None, Some(named)) => {
                let allowed =
                    named == self.own || self.cluster_extra.iter().any(|e| e == "*" || e == named);
                if !allowed {
                    return Err(TenantError::NotClusterAllowed {
                        field,
                        own: self.own.clone(),
                        named: named.to_string(),
                    });
                }
                named.to_string()
            }
        };
        if ns != self.own && !self.all_namespaces {
            return Err(TenantError::Unwatched {
                field,
                own: self.own.clone(),
                namespace: ns,
            });
        }
        Ok(ns)
    }
}

/// The watched Secrets and ConfigMaps, as an [`ObjectMaterial`].
#[derive(Clone)]
pub struct KubeObjects {
    pub(super) secrets: Store<Secret>,
    pub(super) config_maps: Store<ConfigMap>,
    pub(super) rules: TenantRules,
    /// Bumped on every change of a watched Secret or ConfigMap.
    pub(super) version: Arc<AtomicU64>,
}

impl std::fmt::Debug for KubeObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeObjects")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ObjectMaterial for KubeObjects {
    fn get(
        &self,
        kind: ObjectKind,
        r: &ObjectKeyRef,
        cx: &Context<'_>,
    ) -> Result<(Vec<u8>, String), MaterialError> {
        let ns = self
            .rules
            .namespace_for(kind, r, cx)
            .map_err(MaterialError::NotAllowed)?;
        let shown = format!("{} {ns}/{} key {:?}", kind.as_str(), r.name, r.key);
        let missing = |what: &str| MaterialError::NotFound(format!("{what} not found"));
        let bytes = match kind {
            ObjectKind::Secret => {
                let s = self
                    .secrets
                    .get(&ObjectRef::new(&r.name).within(&ns))
                    .ok_or_else(|| missing(&format!("Secret {ns}/{}", r.name)))?;
                s.data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|b| b.0.clone())
            }
            ObjectKind::ConfigMap => {
                let c = self
                    .config_maps
                    .get(&ObjectRef::new(&r.name).within(&ns))
                    .ok_or_else(|| missing(&format!("ConfigMap {ns}/{}", r.name)))?;
                c.data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|s| s.as_bytes().to_vec())
                    .or_else(|| {
                        c.binary_data
                            .as_ref()
                            .and_then(|d| d.get(&r.key))
                            .map(|b| b.0.clone())
                    })
            }
        };
        let bytes = bytes.ok_or_else(|| missing(&shown))?;
        Ok((bytes, shown))
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(all: bool, extra: &[&str]) -> TenantRules {
        TenantRules {
            own: "signet-system".into(),
            cluster_extra: extra.iter().map(|s| s.to_string()).collect(),
            all_namespaces: all,
        }
    }

    fn r(ns: Option<&str>) -> ObjectKeyRef {
        ObjectKeyRef {
            name: "k".into(),
            key: "cosign.pub".into(),
            namespace: ns.map(Into::into),
        }
    }

    fn tenant(ns: &str) -> Context<'_> {
        Context {
            base: None,
            namespace: Some(ns),
        }
    }

    #[test]
    fn an_image_policy_reads_its_own_namespace_only() {
        let all = rules(true, &["*"]);
        let s = ObjectKind::Secret;
        assert_eq!(
            all.namespace_for(s, &r(None), &tenant("team-a")).unwrap(),
            "team-a"
        );
        assert_eq!(
            all.namespace_for(s, &r(Some("team-a")), &tenant("team-a"))
                .unwrap(),
            "team-a"
        );
        for other in ["team-b", "signet-system", "kube-system"] {
            let e = all
                .namespace_for(s, &r(Some(other)), &tenant("team-a"))
                .unwrap_err();
            assert!(
                e.to_string()
                    .contains("only reference objects in its own namespace"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_cluster_policy_reads_signets_namespace_unless_allowed_more() {
        let cx = Context::default();
        let s = ObjectKind::ConfigMap;
        let own_only = rules(true, &[]);
        assert_eq!(
            own_only.namespace_for(s, &r(None), &cx).unwrap(),
            "signet-system"
        );
        let e = own_only
            .namespace_for(s, &r(Some("team-a")), &cx)
            .unwrap_err();
        assert!(e.to_string().contains("--cluster-policy-namespace"), "{e}");
        assert_eq!(
            rules(true, &["team-a"])
                .namespace_for(s, &r(Some("team-a")), &cx)
                .unwrap(),
            "team-a"
        );
        assert!(
            rules(true, &["team-a"])
                .namespace_for(s, &r(Some("team-b")), &cx)
                .is_err()
        );
        assert_eq!(
            rules(true, &["*"])
                .namespace_for(s, &r(Some("team-b")), &cx)
                .unwrap(),
            "team-b"
        );
    }

    #[test]
    fn an_unwatched_namespace_names_the_flag() {
        let e = rules(false, &["*"])
            .namespace_for(ObjectKind::Secret, &r(None), &tenant("team-a"))
            .unwrap_err();
        assert!(e.to_string().contains("--secrets-all-namespaces"), "{e}");
    }
}
