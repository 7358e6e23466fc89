//! OCSP (RFC 6960) for the signing chain, pure: [`request`] encodes what the caller POSTs to a
//! responder, [`status`] verifies what came back.
//!
//! A response counts only if it is a successful basic response, names this certificate
//! (CertID by issuer name hash, issuer key hash and serial, with SHA-1 or SHA-2), is signed by
//! the issuer or by a responder certificate the issuer delegated to (id-kp-OCSPSigning, checked
//! with webpki), and is fresh (thisUpdate not in the future, nextUpdate not passed). A delegated
//! responder certificate without id-pkix-ocsp-nocheck is reported back, because the spec wants
//! its own revocation checked through CRLs; a revoked status carries the entry's invalidity
//! date, if any.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;

use super::CheckError;
use super::chain::ChainCert;
use crate::verify::pkix::der::{
    TAG_CTX0, TAG_CTX1, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE, Tlv,
    Walker,
};

const OID_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
/// DER value of id-kp-OCSPSigning, for webpki.
const EKU_OCSP_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// Clock skew tolerated on thisUpdate.
const SKEW: Duration = Duration::from_secs(300);
const MAX_RESPONSE: usize = 64 * 1024;

const W: Walker<CheckError> = Walker { context: bad_str };

fn bad_str(what: &str) -> CheckError {
    CheckError::Revocation(format!("the OCSP response {what}"))
}

const OID_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
const OID_INVALIDITY_DATE: &str = "2.5.29.24";

/// What a verified response says about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        on: SystemTime,
        /// When the key is known to have been compromised (RFC 5280 invalidityDate).
        invalidity: Option<SystemTime>,
    },
    Unknown,
}

/// A verified answer about one certificate.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Status,
    /// The response's nextUpdate, if it has one.
    pub next_update: Option<SystemTime>,
    /// The delegated responder certificate (DER) when it lacks id-pkix-ocsp-nocheck: its own
    /// revocation status must then be checked with CRLs before the answer is relied on.
    pub responder_to_check: Option<Vec<u8>>,
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// SHA-256 AlgorithmIdentifier (with NULL parameters, as OpenSSL writes it).
const SHA256_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];

/// The DER OCSPRequest for `cert` issued by `issuer` (SHA-256 CertID, no nonce, unsigned), to
/// POST as `application/ocsp-request`.
pub fn request(cert: &ChainCert, issuer: &ChainCert) -> Option<Vec<u8>> {
    let CertIdParts { name, key, serial } = cert_id_parts(cert, issuer).ok()?;
    let mut cert_id = SHA256_ALG_ID.to_vec();
    cert_id.extend(tlv(
        TAG_OCTET_STRING,
        digest::digest(&digest::SHA256, &name).as_ref(),
    ));
    cert_id.extend(tlv(
        TAG_OCTET_STRING,
        digest::digest(&digest::SHA256, key).as_ref(),
    ));
    cert_id.extend(serial);
    let request = tlv(TAG_SEQUENCE, &tlv(TAG_SEQUENCE, &cert_id));
    let request_list = tlv(TAG_SEQUENCE, &request);
    let tbs = tlv(TAG_SEQUENCE, &request_list);
    Some(tlv(TAG_SEQUENCE, &tbs))
}

/// What a CertID identifies `cert` (issued by `issuer`) by, before hashing: the DER of the
/// issuer's name as `cert` states it, the issuer's public key bits, and the DER serial number.
/// The request and the matching of an answer build it the same way.
struct CertIdParts<'a> {
    name: Vec<u8>,
    key: &'a [u8],
    serial: Vec<u8>,
}

/// The [`CertIdParts`] of `cert`, or which part cannot be encoded.
fn cert_id_parts<'a>(
    cert: &ChainCert,
    issuer: &'a ChainCert,
) -> Result<CertIdParts<'a>, &'static str> {
    let tbs = cert.cert.tbs_certificate();
    let name = tbs.issuer().to_der().map_err(|_| "issuer name")?;
    let key = issuer
        .cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let serial = tbs.serial_number().to_der().map_err(|_| "serial")?;
    Ok(CertIdParts { name, key, serial })
}

