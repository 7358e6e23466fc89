//! Notary Project signature envelopes: JWS (flattened JSON) and COSE_Sign1, parsed into one
//! [`Envelope`] with the signed attributes the checks need.
//!
//! Both parsers are strict where the signature specification is: the protected header must
//! name a supported `alg`, the Notary payload content type and a `crit` list that includes the
//! signing scheme; every critical header must be one signet understands and must be present;
//! headers the spec requires to be critical (expiry, authentic signing time, verification
//! plugin) must be listed in `crit`. The JWS envelope itself is parsed with
//! `deny_unknown_fields`, and the signature covers the *original* base64url protected header,
//! never a re-encoding.
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coset::{Label, RegisteredLabelWithPrivate, TaggedCborSerializable, iana};
use serde_json::{Map, Value};

use super::CheckError;

/// The largest envelope parsed (the registry limit is the same; this guards direct callers).
pub const MAX_ENVELOPE: usize = 4 * 1024 * 1024;
/// The most certificates accepted in `x5c` / `x5chain`.
pub const MAX_CHAIN: usize = 10;

pub const MEDIA_TYPE_JWS: &str = "application/jose+json";
pub const MEDIA_TYPE_COSE: &str = "application/cose";
const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const VERIFICATION_PLUGIN_MIN_VERSION: &str = "io.cncf.notary.verificationPluginMinVersion";
/// Extended attributes that may appear in `crit`.
const KNOWN_CRITICAL: [&str; 5] = [
    SIGNING_SCHEME,
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    VERIFICATION_PLUGIN,
    VERIFICATION_PLUGIN_MIN_VERSION,
];
/// Extended attributes that, when present, must be critical.
const MUST_BE_CRITICAL: [&str; 4] = [
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    VERIFICATION_PLUGIN,
    VERIFICATION_PLUGIN_MIN_VERSION,
];

/// Signature algorithms of the Notary Project signature specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
        }
    }

    fn from_jws(name: &str) -> Option<Self> {
        Some(match name {
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "ES512" => Algorithm::Es512,
            _ => return None,
        })
    }

    fn from_cose(alg: &coset::Algorithm) -> Option<Self> {
        use iana::Algorithm as A;
        Some(match alg {
            coset::Algorithm::Assigned(A::PS256) => Algorithm::Ps256,
            coset::Algorithm::Assigned(A::PS384) => Algorithm::Ps384,
            coset::Algorithm::Assigned(A::PS512) => Algorithm::Ps512,
            coset::Algorithm::Assigned(A::ES256) => Algorithm::Es256,
            coset::Algorithm::Assigned(A::ES384) => Algorithm::Es384,
            coset::Algorithm::Assigned(A::ES512) => Algorithm::Es512,
            _ => return None,
        })
    }
}

/// `notary.x509` (trust from a `ca` store, time from the signer's clock or a TSA) or
/// `notary.x509.signingAuthority` (trust from a `signingAuthority` store, which vouches for the
/// signing time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    X509,
    SigningAuthority,
}

impl SigningScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningScheme::X509 => "notary.x509",
            SigningScheme::SigningAuthority => "notary.x509.signingAuthority",
        }
    }

    fn parse(s: &str) -> Result<Self, CheckError> {
        match s {
            "notary.x509" => Ok(SigningScheme::X509),
            "notary.x509.signingAuthority" => Ok(SigningScheme::SigningAuthority),
            other => Err(CheckError::Malformed(format!(
                "signing scheme {other:?} is not supported"
            ))),
        }
    }
}

