//! The policy custom resources, `ClusterImagePolicy` (cluster-scoped) and `ImagePolicy`
//! (namespaced, applies in its own namespace only), group `signet.dev`, version `v1alpha1`.
//!
//! [`PolicySpec`] is the one spec type: policy files are parsed into it, custom resources are
//! parsed into it, and the CRDs' OpenAPI schema is generated from it, so the three cannot drift
//! apart (a test compares the generated CRDs with the YAML under `manifests/crds/`). Only the
//! `ClusterImagePolicy` type is derived; the `ImagePolicy` CRD is the same definition with a
//! namespaced scope and its own names.
//!
//! The status is computed here as plain functions ([`desired_status`], [`needs_write`]) from
//! what loading the object gave ([`Outcome`]); `policy::kube` writes it. Imports no I/O.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames,
};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cosign::CosignSpec;
use super::notation::NotationSpec;
use super::{ImageGlob, Mode, OnError, PlatformSignatures};

/// The API group of the policy resources.
pub const GROUP: &str = "signet.dev";
/// Their only version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the policy documents and resources.
pub const API_VERSION: &str = "signet.dev/v1alpha1";
/// The status field manager (server-side apply) of every signet replica.
pub const FIELD_MANAGER: &str = "signet";

/// Which images a policy covers and which signatures it trusts. The `spec` of a policy file
/// and of both custom resources.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "signet.dev",
    version = "v1alpha1",
    kind = "ClusterImagePolicy",
    plural = "clusterimagepolicies",
    shortname = "cip",
    category = "signet",
    status = "PolicyStatus",
    doc = "A signet image policy that applies to workloads in every namespace.",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// Anchored globs on the normalised image repository (`registry.example.com/prod/**`).
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub images: Vec<ImageGlob>,
    /// What a failing image does: enforce (deny), warn (allow with a warning) or audit.
    #[serde(default)]
    pub mode: Mode,
    /// What an image gets when verification cannot complete: deny or allow.
    #[serde(default)]
    pub on_error: OnError,
    /// accept: an index is also trusted when every platform manifest in it is signed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub platform_signatures: PlatformSignatures,
    /// An image named by tag alone fails this policy.
    #[serde(default, skip_serializing_if = "is_default")]
    pub require_digest: bool,
    /// The pinning route also rewrites workload templates to verified digests.
    #[serde(default, skip_serializing_if = "is_default")]
    pub pin_templates: bool,
    /// Ways an image can be trusted; any one suffices.
    #[schemars(length(min = 1))]
    pub authorities: Vec<AuthoritySpec>,
}

/// Leaves an unset option out of the generation hash, so adding the option did not change the
/// generation (and cache keys) of existing policies.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One authority: a name and exactly one of `cosign` or `notation`.
#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthoritySpec {
    /// Unique within the policy; named in verdicts.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<CosignSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationSpec>,
}

/// What signet last concluded about a policy resource.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: whether this generation of the policy is enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A condition, in the shape of `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

/// `True`, `False` or `Unknown`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// The one condition type signet writes.
pub const READY: &str = "Ready";

/// What loading one policy resource gave: the `Ready` condition's status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded and enforced.
    Loaded,
    /// The spec is wrong; `message` names the field. `kept` is the generation still enforced
    /// in its place, if an earlier one loaded.
    Invalid { message: String, kept: Option<i64> },
    /// A policy of the same name comes from the policy directory, which wins.
    DuplicateName { other: String },
    /// A referenced Secret or ConfigMap is outside what this policy may read.
    ReferenceNotAllowed { message: String, kept: Option<i64> },
    /// A referenced Secret, ConfigMap or key in it does not exist: the authorities that need
    /// it trust nothing until it does.
    ReferenceNotFound { message: String },
    /// Key Vault material the policy names was withdrawn (a disabled or deleted version, or
    /// one unreadable for longer than `staleAfter`): the policy is enforced, and nothing is
    /// trusted through that material.
    MaterialWithdrawn { message: String },
    /// Key Vault material the policy names could not be read yet (the vault is unreachable,
    /// refuses signet, or the reference names nothing). `kept` is the generation still
    /// enforced in its place, if an earlier one loaded.
    KeyVaultUnavailable { message: String, kept: Option<i64> },
}

