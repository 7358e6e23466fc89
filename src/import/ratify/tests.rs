//! The converter on inputs shaped like the Ratify and AKS Image Integrity documentation's
//! examples (`tests/fixtures/ratify/`), checked structurally and, where no Key Vault is
//! involved, by loading the result with the policy loader.

use std::path::Path;

use serde_yaml::Value;

use super::cosign::cosign_scope;
use super::notation::notation_scope;
use super::*;
use crate::policy::ImageGlob;

fn fixture(name: &str) -> Conversion {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ratify")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    convert(
        &[(path.display().to_string(), text)],
        &Options {
            mode: Mode::Enforce,
        },
    )
    .unwrap()
}

fn from_text(text: &str) -> Conversion {
    convert(
        &[("inline.yaml".into(), text.into())],
        &Options { mode: Mode::Warn },
    )
    .unwrap()
}

fn docs(c: &Conversion) -> Vec<Value> {
    c.outputs
        .iter()
        .map(|o| serde_yaml::from_str(&o.yaml).unwrap())
        .collect()
}

fn policies(c: &Conversion) -> Vec<Value> {
    docs(c)
        .into_iter()
        .filter(|d| d["kind"] == "ClusterImagePolicy")
        .collect()
}

fn has(c: &Conversion, severity: Severity, needle: &str) -> bool {
    c.findings
        .iter()
        .any(|f| f.severity == severity && f.to_string().contains(needle))
}

/// Loads every document with the policy loader, as `signet policy check` would.
fn load(c: &Conversion) -> crate::policy::PolicySet {
    match crate::policy::load_str(Path::new("converted.yaml"), &c.to_yaml_stream()) {
        Ok(set) => set,
        Err(e) => panic!("{e:?}\n{}", c.to_yaml_stream()),
    }
}

fn fixture_pem(name: &str, label: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ratify")
            .join(name),
    )
    .unwrap();
    let start = text.find(&format!("-----BEGIN {label}-----")).unwrap();
    let end = text.find(&format!("-----END {label}-----")).unwrap() + label.len() + 14;
    text[start..end]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn aks_notation_walkthrough_converts_and_loads() {
    let c = fixture("notation-inline.yaml");
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["metadata"]["name"], "ratify-verifier-notation-default");
    assert_eq!(p[0]["spec"]["images"][0], "**");
    assert_eq!(p[0]["spec"]["mode"], "enforce");
    assert_eq!(p[0]["spec"]["onError"], "deny");
    let n = &p[0]["spec"]["authorities"][0]["notation"];
    assert_eq!(n["signatureVerification"]["level"], "strict");
    assert_eq!(n["trustedIdentities"][0], "*");
    assert_eq!(n["trustStores"][0]["type"], "ca");
    assert_eq!(n["trustStores"][0]["name"], "certs");
    let inline = n["trustStores"][0]["certificates"][0]["inline"]
        .as_str()
        .unwrap();
    assert!(inline.contains("-----BEGIN CERTIFICATE-----"), "{inline}");
    // No vault, so no SignetConfig.
    assert!(docs(&c).iter().all(|d| d["kind"] != "SignetConfig"));
    // The store's workload identity is reported with what replaces it.
    assert!(
        has(&c, Severity::Note, "azureWorkloadIdentity"),
        "{}",
        c.report()
    );
    let set = load(&c);
    assert_eq!(set.policies.len(), 1);
    assert_eq!(set.policies[0].authorities.len(), 1);
}

#[test]
fn kubectl_list_output_with_cluster_metadata_is_read() {
    let c = fixture("kubectl-list.yaml");
    assert!(!c.dropped(), "{}", c.report());
    assert_eq!(c.resources, 4);
    let p = policies(&c);
    assert_eq!(p.len(), 1);
    let cosign = &p[0]["spec"]["authorities"][0]["cosign"];
    assert!(
        cosign["keys"][0]["inline"]
            .as_str()
            .unwrap()
            .contains("PUBLIC KEY")
    );
    assert_eq!(cosign["tlog"]["required"], false);
    assert!(has(&c, Severity::Changed, "all: Ratify failed an image"));
    assert!(has(&c, Severity::Note, "gatekeeper-system/regcred"));
    assert!(has(&c, Severity::Note, "--docker-config"));
    load(&c);
}

