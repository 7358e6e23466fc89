//! The YAML signet reads, as the importer writes it: the policy schema (see the policy
//! reference), including the `keyVault` references for Azure Key Vault keys and certificates.
//! Serialize-only: the policy loader stays the one reader and judge of these documents.
//!
//! Like `import`: imports `policy` only.

use serde::Serialize;

use crate::policy::notation::SignatureVerificationSpec;
use crate::policy::{Mode, OnError};

pub const API_VERSION: &str = "signet.dev/v1alpha1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDoc {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

#[derive(Serialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    pub images: Vec<String>,
    pub mode: Mode,
    pub on_error: OnError,
    pub authorities: Vec<AuthorityOut>,
}

#[derive(Serialize)]
pub struct AuthorityOut {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosign: Option<CosignOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationOut>,
}

#[derive(Serialize)]
pub struct CosignOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlog: Option<Required>,
}

/// A Cosign public key: inline PEM, or a Key Vault key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<VaultRef>,
}

/// A Key Vault key or certificate: vault, name, optional version (latest enabled when absent);
/// for certificates, whether the whole chain is read through the certificate's secret.
#[derive(Serialize)]
pub struct VaultRef {
    #[serde(rename = "vaultURI")]
    pub vault_uri: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeylessOut {
    pub identities: Vec<IdentityOut>,
    pub trust_root: FileOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<Required>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
}

#[derive(Serialize)]
pub struct FileOut {
    pub file: String,
}

#[derive(Serialize)]
pub struct Required {
    pub required: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotationOut {
    pub signature_verification: SignatureVerificationSpec,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_stores: Vec<StoreOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_identities: Vec<String>,
}

#[derive(Serialize)]
pub struct StoreOut {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub certificates: Vec<CertOut>,
}

/// Trust-store certificates: inline PEM, or a Key Vault certificate.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_vault: Option<VaultRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigDoc {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: ConfigSpec,
}

#[derive(Serialize)]
pub struct ConfigSpec {
    pub azure: AzureOut,
}

#[derive(Serialize)]
pub struct AzureOut {
    #[serde(rename = "tenantID", skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}
