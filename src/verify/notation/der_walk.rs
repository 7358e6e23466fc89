//! A minimal DER walker for the CMS and OCSP structures signet reads field by field
//! (timestamp tokens, OCSP responses): definite lengths only, low tag numbers only, every
//! length checked, never a panic. Errors are worded by the caller's `context` so a broken
//! timestamp and a broken OCSP response say which they are.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;

use super::CheckError;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_CTX0: u8 = 0xa0;
pub const TAG_CTX1: u8 = 0xa1;

/// Reads DER, turning a structural problem into the caller's [`CheckError`].
#[derive(Clone, Copy)]
pub struct Walker {
    /// Builds the error from a phrase such as "is not valid DER".
    pub context: fn(&str) -> CheckError,
}

/// One DER TLV.
#[derive(Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The value bytes.
    pub value: &'a [u8],
    /// The whole encoding, tag and length included.
    pub full: &'a [u8],
}

impl Walker {
    /// Reads one TLV (definite lengths only, as DER requires) and returns it with the rest.
    pub fn read<'a>(&self, input: &'a [u8]) -> Result<(Tlv<'a>, &'a [u8]), CheckError> {
        let malformed = || (self.context)("is not valid DER");
        let (&tag, rest) = input.split_first().ok_or_else(malformed)?;
        if tag & 0x1f == 0x1f {
            return Err(malformed()); // high tag numbers never occur here
        }
        let (&first, rest) = rest.split_first().ok_or_else(malformed)?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(malformed()); // indefinite (BER) or absurd lengths
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(malformed());
        }
        let header = input.len() - rest.len();
        let full = &input[..header + len];
        Ok((
            Tlv {
                tag,
                value: &rest[..len],
                full,
            },
            &rest[len..],
        ))
    }

    /// Reads a TLV that must have `tag`.
    pub fn expect<'a>(
        &self,
        input: &'a [u8],
        tag: u8,
        what: &str,
    ) -> Result<(Tlv<'a>, &'a [u8]), CheckError> {
        let (tlv, rest) = self.read(input)?;
        if tlv.tag != tag {
            return Err((self.context)(&format!("has no {what} where expected")));
        }
        Ok((tlv, rest))
    }

    /// All TLVs of a constructed value.
    pub fn children<'a>(&self, mut value: &'a [u8]) -> Result<Vec<Tlv<'a>>, CheckError> {
        let mut out = Vec::new();
        while !value.is_empty() {
            let (tlv, rest) = self.read(value)?;
            out.push(tlv);
            value = rest;
        }
        Ok(out)
    }

    pub fn oid(&self, tlv: &Tlv<'_>) -> Result<String, CheckError> {
        if tlv.tag != TAG_OID {
            return Err((self.context)("has no object identifier where expected"));
        }
        ObjectIdentifier::from_bytes(tlv.value)
            .map(|o| o.to_string())
            .map_err(|_| (self.context)("has an invalid object identifier"))
    }

    /// A GeneralizedTime `YYYYMMDDHHMMSS[.f+]Z`, by hand: der 0.8 rejects the fraction RFC
    /// 3161 allows.
    pub fn generalized_time(&self, v: &[u8]) -> Result<SystemTime, CheckError> {
        let s = std::str::from_utf8(v).map_err(|_| (self.context)("has an unreadable time"))?;
        let invalid = || (self.context)(&format!("has an invalid time {s:?}"));
        let s_ = s.strip_suffix('Z').ok_or_else(invalid)?;
        let (main, frac) = match s_.split_once('.') {
            Some((m, f))
                if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (m, f)
            }
            Some(_) => return Err(invalid()),
            None => (s_, ""),
        };
        if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let n = |r: std::ops::Range<usize>| main[r].parse::<u32>().map_err(|_| invalid());
        let month = time::Month::try_from(u8::try_from(n(4..6)?).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        let date = time::Date::from_calendar_date(
            i32::try_from(n(0..4)?).map_err(|_| invalid())?,
            month,
            u8::try_from(n(6..8)?).map_err(|_| invalid())?,
        )
        .map_err(|_| invalid())?;
        let nanos = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}")
                .parse::<u32>()
                .map_err(|_| invalid())?
        };
        let t = time::Time::from_hms_nano(
            u8::try_from(n(8..10)?).map_err(|_| invalid())?,
            u8::try_from(n(10..12)?).map_err(|_| invalid())?,
            u8::try_from(n(12..14)?).map_err(|_| invalid())?,
            nanos,
        )
        .map_err(|_| invalid())?;
        Ok(SystemTime::from(
            time::PrimitiveDateTime::new(date, t).assume_utc(),
        ))
    }
}
