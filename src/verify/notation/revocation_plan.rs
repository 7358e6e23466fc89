//! The revocation fetch plan of Notation signing and TSA chains: which CRLs and OCSP responses
//! to fetch, and the types the verifier and the fetcher exchange.
//!
//! The verifier stays pure: the format seam's check (`super::Notation`) tells the caller which
//! CRL and OCSP URLs the chains of signatures that passed integrity and authenticity name (with the OCSP
//! request bodies), the caller fetches them (through a [`RevocationSource`], bounded by its own
//! deadline: the Notary defaults are 2 s per OCSP responder and 5 s per CRL; the HTTP
//! implementation is `crate::revocation`), and hands the answers back as [`RevocationData`],
//! which [`super::revocation_check`] judges.
//!
//! Like `verify`: must not import `registry`, `discovery` or hyper; the fetching is behind
//! `RevocationSource`.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use der::Decode;
use futures_util::future::join_all;

use super::chain::ChainCert;
use super::ocsp::{self, Status};
use super::revocation_urls::{crl_urls, delta_urls, ocsp_urls};

/// The most CRLs considered per verification.
pub const MAX_CRLS: usize = 16;

/// Revocation answers the caller fetched for the locations the format seam's plan named
/// (`crate::verify::format::Plan`). Order does not matter; irrelevant ones are
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

/// Why a source could not fetch one answer: the source's own typed error, boxed. The verifier
/// only sees the answer missing (status unknown); the source logs and counts the cause.
pub type FetchError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, so the trait stays object safe without an async-trait dependency.
pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>>;

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

/// The OCSP answer about the location's certificate in `resp`, if it is a valid one.
fn judge(l: &RevocationLocation, resp: &[u8], now: SystemTime) -> Option<ocsp::Answer> {
    let pair = super::chain::parse(&[l.certificate_der.clone(), l.issuer_der.clone()]).ok()?;
    ocsp::status(resp, &pair[0], &pair[1], now).ok().flatten()
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
pub(super) fn checked(chain: &[ChainCert]) -> &[ChainCert] {
    if chain.len() > 1 {
        &chain[..chain.len() - 1]
    } else {
        chain
    }
}
