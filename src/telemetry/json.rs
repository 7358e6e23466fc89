//! The JSON format's line, byte for byte what tracing-subscriber's `json()` writes with the
//! event's fields at the top level and the current span (`flatten_event`, `with_current_span`,
//! the span list kept): `timestamp`, `level`, the event's fields in the order they were
//! recorded, `target`, `span` (the current span's fields and `name`), `spans` (each span from
//! the root, likewise).
//!
//! The stock formatter stores each span's fields as a JSON object, and for every line parses
//! that text back into a map to write it out again, twice (for `span` and for `spans`); it
//! collects a span's fields as `serde_json::Value`s before writing them, and hands serde_json's
//! output to the line a few bytes at a time, each piece checked to be UTF-8 on its own: about
//! 43,000 instructions for each of a review's two lines and 12,700 for its span, where a whole
//! cache hit with the plain format takes 111,000. Here a span's
//! fields are written once into the same object ([`JsonSpanFields`]), each line writes the
//! stored objects as they are with `name` added, and a line is built in one buffer, checked
//! once.
//!
//! A leaf of `telemetry`: must not import anything else of the crate.

use std::fmt;

use serde::Serializer as _;
use serde_json::value::RawValue;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The event format of the JSON lines; `T` writes the time.
pub struct JsonLine<T>(pub T);

/// A serde_json writer appending to the line.
type Json<'a> = serde_json::Serializer<&'a mut Vec<u8>>;

