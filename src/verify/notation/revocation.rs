//! Revocation of the signing chain, from CRLs and OCSP responses fetched *outside* the
//! verifier.
//!
//! The verifier stays pure: [`super::revocation_locations`] tells the caller which CRL and OCSP
//! URLs a chain names (with the OCSP request bodies), the caller fetches them (through a
//! [`RevocationSource`], bounded by its own deadline: the Notary defaults are 2 s per OCSP
//! responder and 5 s per CRL), and hands the answers back as [`RevocationData`]. Semantics per
//! the Notary Project spec: a certificate that names no revocation location is not revoked;
//! OCSP is preferred and CRLs are the fallback; a certificate whose status cannot be determined
//! (no usable answer, stale answer, "unknown") is a revocation failure, like a revoked one. Not
//! implemented: delta CRLs, revocation of the OCSP responder's own certificate and of TSA
//! chains, and the invalidity-date exception for signatures made before a key compromise.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};

use super::CheckError;
use super::chain::ChainCert;

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
    /// `http://` CRL distribution points (the spec supports HTTP only).
    pub crl_urls: Vec<String>,
    /// OCSP responders.
    pub ocsp_urls: Vec<String>,
    /// The DER OCSPRequest to POST (`Content-Type: application/ocsp-request`) to each responder.
    pub ocsp_request: Option<Vec<u8>>,
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

/// Asks every responder and fetches every CRL the locations name (deduplicated, at most
/// [`MAX_CRLS`] CRLs). CRLs are fetched only for certificates without OCSP, or when OCSP gave
/// no answer. Failures are left out: the verifier then reports the status as unknown, which is
/// the spec's rule.
pub async fn fetch_revocation(
    source: &dyn RevocationSource,
    locations: &[RevocationLocation],
) -> RevocationData {
    let mut data = RevocationData::default();
    let mut crl_urls: Vec<&str> = Vec::new();
    for l in locations {
        let mut answered = false;
        if let Some(req) = &l.ocsp_request {
            for u in &l.ocsp_urls {
                if let Ok(resp) = source.post_ocsp(u, req).await {
                    data.ocsp.push(resp);
                    answered = true;
                    break;
                }
            }
        }
        if !answered {
            for u in &l.crl_urls {
                if !crl_urls.contains(&u.as_str()) && crl_urls.len() < MAX_CRLS {
                    crl_urls.push(u);
                }
            }
        }
    }
    for u in crl_urls {
        if let Ok(der) = source.fetch_crl(u).await {
            data.crls.push(der);
        }
    }
    data
}

/// The revocation locations of every certificate of a chain except its root (a trust anchor is
/// not checked).
pub fn chain_locations(chain: &[ChainCert]) -> Vec<RevocationLocation> {
    // A lone self-signed certificate is both leaf and root: check it.
    let end = if chain.len() > 1 {
        chain.len() - 1
    } else {
        chain.len()
    };
    let mut out = Vec::new();
    for (i, c) in chain[..end].iter().enumerate() {
        let tbs = c.cert.tbs_certificate();
        let mut crl_urls = Vec::new();
        let mut ocsp_urls = Vec::new();
        if let Ok(Some((_, dps))) = tbs.get_extension::<CrlDistributionPoints>() {
            for dp in dps.0 {
                if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                    for n in names {
                        if let GeneralName::UniformResourceIdentifier(u) = n {
                            crl_urls.push(u.to_string());
                        }
                    }
                }
            }
        }
        if let Ok(Some((_, aia))) = tbs.get_extension::<AuthorityInfoAccessSyntax>() {
            for ad in aia.0 {
                if ad.access_method == OCSP
                    && let GeneralName::UniformResourceIdentifier(u) = ad.access_location
                {
                    ocsp_urls.push(u.to_string());
                }
            }
        }
        if !crl_urls.is_empty() || !ocsp_urls.is_empty() {
            let issuer = chain.get(i + 1).unwrap_or(c);
            out.push(RevocationLocation {
                certificate: c.subject.clone(),
                ocsp_request: if ocsp_urls.is_empty() {
                    None
                } else {
                    super::ocsp::request(c, issuer)
                },
                crl_urls,
                ocsp_urls,
            });
        }
    }
    out
}