fn hash_alg(alg_id: &Tlv<'_>) -> Result<&'static digest::Algorithm, CheckError> {
    let parts = W.children(alg_id.value)?;
    let first = parts
        .first()
        .ok_or_else(|| bad_str("has an empty algorithm"))?;
    match W.oid(first)?.as_str() {
        "1.3.14.3.2.26" => Ok(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        "2.16.840.1.101.3.4.2.1" => Ok(&digest::SHA256),
        "2.16.840.1.101.3.4.2.2" => Ok(&digest::SHA384),
        "2.16.840.1.101.3.4.2.3" => Ok(&digest::SHA512),
        other => Err(bad_str(&format!("uses CertID hash {other}"))),
    }
}

/// Whether a CertID names `cert` issued by `issuer`.
fn names(cert_id: &Tlv<'_>, cert: &ChainCert, issuer: &ChainCert) -> Result<bool, CheckError> {
    let parts = W.children(cert_id.value)?;
    let [alg, name_hash, key_hash, serial] = parts.as_slice() else {
        return Err(bad_str("has a malformed CertID"));
    };
    if name_hash.tag != TAG_OCTET_STRING
        || key_hash.tag != TAG_OCTET_STRING
        || serial.tag != TAG_INTEGER
    {
        return Err(bad_str("has a malformed CertID"));
    }
    let alg = hash_alg(alg)?;
    let ours = cert_id_parts(cert, issuer)
        .map_err(|part| bad_str(&format!("cannot be matched ({part})")))?;
    Ok(digest::digest(alg, &ours.name).as_ref() == name_hash.value
        && digest::digest(alg, ours.key).as_ref() == key_hash.value
        && ours.serial == serial.full)
}

/// Verifies `response` for `cert` (issued by `issuer`) at `now`. `Ok(None)`: a valid response
/// about another certificate. Errors: the response is unusable.
pub fn status(
    response: &[u8],
    cert: &ChainCert,
    issuer: &ChainCert,
    now: SystemTime,
) -> Result<Option<Answer>, CheckError> {
    let Basic {
        tbs,
        sig_alg,
        sig,
        certs: extra_certs,
    } = basic(response)?;

    // The signer: the issuer itself, or a responder certificate it issued for OCSP signing.
    let issuer_spki = issuer.cert.tbs_certificate().subject_public_key_info();
    let mut responder_to_check = None;
    if verify_sig(issuer_spki, &sig_alg, tbs.full, sig).is_err() {
        let delegated = extra_certs.iter().find_map(|der| {
            delegated_by(der, issuer, now)
                .filter(|c| {
                    verify_sig(
                        c.tbs_certificate().subject_public_key_info(),
                        &sig_alg,
                        tbs.full,
                        sig,
                    )
                    .is_ok()
                })
                .map(|c| (*der, c))
        });
        let Some((der, responder)) = delegated else {
            return Err(bad_str(
                "is not signed by the issuer or by a responder it authorised",
            ));
        };
        if !has_nocheck(&responder) {
            responder_to_check = Some(der.to_vec());
        }
    }

    for single in single_responses(&tbs)? {
        let parts = W.children(single.value)?;
        if parts.len() < 3 || parts[0].tag != TAG_SEQUENCE {
            return Err(bad_str("has a malformed SingleResponse"));
        }
        if !names(&parts[0], cert, issuer)? {
            continue;
        }
        if parts[2].tag != TAG_GENERALIZED_TIME {
            return Err(bad_str("has no thisUpdate"));
        }
        let this_update = W.generalized_time(parts[2].value)?;
        if this_update > now + SKEW {
            return Err(bad_str("is from the future (thisUpdate)"));
        }
        let mut next_update = None;
        if let Some(next) = parts.get(3).filter(|t| t.tag == TAG_CTX0) {
            let (gt, _) = W.expect(next.value, TAG_GENERALIZED_TIME, "nextUpdate")?;
            let next = W.generalized_time(gt.value)?;
            if next < now {
                return Err(bad_str("is stale (past its nextUpdate)"));
            }
            next_update = Some(next);
        }
        let status = match parts[1].tag {
            0x80 => Status::Good,
            0xa1 => {
                // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, ... }
                let (on, _) = W.expect(parts[1].value, TAG_GENERALIZED_TIME, "revocationTime")?;
                let extensions = parts[3..].iter().find(|t| t.tag == TAG_CTX1);
                Status::Revoked {
                    on: W.generalized_time(on.value)?,
                    invalidity: extensions.map(invalidity_date).transpose()?.flatten(),
                }
            }
            _ => Status::Unknown,
        };
        return Ok(Some(Answer {
            status,
            next_update,
            responder_to_check,
        }));
    }
    Ok(None)
}

/// The invalidityDate among a SingleResponse's `[1] singleExtensions`, if any.
fn invalidity_date(extensions: &Tlv<'_>) -> Result<Option<SystemTime>, CheckError> {
    let (seq, _) = W.expect(extensions.value, TAG_SEQUENCE, "singleExtensions")?;
    for ext in W.children(seq.value)? {
        let parts = W.children(ext.value)?;
        let (Some(id), Some(value)) = (parts.first(), parts.last()) else {
            return Err(bad_str("has a malformed extension"));
        };
        if W.oid(id)? == OID_INVALIDITY_DATE && value.tag == TAG_OCTET_STRING {
            let (t, _) = W.expect(value.value, TAG_GENERALIZED_TIME, "invalidityDate")?;
            return Ok(Some(W.generalized_time(t.value)?));
        }
    }
    Ok(None)
}

/// The CRL distribution points of the responder certificates in a response that lack
/// id-pkix-ocsp-nocheck (unverified: only to know what to fetch).
pub fn responder_crl_urls(response: &[u8]) -> Vec<String> {
    let Ok(basic) = basic(response) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for der in basic.certs {
        let Ok(cert) = Certificate::from_der(der) else {
            continue;
        };
        if !has_nocheck(&cert) {
            urls.extend(super::revocation_urls::crl_urls(&cert).0);
        }
    }
    urls
}

/// The earliest nextUpdate of a response's answers (unverified: only to know how long it may
/// be cached). `None` when it has none or is unreadable.
pub fn next_update(response: &[u8]) -> Option<SystemTime> {
    let basic = basic(response).ok()?;
    single_responses(&basic.tbs)
        .ok()?
        .iter()
        .filter_map(|single| {
            let parts = W.children(single.value).ok()?;
            let next = parts.get(3).filter(|t| t.tag == TAG_CTX0)?;
            let (gt, _) = W
                .expect(next.value, TAG_GENERALIZED_TIME, "nextUpdate")
                .ok()?;
            W.generalized_time(gt.value).ok()
        })
        .min()
}

/// The parts of a successful basic OCSP response.
struct Basic<'a> {
    /// ResponseData, as signed.
    tbs: Tlv<'a>,
    sig_alg: Tlv<'a>,
    sig: &'a [u8],
    /// The certificates that came with it (DER).
    certs: Vec<&'a [u8]>,
}

/// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT
/// SEQUENCE { responseType OID (basic), response OCTET STRING (BasicOCSPResponse) } };
/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
/// certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }.
fn basic(response: &[u8]) -> Result<Basic<'_>, CheckError> {
    if response.len() > MAX_RESPONSE {
        return Err(bad_str("is too large"));
    }
    let (outer, _) = W.expect(response, TAG_SEQUENCE, "OCSPResponse")?;
    let outer = W.children(outer.value)?;
    let status = outer
        .first()
        .filter(|t| t.tag == 0x0a && t.value.len() == 1)
        .map(|t| t.value[0])
        .ok_or_else(|| bad_str("has no response status"))?;
    if status != 0 {
        return Err(bad_str(&format!(
            "is not successful (responder status {status})"
        )));
    }
    let bytes = outer
        .get(1)
        .filter(|t| t.tag == TAG_CTX0)
        .ok_or_else(|| bad_str("has no response bytes"))?;
    let (rb, _) = W.expect(bytes.value, TAG_SEQUENCE, "ResponseBytes")?;
    let rb = W.children(rb.value)?;
    if rb.len() != 2 || W.oid(&rb[0])? != OID_BASIC || rb[1].tag != TAG_OCTET_STRING {
        return Err(bad_str("is not a basic OCSP response"));
    }
    let (basic, _) = W.expect(rb[1].value, TAG_SEQUENCE, "BasicOCSPResponse")?;
    let mut basic = W.children(basic.value)?.into_iter();
    let (Some(tbs), Some(sig_alg), Some(sig)) = (basic.next(), basic.next(), basic.next()) else {
        return Err(bad_str("has a malformed BasicOCSPResponse"));
    };
    if tbs.tag != TAG_SEQUENCE || sig.tag != 0x03 {
        return Err(bad_str("has a malformed BasicOCSPResponse"));
    }
    let sig = sig
        .value
        .split_first()
        .filter(|(unused, _)| **unused == 0)
        .map(|(_, s)| s)
        .ok_or_else(|| bad_str("has a malformed signature"))?;
    let certs = match basic.next() {
        Some(t) if t.tag == TAG_CTX0 => {
            let (seq, _) = W.expect(t.value, TAG_SEQUENCE, "certificate list")?;
            W.children(seq.value)?.iter().map(|c| c.full).collect()
        }
        _ => Vec::new(),
    };
    Ok(Basic {
        tbs,
        sig_alg,
        sig,
        certs,
    })
}