#[test]
fn cosign_scopes_become_globs_that_cover_what_ratify_covered() {
    let c = fixture("cosign-scopes.yaml");
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 3);
    let images = |i: usize| p[i]["spec"]["images"][0].as_str().unwrap().to_string();
    assert_eq!(images(0), "myregistry.io/dev/**");
    assert_eq!(images(1), "myregistry.io/test*/**");
    assert_eq!(images(2), "ghcr.io/example/**");
    // `myregistry.io/test*` is a prefix of the whole reference in Ratify.
    let glob = ImageGlob::parse(&images(1)).unwrap();
    for yes in [
        "myregistry.io/test/app:1",
        "myregistry.io/testing/app:1",
        "myregistry.io/test-x:1",
    ] {
        assert!(glob.matches(&yes.parse().unwrap()), "{yes}");
    }
    for no in ["myregistry.io/dev/app:1", "other.io/test/app:1"] {
        assert!(!glob.matches(&no.parse().unwrap()), "{no}");
    }
    let keyless = &p[2]["spec"]["authorities"][0]["cosign"]["keyless"];
    assert_eq!(
        keyless["identities"][0]["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(
        keyless["identities"][0]["subjectRegExp"],
        r"https://github\.com/example/.+"
    );
    assert_eq!(keyless["trustRoot"]["file"], TRUST_ROOT_FILE);
    assert!(has(&c, Severity::Changed, "anchors regular expressions"));
    assert!(has(&c, Severity::Note, "trusted_root.json"));
    // The two key-based policies load (the keyless one needs the trust root file).
    let keyed = Conversion {
        outputs: c.outputs[..2].to_vec(),
        ..Conversion::default()
    };
    assert_eq!(load(&keyed).policies.len(), 2);
}

#[test]
fn cosign_scope_table() {
    let ok = |s: &str| cosign_scope(s).unwrap();
    assert_eq!(ok("*"), (vec!["**".to_string()], None));
    assert_eq!(ok("reg.io/ns/*").0, ["reg.io/ns/**"]);
    assert_eq!(ok("reg.io/*").0, ["reg.io/**"]);
    assert_eq!(ok("reg.io/ns/img*").0, ["reg.io/ns/img*/**"]);
    assert_eq!(ok("reg.azurecr.io*").0, ["reg.azurecr.io*"]);
    assert_eq!(ok("localhost:5000/a/*").0, ["localhost:5000/a/**"]);
    let (g, wider) = ok("myacr*");
    assert_eq!(g, ["myacr*.*"]);
    assert!(wider.is_some());
    // Exact references lose their tag or digest: every tag is covered (stricter, reported).
    let (g, wider) = ok("reg.io/ns/app:v1");
    assert_eq!(g, ["reg.io/ns/app"]);
    assert!(wider.unwrap().contains("every tag"));
    let (g, wider) = ok("reg.io/ns/app@sha256:abcd");
    assert_eq!(g, ["reg.io/ns/app"]);
    assert!(wider.is_some());
    let (g, wider) = ok("reg.io/ns/app:v1*");
    assert_eq!(g, ["reg.io/ns/app"]);
    assert!(wider.is_some());
    assert_eq!(
        ok("reg.io:5000/ns/app"),
        (vec!["reg.io:5000/ns/app".into()], None)
    );
    for bad in ["reg.io/*/app", "reg.io/a*b*", "*reg.io"] {
        assert!(cosign_scope(bad).is_err(), "{bad}");
    }
}

#[test]
fn notation_scope_table() {
    assert_eq!(notation_scope("*").unwrap(), "**");
    assert_eq!(notation_scope("reg.io/ns/app").unwrap(), "reg.io/ns/app");
    assert_eq!(
        notation_scope("reg.io/ns/*").unwrap_err().to_string(),
        "Notation scopes are \"*\" or a fully qualified repository; wildcards inside a scope \
         are not supported"
    );
    assert!(notation_scope("reg.io/ns/app:v1").is_err());
}

