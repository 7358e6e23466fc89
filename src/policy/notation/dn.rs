//! X.509 distinguished names as the Notary Project trust policy compares them.
//!
//! `trustedIdentities` entries (`x509.subject: C=US, ST=WA, O=Example, CN=release`) and the
//! signing certificate's subject are both turned into a [`DistinguishedName`]: an ordered list
//! of `(attribute type, value)` pairs with unique types. An identity matches a certificate when
//! every one of its attributes is present in the certificate's subject with the same value
//! (subset match), which is what notation-go does. Like notation-go, the parser rejects
//! multi-valued RDNs (`+`) and hex-encoded values (`=#...`), and treats `S` as `ST`.
//!
//! Pure text parsing: must not import anything with I/O, nor `registry` or `verify`.

use std::fmt;

use der::{Tag, Tagged};
use x509_cert::name::Name;

/// Why a distinguished name (from a trust policy, or a certificate's subject) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("{text:?} has an empty RDN")]
    EmptyRdn { text: String },
    #[error("{text:?} has a multi-valued RDN ({rdn:?}), which is not supported")]
    MultiValuedRdn { text: String, rdn: String },
    #[error("{text:?}: RDN {rdn:?} is not TYPE=value")]
    NotTypeValue { text: String, rdn: String },
    #[error("{text:?}: RDN {rdn:?} has no attribute type")]
    NoAttributeType { text: String, rdn: String },
    #[error("{text:?}: hex-encoded value in {rdn:?} is not supported")]
    HexValue { text: String, rdn: String },
    #[error("value {value:?} ends with a lone backslash")]
    LoneBackslash { value: String },
    #[error("{text:?} has the attribute {kind} twice; each attribute may appear once")]
    RepeatedAttribute { text: String, kind: String },
    #[error("empty distinguished name")]
    Empty,
    #[error("the certificate name has a multi-valued RDN")]
    CertificateMultiValuedRdn,
    #[error("the certificate name attribute {kind} is not text")]
    CertificateNotText { kind: String },
    #[error(
        "the certificate name has the attribute {kind} twice, which trust policies cannot match"
    )]
    CertificateRepeatedAttribute { kind: String },
}

/// A parsed distinguished name with unique attribute types, in written order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    attributes: Vec<(String, String)>,
}

impl DistinguishedName {
    /// Parses the RFC 4514-like text form used in trust policies (`C=US, ST=WA, O=Example`).
    /// Separators are `,` or `;`; `\` escapes the next character.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let mut attributes: Vec<(String, String)> = Vec::new();
        for rdn in split_unescaped(text, &[',', ';']) {
            if rdn.trim().is_empty() {
                return Err(DnError::EmptyRdn { text: text.into() });
            }
            if split_unescaped(&rdn, &['+']).len() > 1 {
                return Err(DnError::MultiValuedRdn {
                    text: text.into(),
                    rdn: rdn.trim().into(),
                });
            }
            let Some((kind, value)) = rdn.split_once('=') else {
                return Err(DnError::NotTypeValue {
                    text: text.into(),
                    rdn: rdn.trim().into(),
                });
            };
            let kind = normalise_type(kind.trim());
            if kind.is_empty() {
                return Err(DnError::NoAttributeType {
                    text: text.into(),
                    rdn: rdn.trim().into(),
                });
            }
            let value = value.trim_start();
            if value.starts_with('#') {
                return Err(DnError::HexValue {
                    text: text.into(),
                    rdn: rdn.trim().into(),
                });
            }
            let value = unescape(value.trim_end_matches(' '), value)?;
            if attributes.iter().any(|(k, _)| *k == kind) {
                return Err(DnError::RepeatedAttribute {
                    text: text.into(),
                    kind,
                });
            }
            attributes.push((kind, value));
        }
        if attributes.is_empty() {
            return Err(DnError::Empty);
        }
        Ok(DistinguishedName { attributes })
    }

    /// The subject (or issuer) of a certificate. Attribute types signet cannot name by a short
    /// string keep their dotted OID, so they can still be matched.
    pub fn from_x509(name: &Name) -> Result<Self, DnError> {
        let mut attributes: Vec<(String, String)> = Vec::new();
        for rdn in name.as_ref().iter() {
            if rdn.len() != 1 {
                return Err(DnError::CertificateMultiValuedRdn);
            }
            for atv in rdn.iter() {
                let oid = atv.oid.to_string();
                let kind = match oid.as_str() {
                    "2.5.4.6" => "C".to_string(),
                    "2.5.4.8" => "ST".to_string(),
                    "2.5.4.7" => "L".to_string(),
                    "2.5.4.10" => "O".to_string(),
                    "2.5.4.11" => "OU".to_string(),
                    "2.5.4.3" => "CN".to_string(),
                    "2.5.4.5" => "SERIALNUMBER".to_string(),
                    "2.5.4.9" => "STREET".to_string(),
                    "2.5.4.17" => "POSTALCODE".to_string(),
                    "1.2.840.113549.1.9.1" => "EMAILADDRESS".to_string(),
                    _ => oid,
                };
                let Some(value) = decode_string(&atv.value) else {
                    return Err(DnError::CertificateNotText { kind });
                };
                if attributes.iter().any(|(k, _)| *k == kind) {
                    return Err(DnError::CertificateRepeatedAttribute { kind });
                }
                attributes.push((kind, value));
            }
        }
        Ok(DistinguishedName { attributes })
    }

    /// Whether every attribute of `self` is in `other` with an equal value.
    pub fn is_subset_of(&self, other: &DistinguishedName) -> bool {
        self.attributes
            .iter()
            .all(|(k, v)| other.get(k).is_some_and(|o| o == v))
    }

    /// The value of one attribute type (`C`, `ST`, `O`, `CN`...).
    pub fn get(&self, kind: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={}", escape(v))?;
        }
        Ok(())
    }
}

