//! Policy documents as text, for tests and the walk-through: what an operator would write, so
//! that signet's loader reads them exactly as it reads a file.

/// A `ClusterImagePolicy` trusting `key_pem` (Cosign) for `images`.
pub fn cosign_policy(
    name: &str,
    images: &str,
    mode: &str,
    on_error: &str,
    key_pem: &str,
) -> String {
    let key = key_pem.trim_end().replace('\n', "\n              ");
    format!(
        "apiVersion: signet.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images: [\"{images}\"]\n  mode: {mode}\n  onError: {on_error}\n  authorities:\n    - name: ci\n      cosign:\n        keys:\n          - inline: |\n              {key}\n"
    )
}

/// A `SignetConfig` document.
pub fn settings(no_match: &str) -> String {
    format!("apiVersion: signet.dev/v1alpha1\nkind: SignetConfig\nspec:\n  noMatch: {no_match}\n")
}