#[test]
fn key_vault_certificates_become_references_with_their_chains() {
    let c = fixture("notation-akv.yaml");
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 2);
    let n = &p[0]["spec"]["authorities"][0]["notation"];
    assert_eq!(n["signatureVerification"]["override"]["revocation"], "log");
    let ca = &n["trustStores"][0];
    assert_eq!(ca["type"], "ca");
    assert_eq!(ca["name"], "ca-certs");
    let pinned = &ca["certificates"][0]["keyVault"];
    assert_eq!(
        pinned["vaultURI"],
        "https://contoso-signing.vault.azure.net/"
    );
    assert_eq!(pinned["name"], "release-ca");
    assert_eq!(pinned["version"], "0123456789abcdef0123456789abcdef");
    assert_eq!(pinned["chain"], true);
    let latest = &ca["certificates"][1]["keyVault"];
    assert_eq!(latest["name"], "release-ca-next");
    assert!(latest.get("version").is_none(), "{latest:?}");
    assert_eq!(n["trustStores"][1]["type"], "tsa");
    assert!(n["trustStores"][1]["certificates"][0]["inline"].is_string());
    // The exact-repository statement applies on top of the global one in signet.
    assert_eq!(p[1]["spec"]["images"][0], "contoso.azurecr.io/payments/api");
    assert!(has(&c, Severity::Changed, "must satisfy both"));
    let config = docs(&c)
        .into_iter()
        .find(|d| d["kind"] == "SignetConfig")
        .unwrap();
    assert_eq!(
        config["spec"]["azure"]["tenantID"],
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    );
    assert_eq!(
        config["spec"]["azure"]["clientID"],
        "11111111-2222-3333-4444-555555555555"
    );
}

#[test]
fn key_vault_keys_become_cosign_key_references() {
    let c = fixture("cosign-akv.yaml");
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 1);
    let key = &p[0]["spec"]["authorities"][0]["cosign"]["keys"][0]["keyVault"];
    assert_eq!(key["vaultURI"], "https://contoso-signing.vault.azure.net/");
    assert_eq!(key["name"], "cosign-release");
    assert_eq!(key["version"], "fedcba9876543210fedcba9876543210");
    assert!(key.get("chain").is_none());
    assert!(docs(&c).iter().any(|d| d["kind"] == "SignetConfig"));
    assert!(has(&c, Severity::Note, "tLogVerify"));
}

#[test]
fn deprecated_certificate_stores_are_read() {
    let c = fixture("certificatestore.yaml");
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 1);
    let certs = &p[0]["spec"]["authorities"][0]["notation"]["trustStores"][0]["certificates"];
    assert!(certs[0]["inline"].is_string());
    assert_eq!(certs[1]["keyVault"]["name"], "legacy-ca");
    assert_eq!(
        certs[1]["keyVault"]["version"],
        "00112233445566778899aabbccddeeff"
    );
    assert_eq!(certs[1]["keyVault"]["chain"], true);
}

#[test]
fn what_cannot_be_carried_over_is_dropped_loudly() {
    let c = fixture("unsupported.yaml");
    assert!(c.dropped());
    assert!(c.outputs.is_empty(), "{}", c.to_yaml_stream());
    for needle in [
        "Rego policies are not converted",
        "verifier \"sbom\"",
        "/usr/local/ratify-certs/cosign/cosign.pub",
        "\"hashicorp-vault\" is not supported",
        "could not be converted (reported above)",
        "legacy keyless verification",
    ] {
        assert!(
            has(&c, Severity::Dropped, needle),
            "{needle}\n{}",
            c.report()
        );
    }
    assert!(c.report().contains("do NOT verify everything"));
}

const NOTATION_AND_COSIGN: &str = r#"
apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata: {name: cert}
spec:
  type: inline
  parameters: {contentType: certificate, value: "CERT"}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: KeyManagementProvider
metadata: {name: key}
spec:
  type: inline
  parameters: {contentType: key, value: "KEY"}
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: verifier-notation}
spec:
  name: notation
  artifactTypes: application/vnd.cncf.notary.signature
  parameters:
    verificationCertStores: {certs: [cert]}
    trustPolicyDoc:
      version: "1.0"
      trustPolicies:
        - name: default
          registryScopes: ["*"]
          signatureVerification: {level: strict}
          trustStores: ["ca:certs"]
          trustedIdentities: ["*"]
---
apiVersion: config.ratify.deislabs.io/v1beta1
kind: Verifier
metadata: {name: verifier-cosign}
spec:
  name: cosign
  artifactTypes: application/vnd.dev.cosign.artifact.sig.v1+json
  parameters:
    trustPolicies:
      - name: default
        scopes: ["*"]
        keys: [{provider: key}]
        tLogVerify: false
"#;

fn both_verifiers(policy: &str) -> String {
    let yaml_str = |pem: &str| serde_json::to_string(pem).unwrap();
    let text = NOTATION_AND_COSIGN
        .replace(
            "\"CERT\"",
            &yaml_str(&fixture_pem("notation-inline.yaml", "CERTIFICATE")),
        )
        .replace(
            "\"KEY\"",
            &yaml_str(&fixture_pem("cosign-scopes.yaml", "PUBLIC KEY")),
        );
    format!("{text}---\n{policy}")
}

