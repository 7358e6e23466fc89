//! An AdmissionReview body as the API server (or anyone reaching the port) sends it: decoded,
//! then answered. Neither may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(review) = signet::admission::decode(data) {
        let _ = signet::admission::respond_action(&review);
        let denied = signet::decision::Verdict {
            allowed: false,
            denials: vec![String::from_utf8_lossy(data).into_owned()],
            ..Default::default()
        };
        let _ = signet::admission::respond(&review, &denied);
    }
});
