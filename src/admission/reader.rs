//! The fast reader's JSON: a `serde::Deserializer` over a review body that reads only the
//! shapes the fast reader's types ask for, and gives up on anything else.
//!
//! Giving up is always safe: [`super::decode`] then answers with the full decoder (serde_json),
//! so this module only has to be *as strict* as serde_json on what it accepts, never as
//! complete. It accepts a body only if every byte of it is strict JSON (RFC 8259: the same
//! whitespace, literals, numbers, strings and escapes as serde_json), and it gives up on:
//! - a `\u` escape of a UTF-16 surrogate in any string, read or skipped (serde_json pairs them
//!   where it reads, and the full decoder refuses a lone one anywhere),
//! - any JSON type other than the one asked for (numbers are only ever skipped),
//! - arrays where a struct is asked for (serde_json reads a struct from either),
//! - objects and arrays read into types nested deeper than [`MAX_DEPTH`] (below serde_json's
//!   own limit of 128). Skipped values may nest as deep as the body allows, as with
//!   serde_json: they are skipped without recursion.
//!
//! The fields serde's derives read keep their checks: duplicate fields, missing fields and
//! wrong types are refused by the derived code, whatever the deserializer.
//!
//! Why not serde_json itself: serde_json's cost is per string (most of a review's ~200
//! strings are keys and values no decision reads), and neither sonic-rs nor jiter was faster
//! on a review body; this reader scans strings sixteen bytes at a time and skips unread values
//! in a loop of its own.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, CowStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Visitor};
use wide::u8x16;

/// Objects and arrays read into types nested deeper than this are left to serde_json (which
/// refuses beyond 128).
pub const MAX_DEPTH: usize = 100;

/// What went wrong does not matter: the full decoder reads the body again and says why.
#[derive(Debug)]
pub struct GiveUp;

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not read by the fast reader")
    }
}

impl std::error::Error for GiveUp {}

impl de::Error for GiveUp {
    fn custom<T: fmt::Display>(_: T) -> Self {
        GiveUp
    }
}

type Result<T> = std::result::Result<T, GiveUp>;

/// `T` from the whole of `text`, or `None` where serde_json must decide.
pub fn from_str<'de, T: de::Deserialize<'de>>(text: &'de str) -> Option<T> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
        open: Vec::new(),
    };
    let value = T::deserialize(&mut reader).ok()?;
    reader.ws();
    (reader.pos == reader.bytes.len()).then_some(value)
}

struct Reader<'de> {
    /// The body, already checked to be UTF-8.
    text: &'de str,
    bytes: &'de [u8],
    pos: usize,
    /// Objects and arrays being read into types around the current position.
    depth: usize,
    /// While skipping a value: the objects (`{`) and arrays (`[`) open inside it.
    open: Vec<u8>,
}

