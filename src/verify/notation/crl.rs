//! Certificate revocation lists (RFC 5280 §5) for the Notary Project revocation check, by hand:
//! webpki checks base CRLs only, and the spec also asks for delta CRLs, the invalidity-date
//! exception and certificateHold/removeFromCRL.
//!
//! For one certificate and its issuer: among the CRLs supplied, those from the issuer (name and
//! signature) that cover the certificate are used. The newest complete (base) CRL is needed; a
//! delta CRL is needed too when the base or the certificate names one (freshestCRL), and it
//! must build on that base (its BaseCRLNumber at most the base's CRLNumber, its own number
//! greater). A serial listed in the delta wins (removeFromCRL un-revokes); else the base entry
//! counts. A listed certificate whose entry has an invalidity date later than the signature's
//! trusted time (timestamp or authentic signing time) was compromised after signing, so it is
//! not revoked for this signature. An expired CRL still proves a revocation (other than
//! certificateHold), but cannot prove the absence of one. Indirect CRLs and CRLs split by
//! reason are not supported: they make the status unknown.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::{Duration, SystemTime};

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::crl::{CertificateList, RevokedCert};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::KeyUsage;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;

use super::CheckError;
use super::chain::ChainCert;
use crate::verify::pkix::algorithms::X509SignatureError;
use crate::verify::pkix::der::{TAG_SEQUENCE, Walker};

const CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
const ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const ISSUER_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.18");
const REASON_CODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const CERTIFICATE_HOLD: u8 = 6;
const REMOVE_FROM_CRL: u8 = 8;
/// Clock skew tolerated on thisUpdate.
const SKEW: Duration = Duration::from_secs(300);

const W: Walker<CheckError> = Walker { context: bad_str };

fn bad_str(what: &str) -> CheckError {
    CheckError::Revocation(format!("the CRL {what}"))
}

/// What the CRLs say about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlStatus {
    /// Not revoked, as long as the CRLs used are current: until this time (their earliest
    /// nextUpdate).
    Good(Option<SystemTime>),
    Revoked(String),
    Unknown(String),
}

