//! A Notation signature envelope as a registry serves it (the first byte picks COSE or JWS),
//! then its certificate chain and timestamp token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::notation::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Some((first, rest)) = data.split_first() {
        fuzzing::envelope(first & 1 == 1, rest);
    }
});
