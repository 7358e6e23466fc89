//! Revocation checks of Notation signing and TSA chains against the CRLs and OCSP responses
//! fetched for them (see [`super::revocation_plan`]). Semantics per the Notary Project spec,
//! root to leaf: a certificate that names no revocation location is not revoked; OCSP is
//! preferred and CRLs (base and delta, see [`super::crl`]) are the fallback when OCSP gives no
//! definitive answer; a delegated OCSP responder without id-pkix-ocsp-nocheck must itself be
//! shown unrevoked by its issuer's CRL; a revoked entry whose invalidity date is after the
//! signature's trusted time does not count; a certificate whose status cannot be determined (no
//! usable answer, stale answer, "unknown") is a revocation failure, like a revoked one.

use std::time::SystemTime;

use super::CheckError;
use super::chain::ChainCert;
use super::crl::{self, CrlStatus};
use super::ocsp::{self, Status};
use super::revocation_plan::{MAX_CRLS, RevocationData, checked};
use super::revocation_urls::{crl_urls, ocsp_urls};

/// Why OCSP gave no usable answer about a certificate (then the CRLs decide, if it names any).
#[derive(Debug, thiserror::Error)]
enum NoOcspAnswer {
    /// A response, or the delegated responder's certificate, that cannot be used.
    #[error("{0}")]
    Unusable(#[source] CheckError),
    #[error("the OCSP responder {0}")]
    ResponderRevoked(String),
    #[error("the revocation status of the OCSP responder {0}")]
    ResponderUnknown(String),
    #[error("no OCSP response was available")]
    None,
}

/// Checks the chain against the supplied answers at `now`, root to leaf. `signed_at` is the
/// signature's trusted time (timestamp or authentic signing time), if one was established: a
/// certificate revoked for a compromise that began after it still vouches for the signature.
/// A pass holds until the earliest nextUpdate of the answers it relied on (returned, if any).
pub fn check(
    chain: &[ChainCert],
    data: &RevocationData,
    now: SystemTime,
    signed_at: Option<SystemTime>,
) -> Result<Option<SystemTime>, CheckError> {
    let mut until: Option<SystemTime> = None;
    let mut holds_until = |t: Option<SystemTime>| {
        until = match (until, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let crls: Vec<&[u8]> = data.crls.iter().take(MAX_CRLS).map(Vec::as_slice).collect();
    for (i, c) in checked(chain).iter().enumerate().rev() {
        let (crl_urls, _) = crl_urls(&c.cert);
        let ocsp_urls = ocsp_urls(&c.cert);
        if crl_urls.is_empty() && ocsp_urls.is_empty() {
            continue;
        }
        let issuer = chain.get(i + 1).unwrap_or(c);
        let why_not_ocsp = if ocsp_urls.is_empty() {
            None
        } else {
            match ocsp_status(c, issuer, data, &crls, now) {
                Ok((Status::Good, next)) => {
                    holds_until(next);
                    continue;
                }
                Ok((Status::Revoked { on, invalidity }, next)) => {
                    if let (Some(inv), Some(at)) = (invalidity, signed_at)
                        && at < inv
                    {
                        holds_until(next);
                        continue;
                    }
                    return Err(CheckError::Revocation(format!(
                        "certificate {i} of the chain ({}) is revoked (OCSP: revoked on {})",
                        c.subject,
                        super::fmt_time(on)
                    )));
                }
                Ok((Status::Unknown, _)) => Some("the OCSP responder does not know it".to_string()),
                Err(e) => Some(e.to_string()),
            }
        };
        if crl_urls.is_empty() {
            return Err(CheckError::RevocationUnknown(format!(
                "the revocation status of {} is unknown: {}",
                c.subject,
                why_not_ocsp.unwrap_or_default()
            )));
        }
        match crl::status(c, issuer, &crls, now, signed_at) {
            CrlStatus::Good(next) => holds_until(next),
            CrlStatus::Revoked(what) => {
                return Err(CheckError::Revocation(format!(
                    "certificate {i} of the chain: {what}"
                )));
            }
            CrlStatus::Unknown(why) => {
                let ocsp = why_not_ocsp
                    .map(|w| format!(" (OCSP: {w})"))
                    .unwrap_or_default();
                return Err(CheckError::RevocationUnknown(format!(
                    "the revocation status of {why}{ocsp}"
                )));
            }
        }
    }
    Ok(until)
}

/// The OCSP status of `cert` from the supplied responses, and until when it holds (the
/// earliest nextUpdate involved), or why there is none.
fn ocsp_status(
    cert: &ChainCert,
    issuer: &ChainCert,
    data: &RevocationData,
    crls: &[&[u8]],
    now: SystemTime,
) -> Result<(Status, Option<SystemTime>), NoOcspAnswer> {
    let mut error = None;
    for resp in data.ocsp.iter().take(MAX_CRLS) {
        match ocsp::status(resp, cert, issuer, now) {
            Ok(Some(answer)) => {
                let Some(der) = &answer.responder_to_check else {
                    return Ok((answer.status, answer.next_update));
                };
                // The delegated responder has no id-pkix-ocsp-nocheck: its issuer's CRL
                // must show it is not revoked, if it names one.
                let responder = super::chain::parse(std::slice::from_ref(der))
                    .map_err(NoOcspAnswer::Unusable)?;
                if crl_urls(&responder[0].cert).0.is_empty() {
                    return Ok((answer.status, answer.next_update));
                }
                return match crl::status(&responder[0], issuer, crls, now, None) {
                    CrlStatus::Good(next) => Ok((
                        answer.status,
                        answer.next_update.into_iter().chain(next).min(),
                    )),
                    CrlStatus::Revoked(what) => Err(NoOcspAnswer::ResponderRevoked(what)),
                    CrlStatus::Unknown(why) => Err(NoOcspAnswer::ResponderUnknown(why)),
                };
            }
            Ok(None) => {}
            Err(e) => error = Some(NoOcspAnswer::Unusable(e)),
        }
    }
    Err(error.unwrap_or(NoOcspAnswer::None))
}