impl<S, T> FormatEvent<S, JsonSpanFields> for JsonLine<T>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    T: tracing_subscriber::fmt::time::FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonSpanFields>,
        mut w: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        self.0.format_time(&mut Writer::new(&mut time))?;
        let meta = event.metadata();
        let mut line = Vec::with_capacity(512);
        line.extend_from_slice(b"{\"timestamp\":");
        string(&mut line, &time)?;
        line.extend_from_slice(b",\"level\":");
        string(&mut line, level(meta.level()))?;
        let mut fields = Fields {
            line: &mut line,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.extend_from_slice(b",\"target\":");
        string(&mut line, meta.target())?;
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = &current {
            line.extend_from_slice(b",\"span\":");
            span_object(&mut line, span)?;
        }
        if current.is_some() {
            line.extend_from_slice(b",\"spans\":[");
            if let Some(leaf) = ctx.lookup_current() {
                let mut first = true;
                super::from_root(leaf, |span| {
                    if !std::mem::take(&mut first) {
                        line.push(b',');
                    }
                    span_object(&mut line, span)
                })?;
            }
            line.push(b']');
        }
        line.extend_from_slice(b"}\n");
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

fn level(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARN",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// `value` as a JSON string, escaped as serde_json escapes it.
fn string(line: &mut Vec<u8>, value: &str) -> fmt::Result {
    (&mut Json::new(line))
        .serialize_str(value)
        .map_err(|_| fmt::Error)
}

/// A span's stored fields (a JSON object written by `JsonSpanFields`) with `"name"` added last.
fn span_object<R>(line: &mut Vec<u8>, span: &SpanRef<'_, R>) -> fmt::Result
where
    R: for<'a> LookupSpan<'a>,
{
    let ext = span.extensions();
    let stored = ext
        .get::<FormattedFields<JsonSpanFields>>()
        .map_or("{}", |f| f.fields.as_str());
    // [`JsonSpanFields`] writes a whole object, `{}` when there are no fields; anything else
    // was not written by it, and is not spliced into the line.
    let inner = stored
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or(fmt::Error)?;
    line.push(b'{');
    line.extend_from_slice(inner.as_bytes());
    if !inner.is_empty() {
        line.push(b',');
    }
    line.extend_from_slice(b"\"name\":");
    string(line, span.metadata().name())?;
    line.push(b'}');
    Ok(())
}

/// An event's fields as `,"name":value` pairs, the way tracing-serde writes them: text as
/// strings, numbers and flags as themselves (a float that is not finite as `null`), anything
/// else as the string `{:?}` writes.
struct Fields<'a> {
    line: &'a mut Vec<u8>,
    /// The first error; the fields after it are not written.
    result: fmt::Result,
}

impl Fields<'_> {
    fn entry(
        &mut self,
        field: &tracing::field::Field,
        value: impl FnOnce(&mut Json<'_>) -> Result<(), serde_json::Error>,
    ) {
        if self.result.is_err() {
            return;
        }
        self.line.push(b',');
        self.result = string(self.line, field.name()).and_then(|()| {
            self.line.push(b':');
            value(&mut Json::new(&mut *self.line)).map_err(|_| fmt::Error)
        });
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.entry(field, |j| j.collect_str(&format_args!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.entry(field, |j| j.serialize_str(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.entry(field, |j| j.serialize_bool(value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.entry(field, |j| j.serialize_u64(value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.entry(field, |j| j.serialize_i64(value));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.entry(field, |j| j.serialize_f64(value));
    }
}

/// A span's fields as one JSON object, as tracing-subscriber's `JsonFields` writes them: sorted
/// by name, the last of a repeated name kept, text as strings, numbers and flags as themselves
/// (a float that is not finite as `null`), bytes as a list of numbers, anything else as the
/// string `{:?}` writes, whose name loses an `r#` prefix.
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'w>, fields: R) -> fmt::Result {
        let mut values = Values::default();
        fields.record(&mut values);
        let kept = values.kept()?;
        let object = object(
            kept.iter()
                .map(|(name, at)| (*name, &values.json[at.clone()])),
        )?;
        w.write_str(std::str::from_utf8(&object).map_err(|_| fmt::Error)?)
    }

    /// Fields recorded after the span was created join those it has: the stored object is
    /// read back (rarely done: a review's span gets all of its fields when it starts).
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut values = Values::default();
        fields.record(&mut values);
        let kept = values.kept()?;
        let mut merged: std::collections::BTreeMap<String, Box<RawValue>> = if current.is_empty() {
            Default::default()
        } else {
            serde_json::from_str(current).map_err(|_| fmt::Error)?
        };
        let text = std::str::from_utf8(&values.json).map_err(|_| fmt::Error)?;
        for (name, at) in kept {
            let raw = RawValue::from_string(text[at].to_string()).map_err(|_| fmt::Error)?;
            merged.insert(name.to_string(), raw);
        }
        let object = object(
            merged
                .iter()
                .map(|(name, value)| (name.as_str(), value.get().as_bytes())),
        )?;
        current.fields = String::from_utf8(object).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// `{"name":value,...}` from names and values already written as JSON.
fn object<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> Result<Vec<u8>, fmt::Error> {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (name, value)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(&mut out, name)?;
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    Ok(out)
}

/// A span's fields, each value written as JSON into one buffer in the order recorded.
struct Values {
    json: Vec<u8>,
    /// Each field's name and where its value is in `json`.
    entries: Vec<(&'static str, std::ops::Range<usize>)>,
    /// The first error; the fields after it are not written.
    result: fmt::Result,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            json: Vec::with_capacity(256),
            entries: Vec::new(),
            result: Ok(()),
        }
    }
}

impl Values {
    fn value(
        &mut self,
        name: &'static str,
        value: impl FnOnce(&mut Json<'_>) -> Result<(), serde_json::Error>,
    ) {
        if self.result.is_err() {
            return;
        }
        let start = self.json.len();
        self.result = value(&mut Json::new(&mut self.json))
            .map_err(|_| fmt::Error)
            .map(|()| self.entries.push((name, start..self.json.len())));
    }

    /// The fields sorted by name, the last of each name kept.
    fn kept(&mut self) -> Result<Vec<(&'static str, std::ops::Range<usize>)>, fmt::Error> {
        self.result?;
        let mut entries = std::mem::take(&mut self.entries);
        // Stable: equal names keep their order, and the last of them is the one kept.
        entries.sort_by_key(|(name, _)| *name);
        let mut kept: Vec<(&'static str, std::ops::Range<usize>)> =
            Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        Ok(kept)
    }
}

impl tracing::field::Visit for Values {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.value(name, |j| j.collect_str(&format_args!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.value(field.name(), |j| j.serialize_str(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.value(field.name(), |j| j.serialize_bool(value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.value(field.name(), |j| j.serialize_u64(value));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.value(field.name(), |j| j.serialize_i64(value));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.value(field.name(), |j| j.serialize_f64(value));
    }

    fn record_bytes(&mut self, field: &tracing::field::Field, value: &[u8]) {
        self.value(field.name(), |j| {
            serde::Serialize::serialize(&value.iter().collect::<Vec<_>>(), j)
        });
    }
}
