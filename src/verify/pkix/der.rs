//! The one DER walker of the verifiers, for the CMS, TSTInfo and OCSP structures they read
//! field by field (RFC 3161 timestamp tokens, OCSP responses, CRL extensions): definite lengths
//! only, low tag numbers only, every length checked, never a panic.
//!
//! One reader underneath ([`read`]) and a [`Walker`] over it that turns a structural problem
//! into the caller's own error, worded by its `context` so that a broken timestamp and a broken
//! OCSP response say which they are.
//!
//! Must not import the formats (`verify::cosign`, `verify::notation`), `policy`, `registry` or
//! anything with I/O.

use std::time::SystemTime;

use const_oid::ObjectIdentifier;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_CTX0: u8 = 0xa0;
pub const TAG_CTX1: u8 = 0xa1;

/// One DER TLV.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The value bytes.
    pub value: &'a [u8],
    /// The whole encoding, tag and length included.
    pub full: &'a [u8],
}

/// The input is not DER this walker reads: truncated, an indefinite (BER) or absurd length,
/// or a high tag number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads one TLV (definite lengths only, as DER requires) and returns it with the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Malformed> {
    let (&tag, rest) = input.split_first().ok_or(Malformed)?;
    if tag & 0x1f == 0x1f {
        return Err(Malformed); // high tag numbers never occur in these structures
    }
    let (&first, rest) = rest.split_first().ok_or(Malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(Malformed); // indefinite (BER) or absurd lengths
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(Malformed);
    }
    let header = input.len() - rest.len();
    Ok((
        Tlv {
            tag,
            value: &rest[..len],
            full: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// Reads DER, turning a structural problem into the caller's error `E`.
pub struct Walker<E> {
    /// Builds the error from a phrase such as "is not valid DER".
    pub context: fn(&str) -> E,
}

impl<E> Clone for Walker<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Walker<E> {}

impl<E> Walker<E> {
    /// Reads one TLV and returns it with the rest.
    pub fn read<'a>(&self, input: &'a [u8]) -> Result<(Tlv<'a>, &'a [u8]), E> {
        read(input).map_err(|Malformed| (self.context)("is not valid DER"))
    }

    /// Reads a TLV that must have `tag`.
    pub fn expect<'a>(
        &self,
        input: &'a [u8],
        tag: u8,
        what: &str,
    ) -> Result<(Tlv<'a>, &'a [u8]), E> {
        let (tlv, rest) = self.read(input)?;
        if tlv.tag != tag {
            return Err((self.context)(&format!("has no {what} where expected")));
        }
        Ok((tlv, rest))
    }

    /// All TLVs of a constructed value.
    pub fn children<'a>(&self, mut value: &'a [u8]) -> Result<Vec<Tlv<'a>>, E> {
        let mut out = Vec::new();
        while !value.is_empty() {
            let (tlv, rest) = self.read(value)?;
            out.push(tlv);
            value = rest;
        }
        Ok(out)
    }

    /// The dotted form of an OBJECT IDENTIFIER.
    pub fn oid(&self, tlv: &Tlv<'_>) -> Result<String, E> {
        if tlv.tag != TAG_OID {
            return Err((self.context)("has no object identifier where expected"));
        }
        ObjectIdentifier::from_bytes(tlv.value)
            .map(|o| o.to_string())
            .map_err(|_| (self.context)("has an invalid object identifier"))
    }

    /// A GeneralizedTime with an optional fraction of up to nine digits, kept to the
    /// nanosecond (see [`GeneralizedTime::precise`]).
    pub fn generalized_time(&self, v: &[u8]) -> Result<SystemTime, E> {
        let s = std::str::from_utf8(v).map_err(|_| (self.context)("has an unreadable time"))?;
        GeneralizedTime::parse(v)
            .and_then(|t| t.precise())
            .ok_or_else(|| (self.context)(&format!("has an invalid time {s:?}")))
    }
}

/// A GeneralizedTime `YYYYMMDDHHMMSS[.f*]Z`, read by hand: der 0.8 rejects the fractional
/// seconds RFC 3161 allows in `genTime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralizedTime<'a> {
    /// The time to the whole second.
    pub whole: time::OffsetDateTime,
    /// The digits after the `.`, if there is one (all ASCII digits, possibly none).
    pub fraction: Option<&'a str>,
}

impl<'a> GeneralizedTime<'a> {
    /// The time, if `v` is `YYYYMMDDHHMMSS`, an optional `.` and digits, then `Z`.
    pub fn parse(v: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
        let (main, fraction) = match s.split_once('.') {
            Some((m, f)) => (m, Some(f)),
            None => (s, None),
        };
        if main.len() != 14
            || !main.bytes().all(|b| b.is_ascii_digit())
            || !fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let n = |r: std::ops::Range<usize>| main[r].parse::<u16>().ok();
        let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::from(n(0..4)?),
            month,
            u8::try_from(n(6..8)?).ok()?,
        )
        .ok()?;
        let t = time::Time::from_hms(
            u8::try_from(n(8..10)?).ok()?,
            u8::try_from(n(10..12)?).ok()?,
            u8::try_from(n(12..14)?).ok()?,
        )
        .ok()?;
        Some(Self {
            whole: time::PrimitiveDateTime::new(date, t).assume_utc(),
            fraction,
        })
    }

    /// The time to the nanosecond; a fraction must have one to nine digits.
    pub fn precise(&self) -> Option<SystemTime> {
        let nanos = match self.fraction {
            None => 0,
            Some(f) if !f.is_empty() && f.len() <= 9 => format!("{f:0<9}").parse::<u32>().ok()?,
            Some(_) => return None,
        };
        let t = self.whole.replace_nanosecond(nanos).ok()?;
        Some(SystemTime::from(t))
    }

    /// The time with any fraction dropped, if it is not before 1970.
    pub fn whole_seconds(&self) -> Option<SystemTime> {
        let secs = u64::try_from(self.whole.unix_timestamp()).ok()?;
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_lengths_and_rejects_the_rest() {
        let (tlv, rest) = read(&[0x04, 0x81, 0x01, 0xaa, 0xbb]).unwrap();
        assert_eq!(
            (tlv.tag, tlv.value, tlv.full.len(), rest),
            (0x04, &[0xaa][..], 4, &[0xbb][..])
        );
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x1f, 0x01, 0x00],
            &[0x30, 0x85, 0, 0, 0, 0, 1, 0],
        ] {
            assert_eq!(read(bad).map(|_| ()), Err(Malformed));
        }
    }

    #[test]
    fn generalized_time_fractions() {
        let t = GeneralizedTime::parse(b"20250121091746.641Z").unwrap();
        let want = time::macros::datetime!(2025-01-21 09:17:46.641 UTC);
        assert_eq!(t.precise(), Some(SystemTime::from(want)));
        assert_eq!(
            t.whole_seconds(),
            Some(SystemTime::from(
                time::macros::datetime!(2025-01-21 09:17:46 UTC)
            ))
        );
        // An empty or over-long fraction is not a precise time, but has whole seconds.
        for lax in [&b"20250121091746.Z"[..], b"20250121091746.1234567890Z"] {
            let t = GeneralizedTime::parse(lax).unwrap();
            assert_eq!(t.precise(), None);
            assert!(t.whole_seconds().is_some());
        }
        for bad in [
            &b"2025012109174Z"[..],
            b"20251321091746Z",
            b"20250121091746",
            b"20250121091746.1xZ",
            b"x",
        ] {
            assert_eq!(GeneralizedTime::parse(bad), None);
        }
    }
}