impl<'de> Reader<'de> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Past JSON's whitespace ([`ws_at`]).
    fn ws(&mut self) {
        self.pos = ws_at(self.bytes, self.pos);
    }

    fn eat(&mut self, b: u8) -> Result<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        self.pos = literal_end(self.bytes, self.pos, word)?;
        Ok(())
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(GiveUp);
        }
        Ok(())
    }

    /// A string, borrowed unless it holds escapes; the opening `"` is at the position.
    fn read_str(&mut self) -> Result<Cow<'de, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let (at, b) = special(self.bytes, start).ok_or(GiveUp)?;
        if b == b'"' {
            self.pos = at + 1;
            return self.text.get(start..at).map(Cow::Borrowed).ok_or(GiveUp);
        }
        self.read_escaped(start, at, b)
    }

    /// The rest of a string read by [`Reader::read_str`] from `start`, whose first special
    /// byte `b` is at `at`: the text with its escapes replaced.
    #[cold]
    #[inline(never)]
    fn read_escaped(&mut self, start: usize, mut at: usize, mut b: u8) -> Result<Cow<'de, str>> {
        let mut owned = String::new();
        let mut run = start;
        loop {
            owned.push_str(self.text.get(run..at).ok_or(GiveUp)?);
            match b {
                b'"' => {
                    self.pos = at + 1;
                    return Ok(Cow::Owned(owned));
                }
                b'\\' => {
                    self.pos = at;
                    owned.push(self.escape()?);
                    run = self.pos;
                }
                _ => return Err(GiveUp),
            }
            (at, b) = special(self.bytes, run).ok_or(GiveUp)?;
        }
    }

    /// The character of the escape whose `\` is at the position, which moves past it.
    fn escape(&mut self) -> Result<char> {
        let c = match self.bytes.get(self.pos + 1).ok_or(GiveUp)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = self.text.get(self.pos + 2..self.pos + 6).ok_or(GiveUp)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(GiveUp);
                }
                let code = u32::from_str_radix(hex, 16).map_err(|_| GiveUp)?;
                // Surrogates (`\ud800`-`\udfff`) are serde_json's to pair or refuse.
                let c = char::from_u32(code).ok_or(GiveUp)?;
                self.pos += 6;
                return Ok(c);
            }
            _ => return Err(GiveUp),
        };
        self.pos += 2;
        Ok(c)
    }

    /// An object or array read into a type: `read` is given its entries, which must all be
    /// read, up to the `close` byte.
    fn container<T>(
        &mut self,
        open: u8,
        close: u8,
        read: impl FnOnce(&mut Entries<'_, 'de>) -> Result<T>,
    ) -> Result<T> {
        self.ws();
        self.eat(open)?;
        self.enter()?;
        let mut entries = Entries {
            reader: &mut *self,
            close,
            state: State::First,
        };
        let value = read(&mut entries)?;
        if !matches!(entries.state, State::Closed) {
            return Err(GiveUp);
        }
        self.depth -= 1;
        Ok(value)
    }

    /// One value of any type, checked to be JSON, without recursion and at any depth (the
    /// objects and arrays open inside it are kept in `open`). The position is kept in a local
    /// and the scans are the free functions below, inlined here: skipping is most of the
    /// reading.
    fn skip_value(&mut self) -> Result<()> {
        let bytes = self.bytes;
        let open = &mut self.open;
        open.clear();
        let mut pos = self.pos;
        loop {
            // A value starts here. Whitespace is one more case of the dispatch: a review body
            // is mostly compact, and a scan before every token found none.
            match *bytes.get(pos).ok_or(GiveUp)? {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    pos = ws_at(bytes, pos + 1);
                    continue;
                }
                b'{' => {
                    pos = ws_at(bytes, pos + 1);
                    if bytes.get(pos) == Some(&b'}') {
                        pos += 1;
                    } else {
                        open.push(b'{');
                        pos = key_end(bytes, pos)?;
                        continue;
                    }
                }
                b'[' => {
                    pos = ws_at(bytes, pos + 1);
                    if bytes.get(pos) == Some(&b']') {
                        pos += 1;
                    } else {
                        open.push(b'[');
                        continue;
                    }
                }
                b'"' => pos = str_end(bytes, pos)?,
                b't' => pos = literal_end(bytes, pos, b"true")?,
                b'f' => pos = literal_end(bytes, pos, b"false")?,
                b'n' => pos = literal_end(bytes, pos, b"null")?,
                b'-' | b'0'..=b'9' => pos = number_end(bytes, pos)?,
                _ => return Err(GiveUp),
            }
            // A value ended: close what ends here, or go on to the next element.
            loop {
                let Some(&container) = open.last() else {
                    self.pos = pos;
                    return Ok(());
                };
                match (*bytes.get(pos).ok_or(GiveUp)?, container) {
                    (b' ' | b'\t' | b'\n' | b'\r', _) => pos = ws_at(bytes, pos + 1),
                    (b',', b'{') => {
                        pos = key_end(bytes, pos + 1)?;
                        break;
                    }
                    (b',', _) => {
                        pos += 1;
                        break;
                    }
                    (b'}', b'{') | (b']', b'[') => {
                        pos += 1;
                        open.pop();
                    }
                    _ => return Err(GiveUp),
                }
            }
        }
    }
}

