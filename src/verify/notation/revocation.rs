//! Revocation of the signing chain, from CRLs fetched *outside* the verifier.
//!
//! The verifier stays pure: [`super::revocation_locations`] tells the caller which CRL and OCSP URLs a chain
//! names, the caller fetches the CRLs (through a [`CrlSource`], bounded by its own deadline),
//! and hands them back as [`RevocationData`]. Semantics per the Notary Project spec: a
//! certificate that names no revocation location is not revoked; one whose status cannot be
//! determined (no CRL available, CRL expired, OCSP only) is a revocation failure, like a
//! revoked one. Not implemented: OCSP (a certificate with OCSP and no CRL location is
//! "unknown"), delta CRLs, and the invalidity-date exception for signatures made before a
//! key compromise.

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

/// CRLs (DER) the caller fetched from the URLs [`super::revocation_locations`] reported. Order does not matter;
/// irrelevant CRLs are ignored.
#[derive(Debug, Clone, Default)]
pub struct RevocationData {
    pub crls: Vec<Vec<u8>>,
}

/// Where one certificate of a signing chain publishes its revocation status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationLocation {
    /// The certificate's subject, for messages.
    pub certificate: String,
    /// `http://` CRL distribution points (the spec supports HTTP only).
    pub crl_urls: Vec<String>,
    /// OCSP responders (reported, not yet used).
    pub ocsp_urls: Vec<String>,
}

/// The I/O seam: fetches one CRL. Implemented by the registry/decision layer with the Notary
/// default timeout (5 s per distribution point) and a size cap (notation-core-go: 32 MiB).
pub trait CrlSource: Send + Sync {
    fn fetch<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;
}

/// Fetches every CRL the locations name (deduplicated, at most [`MAX_CRLS`]). Fetch failures
/// are left out: the verifier then reports the status as unknown, which is the spec's rule.
pub async fn fetch_crls(
    source: &dyn CrlSource,
    locations: &[RevocationLocation],
) -> RevocationData {
    let mut urls: Vec<&str> = Vec::new();
    for l in locations {
        for u in &l.crl_urls {
            if !urls.contains(&u.as_str()) && urls.len() < MAX_CRLS {
                urls.push(u);
            }
        }
    }
    let mut crls = Vec::new();
    for u in urls {
        if let Ok(der) = source.fetch(u).await {
            crls.push(der);
        }
    }
    RevocationData { crls }
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
    for c in &chain[..end] {
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
            out.push(RevocationLocation {
                certificate: c.subject.clone(),
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
    // Each certificate with a CRL location needs a CRL from its issuer; OCSP alone is unknown.
    for (i, c) in chain.iter().enumerate() {
        let Some(loc) = locations.iter().find(|l| l.certificate == c.subject) else {
            continue;
        };
        if loc.crl_urls.is_empty() {
            return Err(CheckError::Revocation(format!(
                "the revocation status of {} is unknown: it names only OCSP responders, which \
                 signet does not query yet",
                c.subject
            )));
        }
        let issuer = c.cert.tbs_certificate().issuer();
        let has_crl = crls.iter().any(|der| {
            <CertificateList as der::Decode>::from_der(der)
                .is_ok_and(|l| &l.tbs_cert_list.issuer == issuer)
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
