//! RFC 3161 timestamp countersignatures of Notary Project signatures.

use std::time::SystemTime;

use super::CheckError;

/// Verifies a timestamp token over `signature` against the `tsa` trust store certificates and
/// returns the time interval it attests (genTime ± accuracy).
pub fn verify(
    _token: &[u8],
    _signature: &[u8],
    _tsa_certs: &[&[u8]],
    _now: SystemTime,
) -> Result<(SystemTime, SystemTime), CheckError> {
    Err(CheckError::Timestamp(
        "RFC 3161 timestamp verification is not implemented yet".into(),
    ))
}