/// Past JSON's whitespace from `pos` (space, tab, line feed, carriage return; nothing else).
/// A review body is mostly compact, so a byte above the space ends it with one comparison.
#[inline(always)]
fn ws_at(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = bytes.get(pos) {
        if b > b' ' || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        pos += 1;
    }
    pos
}

/// Past the string whose opening `"` is at `pos`, checked to be valid.
#[inline(always)]
fn str_end(bytes: &[u8], pos: usize) -> Result<usize> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(GiveUp);
    }
    match special(bytes, pos + 1) {
        Some((at, b'"')) => Ok(at + 1),
        Some((at, b'\\')) => escaped_str_end(bytes, at),
        _ => Err(GiveUp),
    }
}

/// The rest of a string from the escape whose `\` is at `at`, as [`str_end`].
#[cold]
#[inline(never)]
fn escaped_str_end(bytes: &[u8], mut at: usize) -> Result<usize> {
    loop {
        let from = skip_escape(bytes, at)?;
        match special(bytes, from).ok_or(GiveUp)? {
            (end, b'"') => return Ok(end + 1),
            (next, b'\\') => at = next,
            _ => return Err(GiveUp),
        }
    }
}

/// Past `"key"` `:` and the whitespace around them, from `pos`.
#[inline(always)]
fn key_end(bytes: &[u8], pos: usize) -> Result<usize> {
    let pos = ws_at(bytes, str_end(bytes, ws_at(bytes, pos))?);
    if bytes.get(pos) == Some(&b':') {
        Ok(pos + 1)
    } else {
        Err(GiveUp)
    }
}

/// Past `word` at `pos`.
fn literal_end(bytes: &[u8], pos: usize, word: &[u8]) -> Result<usize> {
    match bytes.get(pos..pos + word.len()) {
        Some(w) if w == word => Ok(pos + word.len()),
        _ => Err(GiveUp),
    }
}

/// Past one or more ASCII digits at `pos`.
fn digits_end(bytes: &[u8], pos: usize) -> Result<usize> {
    let end = pos
        + bytes[pos.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    if end == pos { Err(GiveUp) } else { Ok(end) }
}

/// Past the number at `pos`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(bytes: &[u8], mut pos: usize) -> Result<usize> {
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    pos = match bytes.get(pos) {
        Some(b'0') => pos + 1,
        Some(b'1'..=b'9') => digits_end(bytes, pos)?,
        _ => return Err(GiveUp),
    };
    if bytes.get(pos) == Some(&b'.') {
        pos = digits_end(bytes, pos + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        pos = digits_end(bytes, pos)?;
    }
    Ok(pos)
}

/// The first `"`, `\` or control byte at or after `pos` inside a string, with its position:
/// sixteen bytes at a time while sixteen remain (one vector compare each: most of a review is
/// strings), then byte by byte.
#[inline(always)]
fn special(bytes: &[u8], mut pos: usize) -> Option<(usize, u8)> {
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let below_space = u8x16::splat(0x1f);
    while let Some(chunk) = bytes.get(pos..pos + 16) {
        let mut block = [0; 16];
        block.copy_from_slice(chunk);
        let x = u8x16::new(block);
        // A byte is at most 0x1f exactly when the smaller of it and 0x1f is itself.
        let found = x.simd_eq(quote) | x.simd_eq(backslash) | x.min(below_space).simd_eq(x);
        let mask = found.to_bitmask();
        if mask != 0 {
            let at = mask.trailing_zeros() as usize;
            return block.get(at).map(|&b| (pos + at, b));
        }
        pos += 16;
    }
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return Some((pos, b));
        }
        pos += 1;
    }
    None
}