impl Outcome {
    /// The condition's `reason` (a closed set of CamelCase words, as Kubernetes writes them).
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Loaded => "Loaded",
            Outcome::Invalid { .. } => "InvalidSpec",
            Outcome::DuplicateName { .. } => "DuplicateName",
            Outcome::ReferenceNotAllowed { .. } => "ReferenceNotAllowed",
            Outcome::ReferenceNotFound { .. } => "ReferenceNotFound",
            Outcome::MaterialWithdrawn { .. } => "MaterialWithdrawn",
            Outcome::KeyVaultUnavailable { .. } => "KeyVaultUnavailable",
        }
    }

    fn message(&self) -> String {
        let kept = |k: &Option<i64>| match k {
            Some(g) => format!(" (generation {g} stays in force)"),
            None => " (not enforced)".to_string(),
        };
        match self {
            Outcome::Loaded => "the policy is enforced".to_string(),
            Outcome::Invalid { message, kept: k }
            | Outcome::ReferenceNotAllowed { message, kept: k }
            | Outcome::KeyVaultUnavailable { message, kept: k } => format!("{message}{}", kept(k)),
            Outcome::ReferenceNotFound { message } => {
                format!("{message} (the authorities that need it trust nothing until it exists)")
            }
            Outcome::MaterialWithdrawn { message } => format!(
                "{message} (the policy is enforced; its authorities trust nothing through this material)"
            ),
            Outcome::DuplicateName { other } => format!(
                "a policy of the same name is defined in {other}, which is enforced instead"
            ),
        }
    }
}

/// The status an object of `generation` should have after `outcome`, given the status it has
/// (`current`). `lastTransitionTime` is `now` only when the condition's status changes.
pub fn desired_status(
    generation: Option<i64>,
    outcome: &Outcome,
    current: Option<&PolicyStatus>,
    now: &str,
) -> PolicyStatus {
    let status = match outcome {
        Outcome::Loaded => ConditionStatus::True,
        _ => ConditionStatus::False,
    };
    let previous = current.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    PolicyStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: READY.to_string(),
            status,
            observed_generation: generation,
            last_transition_time,
            reason: outcome.reason().to_string(),
            message: outcome.message(),
        }],
    }
}

/// Whether `desired` says something `current` does not. `lastTransitionTime` is left out: two
/// replicas that computed the same condition at different instants agree.
pub fn needs_write(current: Option<&PolicyStatus>, desired: &PolicyStatus) -> bool {
    let Some(current) = current else {
        return true;
    };
    let strip = |s: &PolicyStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time.clear();
        }
        s.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        s
    };
    strip(current) != strip(desired)
}

/// The `clusterimagepolicies.signet.dev` CRD.
pub fn cluster_image_policy_crd() -> CustomResourceDefinition {
    ClusterImagePolicy::crd()
}

/// The `imagepolicies.signet.dev` CRD: the same schema, namespaced.
pub fn image_policy_crd() -> CustomResourceDefinition {
    let mut crd = ClusterImagePolicy::crd();
    crd.metadata.name = Some(format!("imagepolicies.{GROUP}"));
    crd.spec.scope = "Namespaced".to_string();
    crd.spec.names = CustomResourceDefinitionNames {
        kind: "ImagePolicy".to_string(),
        list_kind: Some("ImagePolicyList".to_string()),
        plural: "imagepolicies".to_string(),
        singular: Some("imagepolicy".to_string()),
        short_names: Some(vec!["imgpol".to_string()]),
        categories: Some(vec!["signet".to_string()]),
    };
    for v in &mut crd.spec.versions {
        if let Some(schema) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.description = Some(
                "A signet image policy that applies to workloads in its own namespace only."
                    .to_string(),
            );
        }
    }
    crd
}

