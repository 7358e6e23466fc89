//! An AdmissionReview body as the API server (or anyone reaching the port) sends it: decoded,
//! then answered. Neither may panic, whatever the bytes. The validating route's decoder (which
//! reads only what a decision needs) must agree with the full decoder of the pinning route:
//! the same review and action whenever both read the body, the same error whenever it fails.
//! It may answer a body the full decoder refuses (an error, or a pod spec it cannot read) only
//! for a field no decision reads, such as `enableServiceLinks: "Pending"`: those are checked to
//! be JSON, not to have their Kubernetes types.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::admission::{Action, decode, decode_with_object};

fuzz_target!(|data: &[u8]| {
    let fast = decode(data);
    let full = decode_with_object(data).map(|r| r.without_object());
    match (&fast, &full) {
        (Ok(fast), Ok(full)) => {
            let unread_field_refused = matches!(full.action, Action::Reject(_))
                && !matches!(fast.action, Action::Reject(_));
            if !unread_field_refused {
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
