//! Revocation of signing and TSA chains, from CRLs and OCSP responses fetched *outside* the
//! verifier.
//!
//! The verifier stays pure: [`super::revocation_locations`] tells the caller which CRL and OCSP
//! URLs the chains of signatures that passed integrity and authenticity name (with the OCSP
//! request bodies), the caller fetches them (through a [`RevocationSource`], bounded by its own
//! deadline: the Notary defaults are 2 s per OCSP responder and 5 s per CRL), and hands the
//! answers back as [`RevocationData`]. Semantics per the Notary Project spec, root to leaf:
//! a certificate that names no revocation location is not revoked; OCSP is preferred and CRLs
//! (base and delta, see [`super::crl`]) are the fallback when OCSP gives no definitive answer;
//! a delegated OCSP responder without id-pkix-ocsp-nocheck must itself be shown unrevoked by
//! its issuer's CRL; a revoked entry whose invalidity date is after the signature's trusted
//! time does not count; a certificate whose status cannot be determined (no usable answer,
//! stale answer, "unknown") is a revocation failure, like a revoked one.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::Decode;
use futures_util::future::join_all;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints, FreshestCrl};

use super::CheckError;
use super::chain::ChainCert;
use super::crl::{self, CrlStatus};
use super::ocsp::{self, Status};

const OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// The most CRLs considered per verification.
pub const MAX_CRLS: usize = 16;

/// Revocation answers the caller fetched for the locations
/// [`super::revocation_locations`] reported. Order does not matter; irrelevant ones are
/// ignored.
#[derive(Debug, Clone, Default)]
pub struct RevocationData {
    /// DER CRLs.
    pub crls: Vec<Vec<u8>>,
    /// DER OCSP responses.
    pub ocsp: Vec<Vec<u8>>,
}

/// Where one certificate of a signing chain publishes its revocation status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationLocation {
    /// The certificate's subject, for messages.
    pub certificate: String,
    /// CRL distribution points, then the delta CRLs the certificate names (freshestCRL). Only
    /// `http://` ones are fetched (the spec supports HTTP only).
    pub crl_urls: Vec<String>,
    /// OCSP responders.
    pub ocsp_urls: Vec<String>,
    /// The DER OCSPRequest to POST (`Content-Type: application/ocsp-request`) to each responder.
    pub ocsp_request: Option<Vec<u8>>,
    /// The certificate and its issuer (DER), so that the fetcher can tell a definitive OCSP
    /// answer from one that calls for the CRL fallback.
    pub certificate_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
}

/// A boxed future, so the trait stays object safe without an async-trait dependency.
pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// The I/O seam, implemented by the layer that may use the network: with timeouts, size caps
/// (notation-core-go caps CRLs at 32 MiB) and `http://` only.
pub trait RevocationSource: Send + Sync {
    /// GETs one CRL.
    fn fetch_crl<'a>(&'a self, url: &'a str) -> Fetch<'a>;
    /// POSTs one OCSP request and returns the response body.
    fn post_ocsp<'a>(&'a self, url: &'a str, request: &'a [u8]) -> Fetch<'a>;
}

/// Asks the responders and fetches the CRLs the locations name (deduplicated, at most
/// [`MAX_CRLS`] CRLs): per certificate, the OCSP responders in turn until one answers; its CRLs
/// only when no responder gave a definitive (good or revoked) answer, and the CRLs of a
/// delegated responder that lacks id-pkix-ocsp-nocheck. Then the delta CRLs that fetched base
/// CRLs name. The certificates are asked about concurrently, and the CRLs of each round are
/// fetched concurrently, so a slow responder costs its time limit once, not once per
/// certificate. Failures are left out: the verifier then reports the status as unknown, which
/// is the spec's rule.
pub async fn fetch_revocation(
    source: &dyn RevocationSource,
    locations: &[RevocationLocation],
) -> RevocationData {
    let now = SystemTime::now();
    let mut data = RevocationData::default();
    let mut crl_urls: Vec<String> = Vec::new();
    let want = |urls: &[String], list: &mut Vec<String>| {
        for u in urls {
            if !list.contains(u) && list.len() < MAX_CRLS {
                list.push(u.clone());
            }
        }
    };
    let asked = join_all(locations.iter().map(|l| ask_responders(source, l, now))).await;
    for (l, (answer, definitive, responder_crls)) in locations.iter().zip(asked) {
        data.ocsp.extend(answer);
        want(&responder_crls, &mut crl_urls);
        if !definitive {
            want(&l.crl_urls, &mut crl_urls);
        }
    }
    // Base CRLs, then the delta CRLs they name (one more round).
    let mut round = crl_urls.clone();
    for _ in 0..2 {
        let fetched = join_all(round.iter().map(|u| source.fetch_crl(u))).await;
        round = Vec::new();
        for der in fetched.into_iter().flatten() {
            let before = crl_urls.len();
            want(&delta_urls(&der), &mut crl_urls);
            round.extend_from_slice(&crl_urls[before..]);
            data.crls.push(der);
        }
    }
    data
}

/// One certificate's OCSP responders, in turn until one answers: (the answer, whether it is a
/// definitive good or revoked status, the CRLs of a delegated responder to check).
async fn ask_responders(
    source: &dyn RevocationSource,
    l: &RevocationLocation,
    now: SystemTime,
) -> (Option<Vec<u8>>, bool, Vec<String>) {
    let Some(req) = &l.ocsp_request else {
        return (None, false, Vec::new());
    };
    for u in &l.ocsp_urls {
        let Ok(resp) = source.post_ocsp(u, req).await else {
            continue;
        };
        let (definitive, responder_crls) = match judge(l, &resp, now) {
            Some(a) if a.responder_to_check.is_some() => {
                (a.status != Status::Unknown, ocsp::responder_crl_urls(&resp))
            }
            Some(a) => (a.status != Status::Unknown, Vec::new()),
            None => (false, Vec::new()),
        };
        return (Some(resp), definitive, responder_crls);
    }
    (None, false, Vec::new())
}