/// A parsed envelope. Nothing in it is verified yet.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub format: &'static str,
    pub algorithm: Algorithm,
    pub signing_scheme: SigningScheme,
    pub signing_time: Option<SystemTime>,
    pub authentic_signing_time: Option<SystemTime>,
    pub expiry: Option<SystemTime>,
    /// Set when the envelope requires a verification plugin, which signet cannot run.
    pub verification_plugin: Option<String>,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
    /// The bytes the signature covers (JWS signing input or COSE Sig_structure).
    pub signed_bytes: Vec<u8>,
    /// Raw signature: RSASSA-PSS bytes, or fixed-size `r‖s` for ECDSA.
    pub signature: Vec<u8>,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The RFC 3161 timestamp token (DER `ContentInfo`) countersigning the signature.
    pub timestamp: Option<Vec<u8>>,
}

/// Parses an envelope of the given media type.
pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Envelope, CheckError> {
    if bytes.len() > MAX_ENVELOPE {
        return Err(CheckError::Malformed(format!(
            "the envelope is {} bytes, more than the {MAX_ENVELOPE}-byte limit",
            bytes.len()
        )));
    }
    match media_type {
        MEDIA_TYPE_JWS => parse_jws(bytes),
        MEDIA_TYPE_COSE => parse_cose(bytes),
        other => Err(CheckError::Malformed(format!(
            "the signature layer has media type {other:?}, not a Notary envelope \
             ({MEDIA_TYPE_JWS} or {MEDIA_TYPE_COSE})"
        ))),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwsJson {
    payload: String,
    protected: String,
    header: JwsUnprotected,
    signature: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JwsUnprotected {
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.signingAgent", default)]
    _signing_agent: Option<String>,
    #[serde(rename = "io.cncf.notary.timestampSignature", default)]
    timestamp_signature: Option<String>,
}

fn parse_jws(bytes: &[u8]) -> Result<Envelope, CheckError> {
    let jws: JwsJson = serde_json::from_slice(bytes)
        .map_err(|e| CheckError::Malformed(format!("not a flattened JWS JSON envelope: {e}")))?;
    let (header, payload, signature) = jws_decode(&jws)?;
    let algorithm = jws_protected(&header)?;
    let text = |name: &str| -> Result<Option<String>, CheckError> {
        match header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CheckError::Malformed(format!("{name} is not a string"))),
        }
    };
    let time = |name: &str| -> Result<Option<SystemTime>, CheckError> {
        text(name)?.map(|s| parse_rfc3339(name, &s)).transpose()
    };
    let attributes = Attributes::read(text, time)?;
    let (chain, timestamp) = jws_unprotected(&jws.header)?;

    // The JWS signing input: the protected header and payload exactly as transmitted.
    let mut signed_bytes = Vec::with_capacity(jws.protected.len() + jws.payload.len() + 1);
    signed_bytes.extend_from_slice(jws.protected.as_bytes());
    signed_bytes.push(b'.');
    signed_bytes.extend_from_slice(jws.payload.as_bytes());

    finish(attributes.envelope(Parts {
        format: "JWS",
        algorithm,
        payload,
        signed_bytes,
        signature,
        chain,
        timestamp,
    }))
}

/// The JWS protected header (a JSON object), payload and signature.
type JwsDecoded = (Map<String, Value>, Vec<u8>, Vec<u8>);

/// The certificate chain (DER, leaf first) and the timestamp token of an unprotected header.
type Unprotected = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// The JWS protected header (a JSON object), payload and signature, base64url-decoded.
fn jws_decode(jws: &JwsJson) -> Result<JwsDecoded, CheckError> {
    let protected_bytes = URL_SAFE_NO_PAD.decode(&jws.protected).map_err(|e| {
        CheckError::Malformed(format!("the JWS protected header is not base64url: {e}"))
    })?;
    let header: Map<String, Value> = serde_json::from_slice(&protected_bytes).map_err(|e| {
        CheckError::Malformed(format!(
            "the JWS protected header is not a JSON object: {e}"
        ))
    })?;
    let payload = URL_SAFE_NO_PAD
        .decode(&jws.payload)
        .map_err(|e| CheckError::Malformed(format!("the JWS payload is not base64url: {e}")))?;
    let signature = URL_SAFE_NO_PAD
        .decode(&jws.signature)
        .map_err(|e| CheckError::Malformed(format!("the JWS signature is not base64url: {e}")))?;
    Ok((header, payload, signature))
}

/// The JWS protected header's algorithm, content type and critical list.
fn jws_protected(header: &Map<String, Value>) -> Result<Algorithm, CheckError> {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| CheckError::Malformed("the JWS protected header has no alg".into()))?;
    let algorithm = Algorithm::from_jws(alg).ok_or_else(|| {
        CheckError::Malformed(format!(
            "JWS algorithm {alg:?} is not allowed (PS256/384/512 or ES256/384/512)"
        ))
    })?;
    match header.get("cty").and_then(Value::as_str) {
        Some(PAYLOAD_CONTENT_TYPE) => {}
        other => {
            return Err(CheckError::Malformed(format!(
                "the payload content type is {other:?}, not {PAYLOAD_CONTENT_TYPE:?}"
            )));
        }
    }
    let crit: Vec<&str> = match header.get("crit") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    CheckError::Malformed("the JWS crit list holds a non-string".into())
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(CheckError::Malformed(
                "the JWS protected header has no crit list".into(),
            ));
        }
    };
    let present: Vec<&str> = header.keys().map(String::as_str).collect();
    check_critical(&crit, &present)?;
    Ok(algorithm)
}

