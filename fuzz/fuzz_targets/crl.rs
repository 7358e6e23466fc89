//! A DER CRL answer about a certificate, judged against its issuer. The pair comes from
//! `SIGNET_FUZZ_PKI` (a directory with `leaf.der` and `ca.der`, which scripts/fuzz.sh makes
//! with openssl along with seed answers signed by that CA), or is generated here.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet::verify::notation::fuzzing::Pair;

#[path = "pki.rs"]
mod pki;

fuzz_target!(|data: &[u8]| {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(pki::pair).crl(data);
});
