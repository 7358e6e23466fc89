//! An RFC 3161 timestamp token (CMS SignedData).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::notation::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::timestamp_token(data);
});