/// ResponseData ::= SEQUENCE { [0] version OPTIONAL, responderID, producedAt,
/// responses SEQUENCE OF SingleResponse, [1] extensions OPTIONAL }: the SingleResponses.
fn single_responses<'a>(tbs: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, CheckError> {
    let fields = W.children(tbs.value)?;
    let responses = fields
        .iter()
        .skip_while(|t| t.tag == TAG_CTX0)
        .skip(2)
        .find(|t| t.tag == TAG_SEQUENCE)
        .ok_or_else(|| bad_str("has no responses"))?;
    W.children(responses.value)
}

/// Whether a responder certificate carries id-pkix-ocsp-nocheck (its revocation is not
/// checked).
fn has_nocheck(cert: &Certificate) -> bool {
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .any(|e| e.extn_id == OID_NOCHECK)
}

/// The certificate, if `issuer` issued it for OCSP signing and it is valid at `now`.
fn delegated_by(der: &[u8], issuer: &ChainCert, now: SystemTime) -> Option<Certificate> {
    let cert = Certificate::from_der(der).ok()?;
    let ee_der = CertificateDer::from(der);
    let ee = webpki::EndEntityCert::try_from(&ee_der).ok()?;
    let issuer_der = CertificateDer::from(issuer.der.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&issuer_der).ok()?;
    let since = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::since_unix_epoch(since),
        webpki::KeyUsage::required(EKU_OCSP_SIGNING),
        None,
        None,
    )
    .ok()?;
    Some(cert)
}

fn verify_sig(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    sig_alg: &Tlv<'_>,
    message: &[u8],
    sig: &[u8],
) -> Result<(), CheckError> {
    let parts = W.children(sig_alg.value)?;
    let alg = W.oid(parts.first().ok_or_else(|| bad_str("has no algorithm"))?)?;
    crate::verify::pkix::algorithms::verify_x509(spki, &alg, message, sig)
        .map_err(|e| bad_str(&e.to_string()))
}
