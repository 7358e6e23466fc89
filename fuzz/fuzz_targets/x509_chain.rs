//! A certificate chain of attacker-chosen DER certificates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::verify::notation::fuzzing;

fuzz_target!(|ders: Vec<Vec<u8>>| {
    fuzzing::certificates(&ders);
});