/// Why a CRL cannot be used; the status is then unknown, and the message says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("a CRL is not a DER CertificateList")]
    NotDer,
    #[error("{0} signs CRLs but its keyUsage lacks cRLSign")]
    NoCrlSign(String),
    #[error("{0}")]
    Structure(#[source] CheckError),
    #[error("the CRL is empty")]
    Empty,
    #[error("the CRL signature is not a whole number of bytes")]
    SignatureBits,
    #[error("a CRL naming {issuer} as issuer {source}")]
    Signature {
        issuer: String,
        #[source]
        source: X509SignatureError,
    },
    #[error("a CRL is from the future (thisUpdate)")]
    FromTheFuture,
    #[error("a CRL has an unreadable issuingDistributionPoint: {0}")]
    IssuingDistributionPoint(#[source] der::Error),
    #[error("indirect CRLs and CRLs partitioned by reason are not supported")]
    Partitioned,
    #[error("a CRL has an unknown critical extension {0}")]
    UnknownCritical(ObjectIdentifier),
    #[error("a delta CRL has no CRL number")]
    DeltaWithoutNumber,
    #[error("a CRL entry has a malformed reason code")]
    EntryReason,
    #[error("a CRL entry has an unknown critical extension {0} (indirect CRLs are not supported)")]
    EntryCritical(ObjectIdentifier),
    #[error("a CRL number is negative")]
    NegativeNumber,
    #[error("a CRL has a malformed CRL number")]
    MalformedNumber,
}

/// One usable CRL from the issuer.
struct Crl {
    list: CertificateList,
    /// CRLNumber, big-endian without leading zeros.
    number: Vec<u8>,
    /// The DeltaCRLIndicator's BaseCRLNumber: set on delta CRLs only.
    base_number: Option<Vec<u8>>,
    names_delta: bool,
    next_update: Option<SystemTime>,
}

/// One revocation entry, as read.
struct Entry {
    reason: Option<u8>,
    revoked_on: SystemTime,
    invalidity: Option<SystemTime>,
}

/// The status of `cert` (issued by `issuer`) in `crls` at `now`. `signed_at` is the
/// signature's trusted time, if one was established, for the invalidity-date exception.
pub fn status(
    cert: &ChainCert,
    issuer: &ChainCert,
    crls: &[&[u8]],
    now: SystemTime,
    signed_at: Option<SystemTime>,
) -> CrlStatus {
    let mut problems = Vec::new();
    let mut bases = Vec::new();
    let mut deltas = Vec::new();
    for der in crls {
        match usable(der, cert, issuer, now) {
            Ok(Some(crl)) if crl.base_number.is_some() => deltas.push(crl),
            Ok(Some(crl)) => bases.push(crl),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    let unknown = |why: String| CrlStatus::Unknown(format!("{}: {why}", cert.subject));
    let Some(base) = bases
        .into_iter()
        .max_by(|a, b| cmp_number(&a.number, &b.number))
    else {
        return unknown(match problems.first() {
            Some(p) => format!("no usable CRL from {}: {p}", issuer.subject),
            None => format!("no CRL from {} was available", issuer.subject),
        });
    };
    let wants_delta = base.names_delta || names_freshest(cert);
    let delta = deltas
        .into_iter()
        .filter(|d| {
            d.base_number
                .as_ref()
                .is_some_and(|b| cmp_number(b, &base.number).is_le())
        })
        .max_by(|a, b| cmp_number(&a.number, &b.number));
    if let Some(d) = &delta
        && cmp_number(&d.number, &base.number).is_le()
    {
        return unknown("the delta CRL is not newer than its base CRL".into());
    }
    if wants_delta && delta.is_none() {
        return unknown(format!(
            "a delta CRL is named (freshestCRL) but none that builds on base CRL number {} \
             was available",
            hex(&base.number)
        ));
    }

    let serial = cert.cert.tbs_certificate().serial_number().as_bytes();
    let listed = |crl: &Crl| -> Result<Option<Entry>, CrlError> {
        crl.list
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .find(|r| r.serial_number.as_bytes() == serial)
            .map(entry)
            .transpose()
    };
    // The delta is newer: its entry decides; else the base's.
    let (found, from) = match delta.as_ref().map(&listed).transpose() {
        Err(e) => return unknown(e.to_string()),
        Ok(Some(Some(e))) => (Some(e), delta.as_ref()),
        Ok(_) => match listed(&base) {
            Err(e) => return unknown(e.to_string()),
            Ok(e) => (e, Some(&base)),
        },
    };
    let found = found.filter(|e| e.reason != Some(REMOVE_FROM_CRL));
    let fresh = |crl: &Crl| crl.next_update.is_some_and(|n| now <= n);
    let all_fresh = fresh(&base) && delta.as_ref().is_none_or(fresh);
    let until = base
        .next_update
        .into_iter()
        .chain(delta.as_ref().and_then(|d| d.next_update))
        .min();
    match found {
        None if all_fresh => CrlStatus::Good(until),
        None => unknown(format!(
            "the CRL from {} is past its nextUpdate, so it cannot show the certificate is not \
             revoked",
            issuer.subject
        )),
        // An expired CRL cannot vouch for a hold still being in force.
        Some(e) if e.reason == Some(CERTIFICATE_HOLD) && !from.is_some_and(fresh) => {
            unknown("it is on hold in a CRL that is past its nextUpdate".into())
        }
        Some(e) => {
            if let (Some(inv), Some(at)) = (e.invalidity, signed_at)
                && at < inv
            {
                // Compromised after the trusted signing time: not revoked for this signature.
                return CrlStatus::Good(until);
            }
            CrlStatus::Revoked(format!(
                "{} is revoked (CRL from {}: revoked on {}{})",
                cert.subject,
                issuer.subject,
                super::fmt_time(e.revoked_on),
                e.reason.map(reason_text).unwrap_or_default()
            ))
        }
    }
}

/// The CRL if it is from `issuer`, signed by it and covers `cert`; `Ok(None)` if it is about
/// something else; an error if it should apply but cannot be used.
fn usable(
    der: &[u8],
    cert: &ChainCert,
    issuer: &ChainCert,
    now: SystemTime,
) -> Result<Option<Crl>, CrlError> {
    let Ok(list) = CertificateList::from_der(der) else {
        return Err(CrlError::NotDer);
    };
    if &list.tbs_cert_list.issuer != cert.cert.tbs_certificate().issuer() {
        return Ok(None);
    }
    // RFC 5280 §6.3.3 (f): an issuer with a keyUsage must allow cRLSign.
    if let Ok(Some((_, ku))) = issuer.cert.tbs_certificate().get_extension::<KeyUsage>()
        && !ku.crl_sign()
    {
        return Err(CrlError::NoCrlSign(issuer.subject.clone()));
    }
    let parts = W
        .expect(der, TAG_SEQUENCE, "CertificateList")
        .and_then(|(outer, _)| W.children(outer.value))
        .map_err(CrlError::Structure)?;
    let tbs = parts.first().ok_or(CrlError::Empty)?.full;
    let sig = list.signature.as_bytes().ok_or(CrlError::SignatureBits)?;
    crate::verify::pkix::algorithms::verify_x509(
        issuer.cert.tbs_certificate().subject_public_key_info(),
        &list.signature_algorithm.oid.to_string(),
        tbs,
        sig,
    )
    .map_err(|source| CrlError::Signature {
        issuer: issuer.subject.clone(),
        source,
    })?;
    if list.tbs_cert_list.this_update.to_system_time() > now + SKEW {
        return Err(CrlError::FromTheFuture);
    }
    let (mut number, mut base_number, mut names_delta) = (Vec::new(), None, false);
    for ext in list.tbs_cert_list.crl_extensions.iter().flatten() {
        match ext.extn_id {
            CRL_NUMBER => number = integer(ext)?,
            DELTA_CRL_INDICATOR => base_number = Some(integer(ext)?),
            FRESHEST_CRL => names_delta = true,
            ISSUING_DISTRIBUTION_POINT => {
                let idp = IssuingDistributionPoint::from_der(ext.extn_value.as_bytes())
                    .map_err(CrlError::IssuingDistributionPoint)?;
                if idp.indirect_crl || idp.only_some_reasons.is_some() {
                    return Err(CrlError::Partitioned);
                }
                let is_ca = is_ca(cert);
                if idp.only_contains_attribute_certs
                    || (idp.only_contains_user_certs && is_ca)
                    || (idp.only_contains_ca_certs && !is_ca)
                {
                    return Ok(None);
                }
            }
            AUTHORITY_KEY_ID | ISSUER_ALT_NAME => {}
            other if ext.critical => return Err(CrlError::UnknownCritical(other)),
            _ => {}
        }
    }
    if base_number.is_some() && number.is_empty() {
        return Err(CrlError::DeltaWithoutNumber);
    }
    Ok(Some(Crl {
        number,
        base_number,
        names_delta,
        next_update: list.tbs_cert_list.next_update.map(|t| t.to_system_time()),
        list,
    }))
}

fn entry(r: &RevokedCert) -> Result<Entry, CrlError> {
    let mut e = Entry {
        reason: None,
        revoked_on: r.revocation_date.to_system_time(),
        invalidity: None,
    };
    for ext in r.crl_entry_extensions.iter().flatten() {
        match ext.extn_id {
            REASON_CODE => {
                // ENUMERATED: tag 0x0a, one byte.
                match ext.extn_value.as_bytes() {
                    [0x0a, 1, code] => e.reason = Some(*code),
                    _ => return Err(CrlError::EntryReason),
                }
            }
            INVALIDITY_DATE => {
                let (t, _) = W
                    .expect(
                        ext.extn_value.as_bytes(),
                        crate::verify::pkix::der::TAG_GENERALIZED_TIME,
                        "invalidity date",
                    )
                    .map_err(CrlError::Structure)?;
                e.invalidity = Some(W.generalized_time(t.value).map_err(CrlError::Structure)?);
            }
            other if ext.critical => return Err(CrlError::EntryCritical(other)),
            _ => {}
        }
    }
    Ok(e)
}

/// An INTEGER extension value (CRLNumber, BaseCRLNumber), normalised.
fn integer(ext: &Extension) -> Result<Vec<u8>, CrlError> {
    match ext.extn_value.as_bytes() {
        [0x02, len, rest @ ..] if usize::from(*len) == rest.len() && !rest.is_empty() => {
            if rest[0] & 0x80 != 0 {
                return Err(CrlError::NegativeNumber);
            }
            let skip = rest.iter().take_while(|b| **b == 0).count();
            Ok(rest[skip..].to_vec())
        }
        _ => Err(CrlError::MalformedNumber),
    }
}

fn cmp_number(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn hex(n: &[u8]) -> String {
    if n.is_empty() {
        return "0".into();
    }
    n.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_ca(cert: &ChainCert) -> bool {
    cert.cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .and_then(|e| {
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()).ok()
        })
        .is_some_and(|bc| bc.ca)
}

fn names_freshest(cert: &ChainCert) -> bool {
    cert.cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .any(|e| e.extn_id == FRESHEST_CRL)
}

fn reason_text(code: u8) -> String {
    let name = match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return format!(", reason code {code}"),
    };
    format!(", reason {name}")
}
