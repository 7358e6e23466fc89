//! Sigstore's `trusted_root.json`, read offline.
//!
//! The file names the Fulcio certificate authorities, the Rekor transparency logs, the
//! certificate-transparency logs and the timestamp authorities a client may trust, each with
//! the window in which it may be used. Signet never fetches it (no TUF, no network): operators
//! ship the file with the policy, and a parse error is a policy load error. Only the fields
//! signet relies on are read; unknown fields are allowed because the format grows.
//!
//! Like `policy`: must not import `registry` or `verify`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::Decode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::PublicKey;

/// The media types of the trusted root: the one Sigstore clients write today, and the newer
/// spelling the protobuf-specs define.
pub const MEDIA_TYPES: [&str; 2] = [
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "application/vnd.dev.sigstore.trustedroot.v0.1+json",
];

/// Why a trusted root could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustRootError {
    #[error("not JSON of the trusted_root.json shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("mediaType {0:?} is not a Sigstore trusted root (expected {MEDIA_TYPES:?})")]
    MediaType(String),
    #[error("{at}: not base64: {source}")]
    Base64 {
        at: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{at}: not a DER X.509 certificate: {source}")]
    Certificate {
        at: String,
        #[source]
        source: der::Error,
    },
    #[error("{at}: {source}")]
    Key {
        at: String,
        #[source]
        source: super::KeyError,
    },
    #[error("{at}: {value:?} is not an RFC 3339 time")]
    Time { at: String, value: String },
    #[error("{at}: the certificate chain is empty")]
    EmptyChain { at: String },
}

/// A time window from the trusted root; an open end means "still valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidFor {
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
}

impl ValidFor {
    /// Whether `t` falls inside the window (both ends inclusive).
    pub fn contains(&self, t: SystemTime) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

/// A Fulcio (or timestamp) authority: its chain, intermediate first and root last.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// The `subject.commonName` or `uri`, to name the authority in messages.
    pub name: String,
    /// DER certificates, leaf-most first; the last one is the trust anchor.
    pub chain: Vec<Vec<u8>>,
    pub valid_for: ValidFor,
}

/// A transparency log (Rekor or CT) public key and its identifier.
#[derive(Debug, Clone)]
pub struct LogKey {
    /// `baseUrl`, for messages.
    pub name: String,
    /// `logId.keyId`, raw bytes (the SHA-256 of the key for Rekor and CT logs).
    pub log_id: Vec<u8>,
    pub key: PublicKey,
    pub valid_for: ValidFor,
}

/// A parsed trusted root.
#[derive(Debug, Clone, Default)]
pub struct TrustRoot {
    pub certificate_authorities: Vec<CertificateAuthority>,
    pub tlogs: Vec<LogKey>,
    pub ctlogs: Vec<LogKey>,
    pub timestamp_authorities: Vec<CertificateAuthority>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    #[serde(default)]
    base_url: String,
    public_key: RawPublicKey,
    /// Optional in practice (some roots carry only a `checkpointKeyId`); the default is what
    /// the log id means for Rekor and CT logs, the SHA-256 of the key.
    #[serde(default)]
    log_id: Option<RawLogId>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPublicKey {
    raw_bytes: String,
    #[serde(default)]
    valid_for: Option<RawValidFor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawValidFor {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    subject: Option<RawSubject>,
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: Option<RawValidFor>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSubject {
    #[serde(default)]
    common_name: String,
}

#[derive(serde::Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

impl TrustRoot {
    /// Parses the JSON of a `trusted_root.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TrustRootError> {
        let raw: RawRoot = serde_json::from_slice(bytes)?;
        if !MEDIA_TYPES.contains(&raw.media_type.as_str()) {
            return Err(TrustRootError::MediaType(raw.media_type));
        }
        Ok(TrustRoot {
            certificate_authorities: cas(&raw.certificate_authorities, "certificateAuthorities")?,
            tlogs: logs(&raw.tlogs, "tlogs")?,
            ctlogs: logs(&raw.ctlogs, "ctlogs")?,
            timestamp_authorities: cas(&raw.timestamp_authorities, "timestampAuthorities")?,
        })
    }
}

fn b64(s: &str, at: &str) -> Result<Vec<u8>, TrustRootError> {
    STANDARD
        .decode(s.trim())
        .map_err(|source| TrustRootError::Base64 {
            at: at.to_string(),
            source,
        })
}

fn logs(raw: &[RawLog], field: &str) -> Result<Vec<LogKey>, TrustRootError> {
    raw.iter()
        .enumerate()
        .map(|(i, l)| {
            let at = format!("{field}[{i}]");
            let der = b64(&l.public_key.raw_bytes, &format!("{at}.publicKey.rawBytes"))?;
            let key = PublicKey::from_der(&der).map_err(|source| TrustRootError::Key {
                at: format!("{at}.publicKey"),
                source,
            })?;
            let log_id = match &l.log_id {
                Some(id) => b64(&id.key_id, &format!("{at}.logId.keyId"))?,
                None => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
                    .as_ref()
                    .to_vec(),
            };
            Ok(LogKey {
                name: l.base_url.clone(),
                log_id,
                key,
                valid_for: valid_for(l.public_key.valid_for.as_ref(), &at)?,
            })
        })
        .collect()
}

fn cas(raw: &[RawCa], field: &str) -> Result<Vec<CertificateAuthority>, TrustRootError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{field}[{i}]");
            if c.cert_chain.certificates.is_empty() {
                return Err(TrustRootError::EmptyChain { at });
            }
            let chain = c
                .cert_chain
                .certificates
                .iter()
                .enumerate()
                .map(|(j, cert)| {
                    let at = format!("{at}.certChain.certificates[{j}]");
                    let der = b64(&cert.raw_bytes, &at)?;
                    // Parsed once here so that a corrupt anchor is a load error, not a
                    // verification failure on every admission.
                    x509_cert::Certificate::from_der(&der)
                        .map_err(|source| TrustRootError::Certificate { at, source })?;
                    Ok::<_, TrustRootError>(der)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let name = c
                .subject
                .as_ref()
                .map(|s| s.common_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| c.uri.clone());
            Ok(CertificateAuthority {
                name,
                chain,
                valid_for: valid_for(c.valid_for.as_ref(), &at)?,
            })
        })
        .collect()
}

fn valid_for(raw: Option<&RawValidFor>, at: &str) -> Result<ValidFor, TrustRootError> {
    let parse = |v: &Option<String>| -> Result<Option<SystemTime>, TrustRootError> {
        v.as_deref()
            .map(|s| {
                parse_time(s).ok_or_else(|| TrustRootError::Time {
                    at: format!("{at}.validFor"),
                    value: s.to_string(),
                })
            })
            .transpose()
    };
    Ok(match raw {
        None => ValidFor {
            start: None,
            end: None,
        },
        Some(r) => ValidFor {
            start: parse(&r.start)?,
            end: parse(&r.end)?,
        },
    })
}

/// An RFC 3339 time as a `SystemTime`; times before 1970 are clamped to the epoch (they only
/// ever open a window).
fn parse_time(s: &str) -> Option<SystemTime> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let secs = t.unix_timestamp();
    Some(if secs <= 0 {
        SystemTime::UNIX_EPOCH
    } else {
        SystemTime::UNIX_EPOCH + Duration::new(secs.unsigned_abs(), t.nanosecond())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(media_type: &str, key_b64: &str, cert_b64: &str) -> String {
        format!(
            r#"{{
  "mediaType": "{media_type}",
  "tlogs": [{{"baseUrl": "https://rekor.example", "hashAlgorithm": "SHA2_256",
    "publicKey": {{"rawBytes": "{key_b64}", "keyDetails": "PKIX_ECDSA_P256_SHA_256",
      "validFor": {{"start": "2021-01-12T11:53:27.000Z"}}}},
    "logId": {{"keyId": "AAEC"}}}}],
  "certificateAuthorities": [{{"subject": {{"organization": "t", "commonName": "fulcio-test"}},
    "uri": "https://fulcio.example",
    "certChain": {{"certificates": [{{"rawBytes": "{cert_b64}"}}]}},
    "validFor": {{"start": "2022-04-13T20:06:15.000Z", "end": "2031-10-05T13:56:58.000Z"}}}}],
  "ctlogs": [],
  "timestampAuthorities": []
}}"#
        )
    }

