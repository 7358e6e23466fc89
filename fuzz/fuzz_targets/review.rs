//! An AdmissionReview body as the API server (or anyone reaching the port) sends it: decoded,
//! then answered. Neither may panic, whatever the bytes. The validating route's decoder (which
//! reads only what a decision needs) must agree with the full decoder of the pinning route:
//! the same review and action whenever both read the body, the same error whenever it fails.
//! It may answer a body the full decoder refuses (an error, or a pod spec it cannot read) only
//! for a field no decision reads, such as `enableServiceLinks: "Pending"`: those are checked to
//! be JSON, not to have their Kubernetes types. In an UPDATE's old object, such a field makes
//! the full decoder answer as if there were no old object (every image checked), while the
//! fast reader compares with the old images it read (some of them checked, or none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::admission::{Action, Review, SkipReason, decode, decode_with_object};

fuzz_target!(|data: &[u8]| {
    let fast = decode(data);
    let full = decode_with_object(data).map(|r| r.without_object());
    match (&fast, &full) {
        (Ok(fast), Ok(full)) => {
            let unread_field_refused = matches!(full.action, Action::Reject(_))
                && !matches!(fast.action, Action::Reject(_));
            if !unread_field_refused && !old_object_unread(data, fast, full) {
                assert_eq!(fast, full, "the two decoders disagree");
            }
        }
        (Err(fast), Err(full)) => assert_eq!(fast, full, "the two decoders fail differently"),
        (Err(fast), Ok(full)) => panic!("only the fast decoder failed: {fast:?} / {full:?}"),
        // Only for a field whose type is wrong: the body must still be JSON.
        (Ok(_), Err(_)) => assert!(
            serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
            "the fast decoder answered a body that is not JSON"
        ),
    }
    if let Ok(review) = fast {
        let _ = signet::admission::respond_action(&review);
        let denied = signet::decision::Verdict {
            allowed: false,
            denials: vec![String::from_utf8_lossy(data).into_owned()],
            ..Default::default()
        };
        let _ = signet::admission::respond(&review, &denied);
    }
});

/// Whether `full` is the full decoder's answer for an UPDATE whose old object it could not read
/// (as without one: every image checked) and `fast` the same review comparing with the old
/// images: a subset of those images checked, or none.
fn old_object_unread(data: &[u8], fast: &Review, full: &Review) -> bool {
    let Action::Check(all) = &full.action else {
        return false;
    };
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    match body.pointer_mut("/request/oldObject") {
        Some(old) if !old.is_null() => *old = serde_json::Value::Null,
        _ => return false,
    }
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return false;
    };
    let as_without_old = decode_with_object(&bytes)
        .map(|r| r.without_object())
        .as_ref()
        == Ok(full);
    let fewer = match &fast.action {
        Action::Check(some) => some.iter().all(|u| all.iter().any(|a| a.image == u.image)),
        Action::Skip(SkipReason::NoNewImage | SkipReason::Deleting) => true,
        _ => false,
    };
    as_without_old
        && fewer
        && (fast.uid(), fast.name(), fast.namespace(), fast.dry_run())
            == (full.uid(), full.name(), full.namespace(), full.dry_run())
}