#[test]
fn verifiers_combine_as_the_ratify_policy_says() {
    // The chart's default: a verified signature of either type suffices → one policy, two
    // authorities (any one suffices).
    let c = from_text(&both_verifiers(""));
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 1, "{}", c.to_yaml_stream());
    assert_eq!(p[0]["spec"]["mode"], "warn");
    assert_eq!(p[0]["spec"]["authorities"].as_sequence().unwrap().len(), 2);
    assert!(has(&c, Severity::Note, "assumed the chart's default"));
    assert_eq!(load(&c).policies[0].authorities.len(), 2);

    // Both types named: both are required → two policies over the same images.
    let required = "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Policy\nmetadata: {name: ratify-policy}\nspec:\n  type: config-policy\n  parameters:\n    artifactVerificationPolicies:\n      application/vnd.cncf.notary.signature: any\n      application/vnd.dev.cosign.artifact.sig.v1+json: any\n";
    let c = from_text(&both_verifiers(required));
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 2, "{}", c.to_yaml_stream());
    assert!(
        p.iter()
            .all(|p| p["spec"]["authorities"].as_sequence().unwrap().len() == 1)
    );
    // That both apply is Ratify's meaning here, not a difference to report.
    assert!(
        !has(&c, Severity::Changed, "must satisfy both"),
        "{}",
        c.report()
    );
    assert_eq!(load(&c).policies.len(), 2);

    // Only Notation named: the Cosign verifier no longer decides anything.
    let notation_only = required.replace(
        "      application/vnd.dev.cosign.artifact.sig.v1+json: any\n",
        "",
    );
    let c = from_text(&both_verifiers(&notation_only));
    let p = policies(&c);
    assert_eq!(p.len(), 1);
    assert!(p[0]["spec"]["authorities"][0]["notation"].is_mapping());
    assert!(has(&c, Severity::Changed, "not required by the Policy"));

    // A Policy requiring an SBOM cannot be honoured.
    let sbom = required
        .replace("cosign.artifact.sig.v1+json", "x")
        .replace("application/vnd.dev.x", "application/spdx+json");
    let c = from_text(&both_verifiers(&sbom));
    assert!(
        has(&c, Severity::Dropped, "application/spdx+json"),
        "{}",
        c.report()
    );
}

#[test]
fn vault_providers_with_different_identities_are_reported() {
    let kmp = |name: &str, client: &str| {
        format!(
            "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata: {{name: {name}}}\nspec:\n  type: azurekeyvault\n  parameters:\n    vaultURI: https://{name}.vault.azure.net/\n    keys: [{{name: k}}]\n    tenantID: t\n    clientID: {client}\n"
        )
    };
    let verifier = "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nmetadata: {name: v}\nspec:\n  name: cosign\n  parameters:\n    trustPolicies:\n      - name: p\n        scopes: [\"*\"]\n        keys: [{provider: a}, {provider: b, name: k, version: v2}]\n";
    let c = from_text(&format!(
        "{}---\n{}---\n{verifier}",
        kmp("a", "c1"),
        kmp("b", "c2")
    ));
    assert!(
        has(&c, Severity::Changed, "one Azure identity"),
        "{}",
        c.report()
    );
    let p = policies(&c);
    let keys = &p[0]["spec"]["authorities"][0]["cosign"]["keys"];
    assert_eq!(
        keys[0]["keyVault"]["vaultURI"],
        "https://a.vault.azure.net/"
    );
    assert!(keys[0]["keyVault"].get("version").is_none());
    assert_eq!(keys[1]["keyVault"]["version"], "v2");
    // A key name the provider does not list is dropped, not guessed.
    let c = from_text(&format!(
        "{}---\n{}",
        kmp("a", "c1"),
        verifier
            .replace("{provider: a}, ", "")
            .replace("name: k,", "name: other,")
            .replace("provider: b", "provider: a")
    ));
    assert!(
        has(&c, Severity::Dropped, "no key named \"other\""),
        "{}",
        c.report()
    );
}