/// Past the escape whose `\` is at `at` in a skipped string: its end. A `\u` escape of a
/// UTF-16 surrogate (`\uD800`-`\uDFFF`) is for the full decoder to judge.
fn skip_escape(bytes: &[u8], at: usize) -> Result<usize> {
    match bytes.get(at + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
        Some(b'u') => {
            let hex = bytes.get(at + 2..at + 6).ok_or(GiveUp)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) || matches!(hex[0], b'd' | b'D') {
                return Err(GiveUp);
            }
            Ok(at + 6)
        }
        _ => Err(GiveUp),
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = GiveUp;

    /// Only the shapes below are read; anything that asks for "whatever is there" is left to
    /// serde_json.
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(GiveUp)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip_value()?;
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.ws();
        match self.peek() {
            Some(b't') => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(GiveUp),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.ws();
        match self.read_str()? {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.ws();
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.container(b'{', b'}', |entries| visitor.visit_map(entries))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.container(b'[', b']', |elements| visitor.visit_seq(elements))
    }

    /// A unit variant written as a string (what Kubernetes' enums are).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.ws();
        visitor.visit_enum(CowStrDeserializer::new(self.read_str()?))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct tuple tuple_struct
    }
}

/// Where an object or array being read stands.
enum State {
    /// Just after `{` or `[`.
    First,
    /// After an element.
    Next,
    /// After `}` or `]`.
    Closed,
}

/// The entries of an object, or the elements of an array, being read.
struct Entries<'a, 'de> {
    reader: &'a mut Reader<'de>,
    /// `}` or `]`.
    close: u8,
    state: State,
}

impl Entries<'_, '_> {
    /// Whether another entry follows (its separator consumed), or the container closed.
    fn more(&mut self) -> Result<bool> {
        let close = self.close;
        self.reader.ws();
        let next = self.reader.peek().ok_or(GiveUp)?;
        match self.state {
            State::Closed => Err(GiveUp),
            _ if next == close => {
                self.reader.pos += 1;
                self.state = State::Closed;
                Ok(false)
            }
            State::First => {
                self.state = State::Next;
                Ok(true)
            }
            State::Next if next == b',' => {
                self.reader.pos += 1;
                self.reader.ws();
                // No trailing comma.
                if self.reader.peek() == Some(close) {
                    return Err(GiveUp);
                }
                Ok(true)
            }
            State::Next => Err(GiveUp),
        }
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de> {
    type Error = GiveUp;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.more()? {
            return Ok(None);
        }
        let key = self.reader.read_str()?;
        self.reader.ws();
        self.reader.eat(b':')?;
        match key {
            Cow::Borrowed(k) => seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some),
            Cow::Owned(k) => seed.deserialize(StringDeserializer::new(k)).map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.reader)
    }
}

impl<'de> de::SeqAccess<'de> for Entries<'_, 'de> {
    type Error = GiveUp;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    fn skips(text: &str) -> bool {
        from_str::<IgnoredAny>(text).is_some()
    }