/// The JWS unprotected header: the certificate chain (DER, leaf first) and the timestamp
/// token.
fn jws_unprotected(header: &JwsUnprotected) -> Result<Unprotected, CheckError> {
    if header.x5c.len() > MAX_CHAIN {
        return Err(CheckError::Malformed(format!(
            "x5c holds {} certificates, more than {MAX_CHAIN}",
            header.x5c.len()
        )));
    }
    let chain = header
        .x5c
        .iter()
        .map(|c| {
            STANDARD
                .decode(c)
                .map_err(|e| CheckError::Malformed(format!("an x5c entry is not base64: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let timestamp = header
        .timestamp_signature
        .as_deref()
        .map(|t| {
            STANDARD.decode(t).map_err(|e| {
                CheckError::Malformed(format!("the timestamp signature is not base64: {e}"))
            })
        })
        .transpose()?;
    Ok((chain, timestamp))
}

fn parse_cose(bytes: &[u8]) -> Result<Envelope, CheckError> {
    let sign1 = coset::CoseSign1::from_tagged_slice(bytes)
        .map_err(|e| CheckError::Malformed(format!("not a tagged COSE_Sign1 envelope: {e}")))?;
    let protected = &sign1.protected.header;
    let algorithm = cose_protected(protected)?;
    let get = |name: &str| {
        protected
            .rest
            .iter()
            .find(|(l, _)| matches!(l, Label::Text(t) if t == name))
            .map(|(_, v)| v)
    };
    let text = |name: &str| -> Result<Option<String>, CheckError> {
        match get(name) {
            None => Ok(None),
            Some(coset::cbor::Value::Text(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CheckError::Malformed(format!(
                "{name} is not a text string"
            ))),
        }
    };
    let time = |name: &str| -> Result<Option<SystemTime>, CheckError> {
        match get(name) {
            None => Ok(None),
            Some(v) => cose_time(name, v).map(Some),
        }
    };
    let attributes = Attributes::read(text, time)?;
    let (chain, timestamp) = cose_unprotected(&sign1.unprotected)?;
    let payload = sign1.payload.clone().ok_or_else(|| {
        CheckError::Malformed("the COSE payload is detached; Notary payloads are attached".into())
    })?;
    let signed_bytes = sign1.tbs_data(b"");
    finish(attributes.envelope(Parts {
        format: "COSE",
        algorithm,
        payload,
        signed_bytes,
        signature: sign1.signature.clone(),
        chain,
        timestamp,
    }))
}

/// The COSE protected header's algorithm, content type and critical list.
fn cose_protected(protected: &coset::Header) -> Result<Algorithm, CheckError> {
    let alg = protected
        .alg
        .as_ref()
        .ok_or_else(|| CheckError::Malformed("the COSE protected header has no alg".into()))?;
    let algorithm = Algorithm::from_cose(alg).ok_or_else(|| {
        CheckError::Malformed(format!(
            "COSE algorithm {alg:?} is not allowed (PS256/384/512 or ES256/384/512)"
        ))
    })?;
    match &protected.content_type {
        Some(coset::ContentType::Text(t)) if t == PAYLOAD_CONTENT_TYPE => {}
        other => {
            return Err(CheckError::Malformed(format!(
                "the payload content type is {other:?}, not {PAYLOAD_CONTENT_TYPE:?}"
            )));
        }
    }
    if protected.crit.is_empty() {
        return Err(CheckError::Malformed(
            "the COSE protected header has no crit list".into(),
        ));
    }
    let crit: Vec<String> = protected
        .crit
        .iter()
        .map(|l| match l {
            RegisteredLabelWithPrivate::Text(t) => t.clone(),
            // Registered labels other than the ones signet reads are not understood.
            other => format!("{other:?}"),
        })
        .collect();
    let present: Vec<String> = protected
        .rest
        .iter()
        .map(|(l, _)| match l {
            Label::Text(t) => t.clone(),
            Label::Int(i) => i.to_string(),
        })
        .collect();
    let crit_refs: Vec<&str> = crit.iter().map(String::as_str).collect();
    let present_refs: Vec<&str> = present.iter().map(String::as_str).collect();
    check_critical(&crit_refs, &present_refs)?;
    Ok(algorithm)
}

/// The COSE unprotected header: the certificate chain (x5chain, RFC 9360: one bstr, or an
/// array of bstr) and the timestamp token.
fn cose_unprotected(unprotected: &coset::Header) -> Result<Unprotected, CheckError> {
    let mut chain = Vec::new();
    let mut timestamp = None;
    for (label, value) in &unprotected.rest {
        match (label, value) {
            (Label::Int(33), coset::cbor::Value::Bytes(b)) => chain = vec![b.clone()],
            (Label::Int(33), coset::cbor::Value::Array(items)) => {
                if items.len() > MAX_CHAIN {
                    return Err(CheckError::Malformed(format!(
                        "x5chain holds {} certificates, more than {MAX_CHAIN}",
                        items.len()
                    )));
                }
                chain = items
                    .iter()
                    .map(|i| match i {
                        coset::cbor::Value::Bytes(b) => Ok(b.clone()),
                        _ => Err(CheckError::Malformed(
                            "an x5chain entry is not a byte string".into(),
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            (Label::Text(t), coset::cbor::Value::Bytes(b))
                if t == "io.cncf.notary.timestampSignature" =>
            {
                timestamp = Some(b.clone());
            }
            _ => {}
        }
    }
    Ok((chain, timestamp))
}

/// The signed attributes both formats carry in their protected header.
struct Attributes {
    signing_scheme: SigningScheme,
    signing_time: Option<SystemTime>,
    authentic_signing_time: Option<SystemTime>,
    expiry: Option<SystemTime>,
    verification_plugin: Option<String>,
}

/// The rest of an envelope, format by format.
struct Parts {
    format: &'static str,
    algorithm: Algorithm,
    payload: Vec<u8>,
    signed_bytes: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
}

impl Attributes {
    /// Reads the attributes through the format's accessors for a text and a time attribute.
    fn read(
        text: impl Fn(&str) -> Result<Option<String>, CheckError>,
        time: impl Fn(&str) -> Result<Option<SystemTime>, CheckError>,
    ) -> Result<Attributes, CheckError> {
        let scheme = text(SIGNING_SCHEME)?
            .ok_or_else(|| CheckError::Malformed(format!("{SIGNING_SCHEME} is missing")))?;
        Ok(Attributes {
            signing_scheme: SigningScheme::parse(&scheme)?,
            signing_time: time(SIGNING_TIME)?,
            authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
            expiry: time(EXPIRY)?,
            verification_plugin: text(VERIFICATION_PLUGIN)?,
        })
    }

    fn envelope(self, p: Parts) -> Envelope {
        Envelope {
            format: p.format,
            algorithm: p.algorithm,
            signing_scheme: self.signing_scheme,
            signing_time: self.signing_time,
            authentic_signing_time: self.authentic_signing_time,
            expiry: self.expiry,
            verification_plugin: self.verification_plugin,
            payload: p.payload,
            signed_bytes: p.signed_bytes,
            signature: p.signature,
            chain: p.chain,
            timestamp: p.timestamp,
        }
    }
}

/// Checks that apply to both formats once parsed.
fn finish(envelope: Envelope) -> Result<Envelope, CheckError> {
    if envelope.chain.is_empty() {
        return Err(CheckError::Malformed(
            "the envelope carries no certificate chain".into(),
        ));
    }
    match envelope.signing_scheme {
        SigningScheme::X509 if envelope.signing_time.is_none() => {
            return Err(CheckError::Malformed(format!(
                "{SIGNING_TIME} is required by the notary.x509 signing scheme"
            )));
        }
        SigningScheme::SigningAuthority if envelope.authentic_signing_time.is_none() => {
            return Err(CheckError::Malformed(format!(
                "{AUTHENTIC_SIGNING_TIME} is required by the notary.x509.signingAuthority \
                 signing scheme"
            )));
        }
        _ => {}
    }
    if let (Some(expiry), Some(signed)) = (
        envelope.expiry,
        envelope.signing_time.or(envelope.authentic_signing_time),
    ) && expiry <= signed
    {
        return Err(CheckError::Malformed(
            "the signature expiry is not after its signing time".into(),
        ));
    }
    Ok(envelope)
}

/// Every `crit` entry must be known and present; every must-be-critical header that is present
/// must be in `crit`; the signing scheme must be critical.
fn check_critical(crit: &[&str], present: &[&str]) -> Result<(), CheckError> {
    for c in crit {
        if !KNOWN_CRITICAL.contains(c) {
            return Err(CheckError::Malformed(format!(
                "critical header {c:?} is not understood"
            )));
        }
        if !present.contains(c) {
            return Err(CheckError::Malformed(format!(
                "critical header {c:?} is listed in crit but missing"
            )));
        }
    }
    if !crit.contains(&SIGNING_SCHEME) {
        return Err(CheckError::Malformed(format!(
            "{SIGNING_SCHEME} must be listed in crit"
        )));
    }
    for m in MUST_BE_CRITICAL {
        if present.contains(&m) && !crit.contains(&m) {
            return Err(CheckError::Malformed(format!(
                "header {m:?} is present but not marked critical"
            )));
        }
    }
    Ok(())
}

fn parse_rfc3339(name: &str, s: &str) -> Result<SystemTime, CheckError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| CheckError::Malformed(format!("{name} {s:?} is not an RFC 3339 time: {e}")))?;
    Ok(SystemTime::from(t))
}

/// COSE times are CBOR tag 1 (epoch seconds), integer or float.
fn cose_time(name: &str, v: &coset::cbor::Value) -> Result<SystemTime, CheckError> {
    let bad = || CheckError::Malformed(format!("{name} is not a CBOR epoch time (tag 1)"));
    let coset::cbor::Value::Tag(1, inner) = v else {
        return Err(bad());
    };
    let secs: i128 = match inner.as_ref() {
        coset::cbor::Value::Integer(i) => i128::from(*i),
        coset::cbor::Value::Float(f) if f.is_finite() => *f as i128,
        _ => return Err(bad()),
    };
    // Up to 9999-12-31T23:59:59Z, like RFC 3339 times: later values are nonsense.
    let secs = u64::try_from(secs)
        .ok()
        .filter(|s| *s <= 253_402_300_799)
        .ok_or_else(bad)?;
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(bad)
}
