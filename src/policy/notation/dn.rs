//! X.509 distinguished names as the Notary Project trust policy compares them.
//!
//! `trustedIdentities` entries (`x509.subject: C=US, ST=WA, O=Example, CN=release`) and the
//! signing certificate's subject are both turned into a [`DistinguishedName`]: an ordered list
//! of `(attribute type, value)` pairs with unique types. An identity matches a certificate when
//! every one of its attributes is present in the certificate's subject with the same value
//! (subset match), which is what notation-go does. Like notation-go, the parser rejects
//! multi-valued RDNs (`+`) and hex-encoded values (`=#...`), and treats `S` as `ST`.

use std::fmt;

use der::{Tag, Tagged};
use x509_cert::name::Name;

/// A parsed distinguished name with unique attribute types, in written order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName {
    attributes: Vec<(String, String)>,
}

impl DistinguishedName {
    /// Parses the RFC 4514-like text form used in trust policies (`C=US, ST=WA, O=Example`).
    /// Separators are `,` or `;`; `\` escapes the next character.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut attributes: Vec<(String, String)> = Vec::new();
        for rdn in split_unescaped(text, &[',', ';']) {
            if rdn.trim().is_empty() {
                return Err(format!("{text:?} has an empty RDN"));
            }
            if split_unescaped(&rdn, &['+']).len() > 1 {
                return Err(format!(
                    "{text:?} has a multi-valued RDN ({:?}), which is not supported",
                    rdn.trim()
                ));
            }
            let Some((kind, value)) = rdn.split_once('=') else {
                return Err(format!("{text:?}: RDN {:?} is not TYPE=value", rdn.trim()));
            };
            let kind = normalise_type(kind.trim());
            if kind.is_empty() {
                return Err(format!(
                    "{text:?}: RDN {:?} has no attribute type",
                    rdn.trim()
                ));
            }
            let value = value.trim_start();
            if value.starts_with('#') {
                return Err(format!(
                    "{text:?}: hex-encoded value in {:?} is not supported",
                    rdn.trim()
                ));
            }
            let value = unescape(value.trim_end_matches(' '), value)?;
            if attributes.iter().any(|(k, _)| *k == kind) {
                return Err(format!(
                    "{text:?} has the attribute {kind} twice; each attribute may appear once"
                ));
            }
            attributes.push((kind, value));
        }
        if attributes.is_empty() {
            return Err("empty distinguished name".into());
        }
        Ok(DistinguishedName { attributes })
    }

    /// The subject (or issuer) of a certificate. Attribute types signet cannot name by a short
    /// string keep their dotted OID, so they can still be matched.
    pub fn from_x509(name: &Name) -> Result<Self, String> {
        let mut attributes: Vec<(String, String)> = Vec::new();
        for rdn in name.as_ref().iter() {
            if rdn.len() != 1 {
                return Err("the certificate name has a multi-valued RDN".into());
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
                let value = decode_string(&atv.value)
                    .ok_or_else(|| format!("the certificate name attribute {kind} is not text"))?;
                if attributes.iter().any(|(k, _)| *k == kind) {
                    return Err(format!(
                        "the certificate name has the attribute {kind} twice, which trust \
                         policies cannot match"
                    ));
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
fn unescape(trimmed: &str, original: &str) -> Result<String, String> {
    let mut out = String::with_capacity(trimmed.len());
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) => out.push(next),
                // The escaped character was a trailing space that trimming removed.
                None if original.len() > trimmed.len() => out.push(' '),
                None => return Err(format!("value {original:?} ends with a lone backslash")),
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