/// Checks the chain against the supplied CRLs at `now`.
pub fn check(
    chain: &[ChainCert],
    data: &RevocationData,
    now: SystemTime,
) -> Result<(), CheckError> {
    let locations = chain_locations(chain);
    if locations.is_empty() {
        return Ok(());
    }
    let crls: Vec<&[u8]> = data.crls.iter().take(MAX_CRLS).map(Vec::as_slice).collect();
    // Per certificate: an OCSP answer if there is one, else a CRL from its issuer is needed.
    for (i, c) in chain.iter().enumerate() {
        let Some(loc) = locations.iter().find(|l| l.certificate == c.subject) else {
            continue;
        };
        let issuer = chain.get(i + 1).unwrap_or(c);
        let mut ocsp_error = None;
        let mut answer = None;
        for resp in data.ocsp.iter().take(MAX_CRLS) {
            match super::ocsp::status(resp, c, issuer, now) {
                Ok(Some(s)) => {
                    answer = Some(s);
                    break;
                }
                Ok(None) => {}
                Err(e) => ocsp_error = Some(e),
            }
        }
        match answer {
            Some(super::ocsp::Status::Good) => continue,
            Some(super::ocsp::Status::Revoked) => {
                return Err(CheckError::Revocation(format!(
                    "certificate {i} of the chain ({}) is revoked (OCSP)",
                    c.subject
                )));
            }
            Some(super::ocsp::Status::Unknown) => {
                return Err(CheckError::Revocation(format!(
                    "the revocation status of {} is unknown: the OCSP responder does not know it",
                    c.subject
                )));
            }
            None => {}
        }
        if loc.crl_urls.is_empty() {
            let why = ocsp_error.map_or_else(
                || "no OCSP response was available".to_string(),
                |e| e.to_string(),
            );
            return Err(CheckError::Revocation(format!(
                "the revocation status of {} is unknown: {why}",
                c.subject
            )));
        }
        let issuer_name = c.cert.tbs_certificate().issuer();
        let has_crl = crls.iter().any(|der| {
            <CertificateList as der::Decode>::from_der(der)
                .is_ok_and(|l| &l.tbs_cert_list.issuer == issuer_name)
        });
        if !has_crl {
            return Err(CheckError::Revocation(format!(
                "the revocation status of certificate {i} ({}) is unknown: no CRL from {} was \
                 available",
                c.subject,
                loc.crl_urls.join(", ")
            )));
        }
    }
    if crls.is_empty() {
        // Every certificate that needed one had a good OCSP answer.
        return Ok(());
    }
    let parsed: Vec<webpki::CertRevocationList<'_>> = crls
        .iter()
        .filter_map(|der| webpki::BorrowedCertRevocationList::from_der(der).ok())
        .map(webpki::CertRevocationList::from)
        .collect();
    let refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
    let options = webpki::RevocationOptionsBuilder::new(&refs)
        .map_err(|_| CheckError::Revocation("no readable CRL was supplied".into()))?
        .with_depth(webpki::RevocationCheckDepth::Chain)
        .with_status_policy(webpki::UnknownStatusPolicy::Allow)
        .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
        .build();
    let ders: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let last = ders.len() - 1;
    let anchor = webpki::anchor_from_trusted_cert(&ders[last])
        .map_err(|e| CheckError::Revocation(format!("unusable root certificate: {e}")))?;
    let ee = webpki::EndEntityCert::try_from(&ders[0])
        .map_err(|e| CheckError::Revocation(format!("unusable signing certificate: {e}")))?;
    let intermediates = if last > 1 { &ders[1..last] } else { &[][..] };
    // CRL freshness is judged now; certificate validity is the authentic-timestamp check's
    // business, so the time is clamped into the chain's validity to keep it out of this one.
    let latest_start = chain.iter().map(|c| c.not_before).max().unwrap_or(now);
    let earliest_end = chain.iter().map(|c| c.not_after).min().unwrap_or(now);
    let at = now.clamp(latest_start, earliest_end.max(latest_start));
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        UnixTime::since_unix_epoch(since),
        webpki::KeyUsage::required_if_present(super::chain::EKU_CODE_SIGNING),
        Some(options),
        None,
    )
    .map(|_| ())
    .map_err(|e| match e {
        webpki::Error::CertRevoked => CheckError::Revocation(format!(
            "a certificate of the chain (signer {}) is revoked",
            chain[0].subject
        )),
        webpki::Error::CrlExpired { .. } => CheckError::Revocation(
            "the revocation status is unknown: the CRL is past its nextUpdate".into(),
        ),
        other => CheckError::Revocation(format!(
            "the revocation status is unknown: the CRL could not be used ({other})"
        )),
    })
}
