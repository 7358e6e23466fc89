//! The revocation URLs a certificate or CRL names, read from its extensions: CRL distribution
//! points, the delta CRLs of freshestCRL, and the OCSP responders of authorityInfoAccess.
//! Reading only, no judgement and no I/O; a leaf that the OCSP reader, the fetch plan and the
//! revocation checks all use.

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints, FreshestCrl};

const OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");

/// The delta CRLs a base CRL names (freshestCRL).
pub fn delta_urls(der: &[u8]) -> Vec<String> {
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

/// A certificate's OCSP responders.
pub fn ocsp_urls(cert: &Certificate) -> Vec<String> {
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