/// The two CRDs as the YAML committed under `manifests/crds/`: (file name, text).
pub fn crd_manifests() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    let header = "# Generated from the policy types (src/policy/crd.rs); a test keeps it equal.\n";
    Ok(vec![
        (
            "clusterimagepolicies.signet.dev.yaml",
            format!(
                "{header}{}",
                serde_yaml::to_string(&cluster_image_policy_crd())?
            ),
        ),
        (
            "imagepolicies.signet.dev.yaml",
            format!("{header}{}", serde_yaml::to_string(&image_policy_crd())?),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn committed_crds_equal_what_the_types_generate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/crds");
        for (name, text) in crd_manifests().unwrap() {
            let path = dir.join(name);
            if std::env::var_os("SIGNET_WRITE_CRDS").is_some() {
                std::fs::write(&path, &text).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{} differs from the generated CRD; regenerate with \
                 SIGNET_WRITE_CRDS=1 cargo test --lib committed_crds\n--- generated ---\n{text}",
                path.display()
            );
        }
    }

    /// What the API server calls structural (apiextensions validation): every node has a type
    /// (or preserves unknown fields, or is int-or-string), no `additionalProperties` beside
    /// `properties`, and no `anyOf`/`oneOf`/`allOf`/`not` or references that bring types.
    fn structural(path: &str, node: &serde_json::Value) -> Result<(), String> {
        let obj = node
            .as_object()
            .ok_or_else(|| format!("{path}: not an object"))?;
        let typed = obj.contains_key("type")
            || obj.contains_key("x-kubernetes-int-or-string")
            || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&true.into());
        if !typed {
            return Err(format!("{path}: no type"));
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            return Err(format!("{path}: properties beside additionalProperties"));
        }
        for k in [
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "$ref",
            "definitions",
            "$defs",
        ] {
            if obj.contains_key(k) {
                return Err(format!("{path}: {k} in a structural schema"));
            }
        }
        if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                structural(&format!("{path}.{k}"), v)?;
            }
        }
        if let Some(items) = obj.get("items") {
            structural(&format!("{path}[]"), items)?;
        }
        if let Some(ap) = obj.get("additionalProperties").filter(|a| a.is_object()) {
            structural(&format!("{path}{{}}"), ap)?;
        }
        Ok(())
    }

    #[test]
    fn both_schemas_are_structural_and_name_the_status_subresource_and_columns() {
        for crd in [cluster_image_policy_crd(), image_policy_crd()] {
            let v = &crd.spec.versions[0];
            let schema =
                serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.as_ref())
                    .unwrap();
            if let Err(e) = structural("", &schema) {
                panic!("{e}");
            }
            assert!(v.subresources.as_ref().unwrap().status.is_some());
            let columns: Vec<_> = v
                .additional_printer_columns
                .as_ref()
                .unwrap()
                .iter()
                .map(|c| c.name.to_uppercase())
                .collect();
            assert_eq!(columns, ["MODE", "READY", "REASON", "AGE"]);
            let conditions = &schema["properties"]["status"]["properties"]["conditions"];
            assert_eq!(conditions["x-kubernetes-list-type"], "map");
            assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
            let required = &schema["properties"]["spec"]["required"];
            assert_eq!(*required, serde_json::json!(["authorities", "images"]));
        }
        assert_eq!(cluster_image_policy_crd().spec.scope, "Cluster");
        assert_eq!(image_policy_crd().spec.scope, "Namespaced");
        assert_eq!(
            image_policy_crd().metadata.name.as_deref(),
            Some("imagepolicies.signet.dev")
        );
    }

    /// The recorded answer of a real API server to a non-structural CRD: what our schema
    /// checker must also reject.
    #[test]
    fn the_structural_check_rejects_what_the_api_server_rejected() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/kube-api/crd-create-nonstructural-422.json"),
        )
        .unwrap();
        let exchange: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(exchange["response"]["status"], 422);
        let body: serde_json::Value =
            serde_json::from_str(exchange["request"]["body"].as_str().unwrap()).unwrap();
        let schema = &body["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let e = structural("", schema).expect_err("the rejected schema passed the check");
        assert_eq!(e, ".spec: no type");
    }

    fn status(s: ConditionStatus, reason: &str, at: &str) -> PolicyStatus {
        PolicyStatus {
            observed_generation: Some(1),
            conditions: vec![Condition {
                type_: READY.into(),
                status: s,
                observed_generation: Some(1),
                last_transition_time: at.into(),
                reason: reason.into(),
                message: "the policy is enforced".into(),
            }],
        }
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let t0 = "2026-12-06T07:00:00Z";
        let t1 = "2026-12-06T08:00:00Z";
        let first = desired_status(Some(1), &Outcome::Loaded, None, t0);
        assert_eq!(first, status(ConditionStatus::True, "Loaded", t0));
        let same = desired_status(Some(1), &Outcome::Loaded, Some(&first), t1);
        assert_eq!(same.conditions[0].last_transition_time, t0);
        assert!(!needs_write(Some(&first), &same));
        let broken = Outcome::Invalid {
            message: "spec.images[0]: bad".into(),
            kept: Some(1),
        };
        let bad = desired_status(Some(2), &broken, Some(&first), t1);
        assert_eq!(bad.conditions[0].last_transition_time, t1);
        assert_eq!(bad.conditions[0].status, ConditionStatus::False);
        assert_eq!(bad.conditions[0].reason, "InvalidSpec");
        assert_eq!(
            bad.conditions[0].message,
            "spec.images[0]: bad (generation 1 stays in force)"
        );
        assert!(needs_write(Some(&first), &bad));
        assert!(needs_write(None, &first));
    }

    #[test]
    fn two_writers_computing_at_different_instants_agree() {
        let a = desired_status(Some(3), &Outcome::Loaded, None, "2026-12-06T07:00:00Z");
        let b = desired_status(Some(3), &Outcome::Loaded, None, "2026-12-06T07:00:01Z");
        assert!(!needs_write(Some(&a), &b));
        assert!(!needs_write(Some(&b), &a));
    }

    #[test]
    fn a_spec_parses_from_yaml_and_json_alike() {
        let yaml = "images: [\"registry.example.com/**\"]\nauthorities:\n  - name: a\n    cosign:\n      keys: [{inline: x}]\n";
        let spec: PolicySpec = serde_yaml::from_str(yaml).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["mode"], "enforce");
        let again: PolicySpec = serde_json::from_value(json).unwrap();
        assert_eq!(again.images[0].as_str(), "registry.example.com/**");
    }
}