#[test]
fn malformed_input_is_an_error_or_a_finding_never_a_panic() {
    let opts = Options {
        mode: Mode::Enforce,
    };
    let run = |t: &str| convert(&[("f.yaml".into(), t.into())], &opts);
    assert!(matches!(run("{"), Err(ImportError::Yaml { .. })));
    assert!(matches!(
        run("apiVersion: v1\nkind: ConfigMap\n"),
        Err(ImportError::NothingToConvert)
    ));
    for t in [
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nspec: []\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nspec: {name: cosign, parameters: {trustPolicies: 5}}\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nspec: {name: notation, parameters: {trustPolicyDoc: {trustPolicies: [{name: x}, 7, {registryScopes: 3}]}}}\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Verifier\nspec: {name: cosign, parameters: {trustPolicies: [{scopes: [\"*\"], keys: [{provider: [1]}], keyless: {}}]}}\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata: {name: x}\nspec: {type: inline, parameters: {contentType: key, value: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\"}}\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: CertificateStore\nmetadata: {name: x}\nspec: {provider: azurekeyvault, parameters: {vaultURI: \"https://v.vault.azure.net/\", certificates: \"array: [\"}}\n",
        "apiVersion: config.ratify.deislabs.io/v1beta1\nkind: Store\nspec: {name: oras, parameters: {authProvider: 3, useHttp: true}}\n",
        "apiVersion: v1\nkind: List\nitems: [1, null, {kind: List, items: []}, {apiVersion: config.ratify.deislabs.io/v1beta1, kind: Policy}]\n",
    ] {
        let c = run(t).unwrap();
        // Each malformed resource is reported, beyond the note about the missing Policy.
        assert!(
            c.findings
                .iter()
                .any(|f| !f.message.starts_with("not in the input")),
            "{t}\n{}",
            c.report()
        );
    }
    // A private key pasted into an inline provider is refused by name.
    let c = run("apiVersion: config.ratify.deislabs.io/v1beta1\nkind: KeyManagementProvider\nmetadata: {name: x}\nspec: {type: inline, parameters: {contentType: key, value: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\"}}\n").unwrap();
    assert!(has(&c, Severity::Dropped, "private key"), "{}", c.report());
}

/// The Key Vault outputs as the policy loader reads them. Before the loader knows `keyVault`
/// references it refuses them (and `SignetConfig.spec.azure`) as unknown fields, and this test
/// only says so. Once it knows them, the one error allowed is that this loader, with no Azure
/// identity configured, cannot fetch them: any other error (a field name the loader spells
/// differently, `azure` unknown while `keyVault` is known) fails the test.
#[test]
fn key_vault_outputs_parse_with_the_policy_loader() {
    for name in [
        "notation-akv.yaml",
        "cosign-akv.yaml",
        "certificatestore.yaml",
    ] {
        let c = fixture(name);
        let errors = match crate::policy::load_str(Path::new("converted.yaml"), &c.to_yaml_stream())
        {
            Ok(set) => {
                assert!(!set.policies.is_empty(), "{name}");
                continue;
            }
            Err(errors) => errors,
        };
        let before = errors
            .iter()
            .any(|e| e.message.contains("unknown field `keyVault`"));
        for e in &errors {
            let allowed = if before {
                e.message.contains("unknown field `keyVault`")
                    || e.message.contains("unknown field `azure`")
            } else {
                e.message.contains("needs an Azure identity")
                    || e.message.contains("not fetched yet")
            };
            assert!(allowed, "{name}: {e}");
        }
        if before {
            eprintln!("{name}: this policy loader does not read keyVault references yet");
        }
    }
}

/// A Notation `skip` statement trusts without a signature in signet. Put beside a Cosign
/// authority in one policy (any authority suffices) it would let unsigned images past the Cosign
/// check, which Ratify still ran; so it gets a policy of its own.
#[test]
fn a_skip_statement_never_stands_in_for_another_verifier() {
    let text = both_verifiers("").replace(
        "signatureVerification: {level: strict}\n          trustStores: [\"ca:certs\"]\n          trustedIdentities: [\"*\"]",
        "signatureVerification: {level: skip}",
    );
    let c = from_text(&text);
    assert!(!c.dropped(), "{}", c.report());
    let p = policies(&c);
    assert_eq!(p.len(), 2, "{}", c.to_yaml_stream());
    for policy in &p {
        assert_eq!(
            policy["spec"]["authorities"].as_sequence().unwrap().len(),
            1,
            "{}",
            c.to_yaml_stream()
        );
    }
    assert!(has(&c, Severity::Changed, "level skip"), "{}", c.report());
    let set = load(&c);
    assert_eq!(set.policies.len(), 2);
}