    /// The reader's skip accepts exactly what serde_json accepts, on valid and broken JSON of
    /// every kind (what it gives up on, serde_json then refuses with its own message).
    #[test]
    fn skipping_accepts_exactly_what_serde_json_accepts() {
        let cases = [
            "{}",
            "[]",
            " { \"a\" : [ 1 , -2.5e+3 , true , false , null , \"x\\\"y\\\\\\/\\b\\f\\n\\r\\t\\u00e9\" ] } ",
            "0",
            "-0",
            "01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "+1",
            "1.5E-7",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"\\x\"",
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "\"é ✓\"",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{,\"a\":1}",
            "{\"a\" 1}",
            "{\"a\":}",
            "{1:2}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "tru",
            "nul",
            "truex",
            "[true]x",
            "{}{}",
            "",
            " ",
            "\u{c}{}",
            "{}\u{b}",
            "[[[[]]]]",
            "[{\"a\":[{\"b\":{}}]},[]]",
            "{\"a\":[}",
            "[{]",
            "\"unterminated",
            "[\"a\",\"b\"",
        ];
        for case in cases {
            let serde = serde_json::from_str::<IgnoredAny>(case).is_ok();
            assert_eq!(skips(case), serde, "{case:?}");
        }
        // Surrogate escapes, which serde_json skips unchecked, are left to it: the full
        // decoder refuses a lone one wherever it is.
        for case in ["\"\\ud800\"", "[\"\\uDC00\"]", "{\"\\ud83d\\ude00\":1}"] {
            assert!(serde_json::from_str::<IgnoredAny>(case).is_ok(), "{case:?}");
            assert!(!skips(case), "{case:?}");
        }
        assert!(skips("\"\\uc800 \\u0d00\""));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Bytes cut out of a review and others put in their place: the reader skips the
        /// result exactly when serde_json does.
        #[test]
        fn skipping_agrees_with_serde_json_on_spliced_reviews(
            which in 0usize..64,
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            len in 0usize..6,
            insert in proptest::sample::select(vec![
                "", "\"", "{", "}", "[", "]", ",", ":", " ", "\t", "\u{c}", "\u{1}", "null", "nul",
                "true", "-", "0", "01", "1.", ".5", "1e", "1e+5", "-0.0E-0", "\\", "\\u00e9",
                "\\u12", "\\x", "\\\"", "\"\":", "é",
            ]),
            compact in proptest::prelude::any::<bool>(),
        ) {
            let dir = format!("{}/tests/fixtures/admission", env!("CARGO_MANIFEST_DIR"));
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            names.sort();
            let mut body = std::fs::read_to_string(&names[which % names.len()]).unwrap();
            if compact {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                body = v.to_string();
            }
            let mut at = cut.index(body.len());
            while !body.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + len).min(body.len());
            while !body.is_char_boundary(end) {
                end += 1;
            }
            let spliced = format!("{}{insert}{}", &body[..at], &body[end..]);
            proptest::prop_assert_eq!(
                skips(&spliced),
                serde_json::from_str::<IgnoredAny>(&spliced).is_ok(),
                "{:?}",
                &spliced[at.saturating_sub(20)..(at + insert.len() + 20).min(spliced.len())]
            );
        }
    }

    /// A quote, an escape, a control byte and a multi-byte character at every offset of the
    /// sixteen-byte steps, in strings of every length around them: read and skipped as serde_json
    /// reads and skips them.
    #[test]
    fn strings_are_scanned_alike_at_every_offset() {
        for special in [
            "\\\"", "\\n", "\\u00e9", "\u{1}", "\u{1f}", "é", "\u{7f}", " ", "~",
        ] {
            for before in 0..40 {
                for after in [0, 1, 7, 8, 9, 15, 16, 17, 31] {
                    let text = format!("\"{}{special}{}\"", "a".repeat(before), "b".repeat(after));
                    let serde = serde_json::from_str::<String>(&text).ok();
                    assert_eq!(from_str::<String>(&text), serde, "{text:?}");
                    assert_eq!(skips(&text), serde.is_some(), "{text:?}");
                }
            }
        }
    }