fn normalise_type(kind: &str) -> String {
    let upper = kind.to_ascii_uppercase();
    match upper.as_str() {
        "S" => "ST".into(),
        "E" => "EMAILADDRESS".into(),
        _ => upper,
    }
}

/// Splits on unescaped separators, keeping escapes in the parts (they are removed later).
fn split_unescaped(text: &str, separators: &[char]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            current.push(c);
            if let Some(next) = chars.next() {
                current.push(next);
            }
        } else if separators.contains(&c) {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Removes escapes. `trimmed` is the value without trailing spaces; an escaped trailing space
/// (`\ `) survives because trimming stopped at the backslash.
fn unescape(trimmed: &str, original: &str) -> Result<String, DnError> {
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) => out.push(next),
                // The escaped character was a trailing space that trimming removed.
                None if original.len() > trimmed.len() => out.push(' '),
                None => {
                    return Err(DnError::LoneBackslash {
                        value: original.into(),
                    });
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i + 1 == value.chars().count());
        if matches!(c, ',' | ';' | '\\' | '+' | '=') || edge_space {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn decode_string(value: &der::Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(bytes.to_vec()).ok()
        }
        // T.61 in theory; in practice Latin-1.
        Tag::TeletexString => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let dn = DistinguishedName::parse("C=US, S=WA ,o=Example, CN=release").unwrap();
        assert_eq!(dn.get("ST"), Some("WA"));
        assert_eq!(dn.get("O"), Some("Example"));
        assert_eq!(dn.to_string(), "C=US, ST=WA, O=Example, CN=release");
    }

    #[test]
    fn escapes() {
        let dn = DistinguishedName::parse(r"C=US, ST=WA, O=Acme\, Inc., CN=\ x\\y\ ").unwrap();
        assert_eq!(dn.get("O"), Some("Acme, Inc."));
        assert_eq!(dn.get("CN"), Some(r" x\y "));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "C=US,,O=x",
            "C=US+O=x",
            "C=#0403",
            "C=US, C=CA",
            "novalue",
            "=x",
            r"C=x\",
        ] {
            assert!(DistinguishedName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn subset() {
        let id = DistinguishedName::parse("C=US, ST=WA, O=Notary").unwrap();
        let cert = DistinguishedName::parse("C=US, ST=WA, L=Seattle, O=Notary, CN=e2e").unwrap();
        assert!(id.is_subset_of(&cert));
        assert!(!cert.is_subset_of(&id));
        let other = DistinguishedName::parse("C=US, ST=WA, O=Other").unwrap();
        assert!(!other.is_subset_of(&cert));
    }
}