    #[test]
    fn parses_a_trusted_root_and_rejects_broken_ones() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = STANDARD.encode(rcgen::PublicKeyData::subject_public_key_info(&kp));
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&kp).unwrap();
        let cert = STANDARD.encode(cert.der());

        let root = TrustRoot::from_json(sample(MEDIA_TYPES[0], &key, &cert).as_bytes()).unwrap();
        assert_eq!(root.tlogs.len(), 1);
        assert_eq!(root.tlogs[0].log_id, vec![0, 1, 2]);
        assert_eq!(root.certificate_authorities[0].name, "fulcio-test");
        let ca = &root.certificate_authorities[0];
        let t = |s| parse_time(s).unwrap();
        assert!(ca.valid_for.contains(t("2023-01-01T00:00:00Z")));
        assert!(!ca.valid_for.contains(t("2032-01-01T00:00:00Z")));
        assert!(!ca.valid_for.contains(t("2022-04-13T20:06:14Z")));

        // What real roots carry: explicit nulls, a checkpointKeyId, and logs without logId.
        let mut v: serde_json::Value =
            serde_json::from_str(&sample(MEDIA_TYPES[0], &key, &cert)).unwrap();
        v["tlogs"][0]["publicKey"]["validFor"]["end"] = serde_json::Value::Null;
        v["tlogs"][0]["checkpointKeyId"] = serde_json::Value::Null;
        v["tlogs"][0].as_object_mut().unwrap().remove("logId");
        let root = TrustRoot::from_json(v.to_string().as_bytes()).unwrap();
        let der = STANDARD.decode(&key).unwrap();
        assert_eq!(
            root.tlogs[0].log_id,
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref()
        );
        assert_eq!(root.tlogs[0].valid_for.end, None);

        let err = TrustRoot::from_json(sample("application/json", &key, &cert).as_bytes());
        assert!(matches!(err, Err(TrustRootError::MediaType(_))), "{err:?}");
        let err = TrustRoot::from_json(sample(MEDIA_TYPES[1], &key, "AAAA").as_bytes());
        assert!(
            matches!(err, Err(TrustRootError::Certificate { .. })),
            "{err:?}"
        );
        let err = TrustRoot::from_json(sample(MEDIA_TYPES[1], "%%", &cert).as_bytes());
        assert!(matches!(err, Err(TrustRootError::Base64 { .. })), "{err:?}");
        let err = TrustRoot::from_json(sample(MEDIA_TYPES[1], &cert, &cert).as_bytes());
        assert!(matches!(err, Err(TrustRootError::Key { .. })), "{err:?}");
        let err = TrustRoot::from_json(b"[]");
        assert!(matches!(err, Err(TrustRootError::Json(_))), "{err:?}");
    }
}
