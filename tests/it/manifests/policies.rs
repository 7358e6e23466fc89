//! The policy directories of the repository and the ConfigMap's policies load.

use super::*;

fn load(dir: &Path) -> signet::policy::PolicySet {
    signet::policy::load_dir(dir).unwrap_or_else(|errs| {
        let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        panic!("{} does not load:\n{}", dir.display(), list.join("\n"))
    })
}

#[test]
fn default_policies_load_and_deny_unmatched_images() {
    let set = load(&root().join("policies"));
    assert!(
        set.policies.is_empty(),
        "policies/ should hold only the settings"
    );
    assert_eq!(set.no_match, signet::policy::NoMatch::Deny);
}

#[test]
fn example_policies_load() {
    let set = load(&root().join("policies/examples"));
    let mut names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ghcr-warn",
            "prod-enforce",
            "release-notation",
            "team-a/team-a-audit"
        ]
    );
    assert_eq!(set.no_match, signet::policy::NoMatch::Warn);
}

#[test]
fn configmap_policies_load() {
    let cm = object("ConfigMap", "signet-policies");
    let dir = tempfile::tempdir().unwrap();
    let data = cm["data"].as_mapping().unwrap();
    assert!(!data.is_empty());
    for (k, v) in data {
        std::fs::write(dir.path().join(k.as_str().unwrap()), v.as_str().unwrap()).unwrap();
    }
    let set = load(dir.path());
    assert!(!set.policies.is_empty());
}