    /// Escapes, quotes, control bytes and structural bytes in strings, and numbers and
    /// literals between them, inside skipped objects and arrays: skipped exactly where
    /// serde_json skips them, with each escape and control byte at every offset of the
    /// sixteen-byte scan (0–16 bytes put before it) and after a string of 0–19 bytes, alone
    /// and as an object's value.
    #[test]
    fn containers_are_skipped_alike_at_every_offset() {
        let pieces = [
            r#""a\"b""#,
            r#""a\\"]"#,
            r#""a\\\"b""#,
            r#""\\\\""#,
            r#""\\\\\""#,
            r#""{[:,]}""#,
            r#""\u00e9\/""#,
            r#""\x""#,
            "\"a\u{1}\"",
            "\"a\tb\"",
            "\"\u{7f}é\"",
            r#"{"k\"":[1,-2.5e3,true,false,null]}"#,
            r#"{"a" : { } , "b" : [ ] }"#,
            "[\n1 ,\t2\r]",
            "[1 2]",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a"}"#,
            r#"{"a":}"#,
            "[truex]",
            "[01]",
            "[-]",
            r#"[1"a"]"#,
            r#"["a"1]"#,
            "[\\]",
            r#"[\"a"]"#,
            "[é]",
            "[\u{c}]",
            r#"{"a":1]"#,
            "[{]}",
            "]",
        ];
        // `piece` with `n` bytes before each control byte and each run of backslashes.
        let shifted = |piece: &str, n: usize| {
            let mut out = String::new();
            let mut prev = ' ';
            for c in piece.chars() {
                if c.is_control() || (c == '\\' && prev != '\\') {
                    out.push_str(&"a".repeat(n));
                }
                out.push(c);
                prev = c;
            }
            out
        };
        for (piece, shift) in pieces.iter().flat_map(|p| (0..17).map(move |n| (p, n))) {
            let piece = shifted(piece, shift);
            for pad in 0..20 {
                for close in ["]", ""] {
                    let text = format!("[\"{}\",{piece}{close}", "a".repeat(pad));
                    let serde = serde_json::from_str::<IgnoredAny>(&text).is_ok();
                    assert_eq!(skips(&text), serde, "{text:?}");
                    let nested = format!("{{\"x\":{text}}}");
                    let serde = serde_json::from_str::<IgnoredAny>(&nested).is_ok();
                    assert_eq!(skips(&nested), serde, "{nested:?}");
                }
            }
        }
    }

    /// A recursive type: each level an array read into a type.
    #[derive(serde::Deserialize)]
    struct Nest(#[allow(dead_code)] Vec<Nest>);

    /// Arrays read into types deeper than the reader's limit are left to serde_json (which
    /// reads them up to 128); skipped values are skipped at any depth, as serde_json does.
    #[test]
    fn deep_nesting_is_skipped_or_left_to_serde_json() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(from_str::<Nest>(&nested(MAX_DEPTH)).is_some());
        assert!(from_str::<Nest>(&nested(MAX_DEPTH + 1)).is_none());
        assert!(serde_json::from_str::<Nest>(&nested(MAX_DEPTH + 1)).is_ok());
        let deep = nested(1_000_000);
        assert!(skips(&deep));
        assert!(serde_json::from_str::<IgnoredAny>(&deep).is_ok());
        assert!(from_str::<Vec<IgnoredAny>>(&deep).is_some());
        assert!(!skips(&format!("{}]", deep)));
        assert!(!skips(&format!("[{{\"a\":{}}}", &deep[1..])));
    }

    /// Strings that are read are borrowed unless they hold escapes, which are read as
    /// serde_json reads them; surrogate escapes are left to serde_json.
    #[test]
    fn read_strings_are_borrowed_or_unescaped() {
        assert_eq!(from_str::<&str>(" \"abc\" "), Some("abc"));
        assert_eq!(from_str::<&str>("\"a\\nb\""), None);
        let escaped = "\"a\\nb\\u00e9\\u2713\\\"\\\\\\/\\b\\f\\r\\tz\"";
        assert_eq!(
            from_str::<String>(escaped),
            Some(serde_json::from_str::<String>(escaped).unwrap())
        );
        assert_eq!(from_str::<String>("\"\\ud83d\\ude00\""), None);
        assert_eq!(from_str::<String>("\"\\u00g0\""), None);
        assert_eq!(from_str::<String>("\"\\x\""), None);
        assert_eq!(from_str::<String>("\"é\""), Some("é".to_owned()));
        assert_eq!(from_str::<&str>("1"), None);
        assert_eq!(from_str::<Option<&str>>("null"), Some(None));
        assert_eq!(
            from_str::<Vec<&str>>("[\"a\", \"b\"]"),
            Some(vec!["a", "b"])
        );
        assert_eq!(from_str::<Vec<&str>>("[\"a\",]"), None);
        assert_eq!(from_str::<bool>("true"), Some(true));
        assert_eq!(from_str::<bool>("null"), None);
    }
}
