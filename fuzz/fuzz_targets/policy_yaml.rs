//! A policy file. Loading either succeeds or names what is wrong; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // File references are resolved relative to this (nonexistent) directory.
    let path = std::path::Path::new("/nonexistent/signet-fuzz/policy.yaml");
    if let Err(errors) = signet::policy::load_str(path, text) {
        for e in errors {
            let _ = e.to_string();
        }
    }
});