/// The delta CRLs a base CRL names (freshestCRL).
fn delta_urls(der: &[u8]) -> Vec<String> {
    let Ok(list) = <x509_cert::crl::CertificateList as Decode>::from_der(der) else {
        return Vec::new();
    };
    list.tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == FRESHEST_CRL)
        .filter_map(|e| FreshestCrl::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|f| uris(f.0))
        .collect()
}

/// Until when an answer is current (its nextUpdate), unverified: for caches, which must not
/// serve an answer the verifier would then reject as stale. `None`: it does not say, or it is
/// unreadable.
pub fn fresh_until(answer: &[u8], is_ocsp: bool) -> Option<SystemTime> {
    if is_ocsp {
        return ocsp::next_update(answer);
    }
    <x509_cert::crl::CertificateList as Decode>::from_der(answer)
        .ok()?
        .tbs_cert_list
        .next_update
        .map(|t| t.to_system_time())
}

const FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");

/// The OCSP answer about the location's certificate in `resp`, if it is a valid one.
fn judge(l: &RevocationLocation, resp: &[u8], now: SystemTime) -> Option<ocsp::Answer> {
    let pair = super::chain::parse(&[l.certificate_der.clone(), l.issuer_der.clone()]).ok()?;
    ocsp::status(resp, &pair[0], &pair[1], now).ok().flatten()
}

fn uris(points: Vec<x509_cert::ext::pkix::crl::dp::DistributionPoint>) -> Vec<String> {
    let mut out = Vec::new();
    for dp in points {
        if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
            for n in names {
                if let GeneralName::UniformResourceIdentifier(u) = n {
                    out.push(u.to_string());
                }
            }
        }
    }
    out
}

/// A certificate's CRL distribution points and the delta CRLs it names (freshestCRL).
pub fn crl_urls(cert: &Certificate) -> (Vec<String>, Vec<String>) {
    let tbs = cert.tbs_certificate();
    let base = match tbs.get_extension::<CrlDistributionPoints>() {
        Ok(Some((_, dps))) => uris(dps.0),
        _ => Vec::new(),
    };
    let delta = match tbs.get_extension::<FreshestCrl>() {
        Ok(Some((_, dps))) => uris(dps.0),
        _ => Vec::new(),
    };
    (base, delta)
}

fn ocsp_urls(cert: &Certificate) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some((_, aia))) = cert
        .tbs_certificate()
        .get_extension::<AuthorityInfoAccessSyntax>()
    {
        for ad in aia.0 {
            if ad.access_method == OCSP
                && let GeneralName::UniformResourceIdentifier(u) = ad.access_location
            {
                out.push(u.to_string());
            }
        }
    }
    out
}

/// The revocation locations of every certificate of a chain except its root (a trust anchor is
/// not checked).
pub fn chain_locations(chain: &[ChainCert]) -> Vec<RevocationLocation> {
    let mut out = Vec::new();
    for (i, c) in checked(chain).iter().enumerate() {
        let (mut crl, delta) = crl_urls(&c.cert);
        crl.extend(delta);
        let ocsp_urls = ocsp_urls(&c.cert);
        if crl.is_empty() && ocsp_urls.is_empty() {
            continue;
        }
        let issuer = chain.get(i + 1).unwrap_or(c);
        out.push(RevocationLocation {
            certificate: c.subject.clone(),
            ocsp_request: if ocsp_urls.is_empty() {
                None
            } else {
                ocsp::request(c, issuer)
            },
            crl_urls: crl,
            ocsp_urls,
            certificate_der: c.der.clone(),
            issuer_der: issuer.der.clone(),
        });
    }
    out
}

/// The certificates whose status is checked: all but the root; a lone self-signed certificate
/// is both leaf and root, and is checked.
fn checked(chain: &[ChainCert]) -> &[ChainCert] {
    if chain.len() > 1 {
        &chain[..chain.len() - 1]
    } else {
        chain
    }
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
                Err(e) => Some(e),
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
) -> Result<(Status, Option<SystemTime>), String> {
    let mut error = None;
    for resp in data.ocsp.iter().take(MAX_CRLS) {
        match ocsp::status(resp, cert, issuer, now) {
            Ok(Some(answer)) => {
                let Some(der) = &answer.responder_to_check else {
                    return Ok((answer.status, answer.next_update));
                };
                // The delegated responder has no id-pkix-ocsp-nocheck: its issuer's CRL
                // must show it is not revoked, if it names one.
                let responder =
                    super::chain::parse(std::slice::from_ref(der)).map_err(|e| e.to_string())?;
                if crl_urls(&responder[0].cert).0.is_empty() {
                    return Ok((answer.status, answer.next_update));
                }
                return match crl::status(&responder[0], issuer, crls, now, None) {
                    CrlStatus::Good(next) => Ok((
                        answer.status,
                        answer.next_update.into_iter().chain(next).min(),
                    )),
                    CrlStatus::Revoked(what) => Err(format!("the OCSP responder {what}")),
                    CrlStatus::Unknown(why) => {
                        Err(format!("the revocation status of the OCSP responder {why}"))
                    }
                };
            }
            Ok(None) => {}
            Err(e) => error = Some(e.to_string()),
        }
    }
    Err(error.unwrap_or_else(|| "no OCSP response was available".into()))
}
