//! Assertions on AdmissionReview responses (as JSON), the way kubectl reads them: a denial
//! needs `allowed: false` with `status.code` 403 and `status.reason` "Forbidden" (kubectl prints
//! "(Forbidden)" only with both).

use serde_json::Value;

/// `response.status.message`, empty when absent.
pub fn message(review: &Value) -> String {
    review["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Admitted, with no warning.
#[track_caller]
pub fn assert_allowed_clean(review: &Value) {
    let response = &review["response"];
    assert_eq!(response["allowed"], true, "{review:#}");
    assert!(response.get("warnings").is_none(), "{review:#}");
}

/// Denied with 403 Forbidden.
#[track_caller]
pub fn assert_denied(review: &Value) {
    let response = &review["response"];
    assert_eq!(response["allowed"], false, "{review:#}");
    assert_eq!(response["status"]["code"], 403, "{review:#}");
    assert_eq!(response["status"]["reason"], "Forbidden", "{review:#}");
}

/// Denied with 403 Forbidden, and the message holds every one of `words`.
#[track_caller]
pub fn assert_denied_with(review: &Value, words: &[&str]) {
    assert_denied(review);
    let message = message(review);
    for word in words {
        assert!(
            message.contains(word),
            "the deny message lacks {word:?}:\n{message}"
        );
    }
}
