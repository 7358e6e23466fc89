//! Logging: plain or JSON lines on stderr, filtered by `RUST_LOG` (default `info`, with the
//! HTTP and TLS libraries quieter).
//!
//! `serve` formats each line where it is logged but writes it from a thread of its own
//! ([`Writer::Background`], the `batch` module): a review does not wait for a `write` to
//! stderr, and a stalled stderr (a full pipe nobody reads) never holds up an admission answer.
//! The queue is bounded ([`QUEUED_BYTES`]); when it is full, lines are dropped and counted
//! (`signet_log_lines_dropped_total`). The other commands write each line as it is logged.
//!
//! Field values come from requests (a review's `uid`, object names, image references) and from
//! signatures (certificate subjects), so they are untrusted text. The plain format writes every
//! field through [`Untrusted`]: control characters escaped (a raw CR or LF would forge a log
//! line, an ESC would reach an operator's terminal) and long values cut to [`MAX_FIELD_CHARS`].
//! The JSON format escapes control characters itself; lists that grow with the request are
//! bounded where they are built ([`join_bounded`]).
//!
//! A leaf: must not import the engine's modules (`decision`, `registry`, `policy`, `verify`).

use std::fmt;
use std::fmt::Write as _;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;

mod batch;
mod json;

const DEFAULT_FILTER: &str = "info,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn,h2=warn";

/// The longest a field value is written in the plain format, and the longest list that
/// [`join_bounded`] builds.
pub const MAX_FIELD_CHARS: usize = 4096;

/// The most bytes of log lines [`Writer::Background`] holds while stderr is slow: at 20,000
/// reviews a second (two lines of ~500 bytes each) a stall of ~0.2 s. Beyond it, lines are
/// dropped and counted, never waited for.
pub const QUEUED_BYTES: usize = 4 << 20;

/// How log lines reach stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Written by the logging call itself (the CLI commands: their lines keep their place
    /// among what the command prints).
    Direct,
    /// Queued to a thread that writes them (`serve`): bounded, lossy when full.
    Background,
}

/// Keeps the background writer's thread; dropping it writes out the lines still queued
/// (waiting at most about a second for a stalled stderr). `main` holds it until it returns:
/// every exit of the process goes through there.
#[must_use = "dropping the guard stops the log writer: lines logged after it are lost"]
pub struct Guard {
    _worker: Option<batch::Guard>,
}

/// The background writer, once it exists: for its drop count.
static BACKGROUND: OnceLock<batch::Lines> = OnceLock::new();

/// Log lines the background writer dropped because its queue was full (0 without one).
pub fn dropped_lines() -> u64 {
    BACKGROUND.get().map_or(0, batch::Lines::dropped)
}

/// Installs the global subscriber; `ansi`: colour the plain format (only for a terminal, and
/// not under `NO_COLOR`: see [`crate::config::ansi_wanted`]). Calling it twice is harmless
/// (the second call is ignored). Keep the [`Guard`] until the process ends.
pub fn init(format: LogFormat, ansi: bool, writer: Writer) -> Guard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    match writer {
        Writer::Direct => {
            let _ = tracing::subscriber::set_global_default(build(
                format,
                filter,
                std::io::stderr,
                ansi,
            ));
            Guard { _worker: None }
        }
        Writer::Background => {
            let (lines, worker) = match batch::start(std::io::stderr(), QUEUED_BYTES) {
                Ok(started) => started,
                Err(error) => {
                    let guard = init(format, ansi, Writer::Direct);
                    tracing::warn!(%error, "no thread for the log writer; writing lines directly");
                    return guard;
                }
            };
            let installed = build(format, filter, lines.clone(), ansi);
            if tracing::subscriber::set_global_default(installed).is_ok() {
                let _ = BACKGROUND.set(lines);
            }
            Guard {
                _worker: Some(worker),
            }
        }
    }
}

/// `signet_log_lines_dropped_total`, brought up to the background writer's own count when
/// scraped: the writer counts its drops itself, so a review pays nothing for the metric.
pub fn dropped_lines_metric() -> prometheus::Result<Box<dyn prometheus::core::Collector>> {
    let counter = prometheus::IntCounter::new(
        "signet_log_lines_dropped_total",
        "Log lines dropped because stderr did not keep up (their queue was full)",
    )?;
    Ok(Box::new(DroppedLines(counter)))
}

struct DroppedLines(prometheus::IntCounter);

impl prometheus::core::Collector for DroppedLines {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let (now, shown) = (dropped_lines(), self.0.get());
        if now > shown {
            self.0.inc_by(now - shown);
        }
        self.0.collect()
    }
}

/// The subscriber [`init`] installs, without colour, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    build(format, filter, writer, false)
}

fn build<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_timer(Clock)
        .with_writer(writer);
    match format {
        // The event's fields at the top level, with the current span and the span list:
        // tracing-subscriber's `json()` with `flatten_event`, written by `json::JsonLine`.
        LogFormat::Json => Box::new(
            builder
                .json()
                .fmt_fields(json::JsonSpanFields)
                .event_format(json::JsonLine(Clock))
                .finish(),
        ),
        // Colour for a terminal: tracing-subscriber's own format. Without it, the same line
        // written piece by piece (what every deployment logs).
        LogFormat::Plain if ansi => Box::new(builder.fmt_fields(PlainFields).finish()),
        LogFormat::Plain => Box::new(
            builder
                .fmt_fields(PlainFields)
                .event_format(PlainLine(Clock))
                .finish(),
        ),
    }
}

/// The plain format's line without colour, byte for byte tracing-subscriber's default
/// (`Format<Full>` without ANSI): time, level, the spans from the root with their fields, the
/// target, the event's fields. The stock formatter styles every piece (an empty style when
/// colour is off) and goes through `write!` for each; this writes the pieces directly, about
/// 1,800 fewer instructions per line (3,600 per cache hit, which logs two). The pieces are
/// gathered in a buffer of the thread's ([`buffered`]) and handed on in one write.
struct PlainLine<T>(T);

impl<S, N, T> tracing_subscriber::fmt::FormatEvent<S, N> for PlainLine<T>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    T: tracing_subscriber::fmt::time::FormatTime,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        buffered(&LINE, &mut w, |line| self.write_line(ctx, line, event))
    }
}

impl<T: tracing_subscriber::fmt::time::FormatTime> PlainLine<T> {
    fn write_line<S, N>(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        w: &mut String,
        event: &tracing::Event<'_>,
    ) -> fmt::Result
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
        N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    {
        use tracing_subscriber::fmt::FormatFields as _;
        if self
            .0
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(w))
            .is_err()
        {
            w.write_str("<unknown time>")?;
        }
        let meta = event.metadata();
        w.write_str(match *meta.level() {
            tracing::Level::TRACE => " TRACE ",
            tracing::Level::DEBUG => " DEBUG ",
            tracing::Level::INFO => "  INFO ",
            tracing::Level::WARN => "  WARN ",
            tracing::Level::ERROR => " ERROR ",
        })?;
        if let Some(leaf) = ctx.parent_span() {
            from_root(leaf, |span| {
                w.write_str(span.metadata().name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    w.write_char('{')?;
                    w.write_str(fields)?;
                    w.write_char('}')?;
                }
                w.write_char(':')
            })?;
            w.write_char(' ')?;
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(tracing_subscriber::fmt::format::Writer::new(w), event)?;
        w.write_char('\n')
    }
}

thread_local! {
    /// A line being formatted ([`PlainLine`]).
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    /// Fields being formatted ([`PlainFields`]).
    static FIELDS: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Writes what `write` writes to `out` in one piece, gathered first in the thread's `buffer`:
/// each write to `out` is a call through `dyn fmt::Write`, several per field, and into the
/// buffer each is a copy the compiler can inline. When the buffer is in use (something being
/// formatted logs), a new one is used.
fn buffered(
    buffer: &'static std::thread::LocalKey<std::cell::RefCell<String>>,
    out: &mut tracing_subscriber::fmt::format::Writer<'_>,
    write: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    /// A buffer longer than this after a line (a long value) is not kept for the next.
    const KEPT: usize = 16 << 10;
    let run = |buf: &mut String| {
        buf.clear();
        let written = write(buf).and_then(|()| out.write_str(buf));
        if buf.capacity() > KEPT {
            *buf = String::new();
        }
        written
    };
    let mut pending = Some(run);
    let in_buffer = buffer.try_with(|cell| {
        let mut buf = cell.try_borrow_mut().ok()?;
        pending.take().map(|run| run(&mut buf))
    });
    match pending {
        Some(run) => run(&mut String::new()),
        None => in_buffer.ok().flatten().unwrap_or(Ok(())),
    }
}

/// `leaf` and the spans above it, from the root, each to `write`. A span without a parent (a
/// review's, on every line a review logs) is written without collecting its scope first.
fn from_root<'a, S>(
    leaf: tracing_subscriber::registry::SpanRef<'a, S>,
    mut write: impl FnMut(&tracing_subscriber::registry::SpanRef<'a, S>) -> fmt::Result,
) -> fmt::Result
where
    S: tracing_subscriber::registry::LookupSpan<'a>,
{
    if leaf.parent().is_none() {
        return write(&leaf);
    }
    for span in leaf.scope().from_root() {
        write(&span)?;
    }
    Ok(())
}

/// Each line's time: RFC 3339 in UTC with microseconds (`2026-12-06T13:54:47.803747Z`, as
/// tracing-subscriber writes it by default). The date and the time of day are formatted once a
/// second on each thread, and only the microseconds for every line: formatting the whole
/// timestamp took about 2,400 instructions a line.
struct Clock;

impl tracing_subscriber::fmt::time::FormatTime for Clock {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> fmt::Result {
        thread_local! {
            static SECOND: std::cell::RefCell<(u64, String)> =
                const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with(|second| {
            let mut second = second.borrow_mut();
            if second.0 != now.as_secs() {
                *second = (now.as_secs(), date_and_time(now.as_secs()));
            }
            w.write_str(&second.1)?;
            write_fraction(w, now.subsec_micros())
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` after the Unix epoch, in UTC.
fn date_and_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|at| at.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| "9999-12-31T23:59:59".into())
}

/// `.123456Z`.
fn write_fraction(w: &mut impl fmt::Write, micros: u32) -> fmt::Result {
    let mut out = *b".000000Z";
    let mut rest = micros.min(999_999);
    for digit in out[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    // Only ASCII digits, a dot and a `Z` were written.
    w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// The plain format's fields: `name=value` pairs separated by spaces, the message bare, every
/// value as `{:?}` writes it, escaped and bounded as [`Untrusted`] text is. Text, numbers and
/// flags with nothing to escape are written directly; anything else goes through `{:?}` and
/// the escaper as it is formatted (no copy of the value first).
struct PlainFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut w: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        buffered(&FIELDS, &mut w, |buf| {
            let mut visit = PlainVisit {
                w: buf,
                seen: false,
                result: Ok(()),
            };
            fields.record(&mut visit);
            visit.result
        })
    }
}

struct PlainVisit<'w> {
    w: &'w mut String,
    seen: bool,
    /// The first error; the fields after it are not written.
    result: fmt::Result,
}

impl PlainVisit<'_> {
    /// The separator and `name=` (none for the message), then what `value` writes.
    fn field(
        &mut self,
        field: &tracing::field::Field,
        value: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        if self.result.is_ok() {
            let after_another = std::mem::replace(&mut self.seen, true);
            self.result = write_field(self.w, after_another, field, value);
        }
    }
}

fn write_field(
    w: &mut String,
    after_another: bool,
    field: &tracing::field::Field,
    value: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    if after_another {
        w.write_char(' ')?;
    }
    if field.name() != "message" {
        w.write_str(field.name())?;
        w.write_char('=')?;
    }
    value(w)
}

impl tracing::field::Visit for PlainVisit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            let mut escaped = Escaper::new(w, MAX_FIELD_CHARS);
            write!(escaped, "{value:?}")?;
            escaped.finish()
        });
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        // Text `{:?}` writes as it is, in quotes, within the bound.
        if value.len() + 2 <= MAX_FIELD_CHARS && debug_quotes_as_is(value) {
            self.field(field, |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            });
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    /// Digits, `.`, `e`, `-`, `inf` or `NaN`: nothing to escape, and short. Within
    /// [`SHORTEST_AS_DEBUG`] (a review's milliseconds) by a shortest-digits formatter that
    /// writes what `{:?}` writes in a fraction of its time; elsewhere by `{:?}`.
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.field(field, |w| {
            if SHORTEST_AS_DEBUG.contains(&value.abs()) {
                w.push_str(ryu::Buffer::new().format_finite(value));
                Ok(())
            } else {
                write!(w, "{value:?}")
            }
        });
    }
}

/// Where the shortest-digits formatter writes a number as `{:?}` does (a test checks it): no
/// exponent, which `{:?}` writes below 1e-4, and far below 2^49, from where a number's exact
/// value can end halfway between two shortest spellings, which the two round differently.
const SHORTEST_AS_DEBUG: std::ops::Range<f64> = 1e-3..1e9;

/// A plain-format subscriber writing to `writer` (for tests of what lands in a log line).
#[cfg(test)]
fn plain_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .fmt_fields(PlainFields)
        .finish()
}

/// Text from a request or a signature, displayed safely: control characters (and the Unicode
/// bidirectional overrides that reorder what a terminal shows) escaped as `\n`, `\u{1b}`…,
/// and at most [`MAX_FIELD_CHARS`] characters, the rest counted: `… (1234 more characters)`.
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_bounded(f, self.0, MAX_FIELD_CHARS)
    }
}

/// Writes `s` escaped, cut after `max` characters of input.
fn escape_bounded(w: &mut impl fmt::Write, s: &str, max: usize) -> fmt::Result {
    let mut escaped = Escaper::new(w, max);
    escaped.write_str(s)?;
    escaped.finish()
}

/// Printable ASCII: the space to `~`. Checked over whole values with `fold` rather than `all`:
/// without an early exit the compiler checks sixteen bytes at a time, and a value nearly
/// always passes.
fn printable(b: u8) -> bool {
    (b' '..=b'~').contains(&b)
}

/// Whether `{:?}` writes `s` as it is between its quotes: printable ASCII without `"` or `\`.
pub(crate) fn debug_quotes_as_is(s: &str) -> bool {
    s.bytes()
        .fold(true, |ok, b| ok & printable(b) & (b != b'"') & (b != b'\\'))
}

/// A writer that escapes what goes through it (see [`Untrusted`]) and writes at most `left`
/// more characters, counting the rest for [`Escaper::finish`]. Text without anything to
/// escape is written in runs, not character by character.
struct Escaper<'w, W: fmt::Write + ?Sized> {
    out: &'w mut W,
    left: usize,
    more: usize,
}

impl<'w, W: fmt::Write + ?Sized> Escaper<'w, W> {
    fn new(out: &'w mut W, max: usize) -> Self {
        Escaper {
            out,
            left: max,
            more: 0,
        }
    }

    /// Says how many characters were cut, if any: `… (1234 more characters)`.
    fn finish(self) -> fmt::Result {
        if self.more > 0 {
            write!(self.out, "… ({} more characters)", self.more)?;
        }
        Ok(())
    }
}

impl<W: fmt::Write + ?Sized> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text is printable ASCII within the bound: written as it is, without walking
        // its characters.
        if s.len() <= self.left && s.bytes().fold(true, |ok, b| ok & printable(b)) {
            self.left -= s.len();
            return self.out.write_str(s);
        }
        let mut run = 0;
        for (i, c) in s.char_indices() {
            if self.left == 0 {
                self.out.write_str(&s[run..i])?;
                self.more += s[i..].chars().count();
                return Ok(());
            }
            self.left -= 1;
            if needs_escape(c) {
                self.out.write_str(&s[run..i])?;
                match c {
                    '\n' => self.out.write_str("\\n")?,
                    '\r' => self.out.write_str("\\r")?,
                    '\t' => self.out.write_str("\\t")?,
                    c => write!(self.out, "\\u{{{:x}}}", c as u32)?,
                }
                run = i + c.len_utf8();
            }
        }
        self.out.write_str(&s[run..])
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional formatting characters: what must not
/// reach a log line, a terminal or an admission answer raw.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters escaped, whatever its length: for text that goes into an
/// answer (a deny message), which has its own bound.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(|c| needs_escape(c) || c == '\n') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = escape_bounded(&mut out, s, usize::MAX);
    out
}

/// `items` joined with `sep`, stopping before [`MAX_FIELD_CHARS`] characters with a count of
/// what was left out: `a; b; (18000 more)`. For log fields built from per-image lists, which a
/// review with thousands of images would otherwise make megabytes long.
pub fn join_bounded(items: &[String], sep: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for (i, item) in items.iter().enumerate() {
        let item_len = item.chars().count() + if i == 0 { 0 } else { sep.chars().count() };
        if len + item_len > MAX_FIELD_CHARS {
            if i == 0 {
                out.extend(item.chars().take(MAX_FIELD_CHARS));
                out.push('…');
                if items.len() > 1 {
                    out.push_str(&format!("{sep}({} more)", items.len() - 1));
                }
            } else {
                out.push_str(&format!("{sep}({} more)", items.len() - i));
            }
            return out;
        }
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(item);
        len += item_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::field::MakeExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// A `uid` with CR/LF and a terminal escape, and a name of 100 KiB, make one bounded line
    /// with nothing raw in it.
    #[test]
    fn plain_log_lines_escape_and_bound_untrusted_fields() {
        let buf = Buffer::default();
        let subscriber = plain_subscriber(buf.clone());
        tracing::subscriber::with_default(subscriber, || {
            let uid = "abc\r\n2026-01-01T00:00:00Z  INFO forged line\x1b[31m";
            let name = "n".repeat(100 * 1024);
            let span = tracing::info_span!("review", uid = %uid, name = %name);
            let _g = span.enter();
            tracing::info!(detail = %uid, quoted = uid, "admission review");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "one line: {out:.300?}");
        assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:.300?}");
        assert!(out.contains("abc\\r\\n2026"), "{out:.300?}");
        assert!(out.contains("\\u{1b}[31m"), "{out:.300?}");
        assert!(out.contains("more characters)"), "{out:.200}");
        assert!(out.len() < 3 * MAX_FIELD_CHARS, "{} bytes", out.len());
    }

    /// A line formatted while another is (a value whose formatting logs, which a global
    /// subscriber lets through) gets a buffer of its own: neither line loses or mixes text. A
    /// long line's buffer is not kept for the next.
    #[test]
    fn a_line_formatted_inside_another_gets_its_own_buffer() {
        use tracing_subscriber::fmt::format::Writer;
        let (mut outer, mut inner) = (String::new(), String::new());
        buffered(&LINE, &mut Writer::new(&mut outer), |line| {
            line.push_str("outer ");
            buffered(&LINE, &mut Writer::new(&mut inner), |nested| {
                nested.push_str("inner");
                Ok(())
            })?;
            line.push_str("line");
            Ok(())
        })
        .unwrap();
        assert_eq!((outer.as_str(), inner.as_str()), ("outer line", "inner"));
        let mut long = String::new();
        buffered(&LINE, &mut Writer::new(&mut long), |line| {
            line.push_str(&"x".repeat(100_000));
            Ok(())
        })
        .unwrap();
        assert_eq!(long.len(), 100_000);
        LINE.with_borrow(|line| assert!(line.capacity() <= 16 << 10, "{}", line.capacity()));
    }

    proptest::proptest! {
        /// Numbers in the fast formatter's range are written as `{:?}` writes them.
        #[test]
        fn numbers_are_written_as_debug_writes_them(
            magnitude in -3i32..9,
            mantissa in 1.0f64..10.0,
            negative: bool,
            bits: u64,
        ) {
            let from_parts = mantissa * 10f64.powi(magnitude) * if negative { -1.0 } else { 1.0 };
            let from_bits = f64::from_bits(bits);
            for value in [from_parts, from_bits, (from_parts * 1e3).round() / 1e3] {
                if SHORTEST_AS_DEBUG.contains(&value.abs()) {
                    let mut shortest = ryu::Buffer::new();
                    proptest::prop_assert_eq!(shortest.format_finite(value), format!("{value:?}"));
                }
            }
        }
    }

    #[test]
    fn the_ends_of_the_fast_formatters_range_are_written_as_debug_writes_them() {
        for value in [
            1e-3,
            0.0010000000000000002,
            1e9 - 2e-7,
            999_999_999.999_999_9,
            1.0,
            0.5,
        ] {
            assert!(SHORTEST_AS_DEBUG.contains(&value), "{value:?}");
            assert_eq!(
                ryu::Buffer::new().format_finite(value),
                format!("{value:?}")
            );
            assert_eq!(
                ryu::Buffer::new().format_finite(-value),
                format!("{:?}", -value)
            );
        }
    }

    /// A fixed time, so that two formatters' lines can be compared.
    struct Noon;

    impl tracing_subscriber::fmt::time::FormatTime for Noon {
        fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-06T12:00:00.000001Z")
        }
    }

    /// Lines of every level, with no span, nested spans, a span without fields and untrusted
    /// text, logged through tracing-subscriber's own plain format and through [`PlainLine`].
    fn log_the_same_events(subscriber: impl tracing::Subscriber + Send + Sync) {
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(code = 3, "no span");
            let outer = tracing::info_span!("review", uid = "u-1\n", namespace = %"default");
            let _o = outer.enter();
            tracing::warn!(image = %"registry.example/app:1", "inside one");
            let inner = tracing::debug_span!("verify");
            let _i = inner.enter();
            tracing::info!(ok = true, "inside two");
            let leaf = tracing::trace_span!("fetch", attempt = 2);
            let _l = leaf.enter();
            tracing::debug!("bare message");
            tracing::trace!(elapsed_ms = 0.25);
        });
    }

    #[test]
    fn the_plain_line_is_tracing_subscribers_own() {
        // The same subscriber but for the event format.
        let plain = |to: &Buffer| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(to.clone())
                .with_ansi(false)
                .fmt_fields(PlainFields)
        };
        let (stock, ours) = (Buffer::default(), Buffer::default());
        log_the_same_events(plain(&stock).with_timer(Noon).finish());
        log_the_same_events(plain(&ours).event_format(PlainLine(Noon)).finish());
        let (stock, ours) = (
            String::from_utf8(stock.0.lock().unwrap().clone()).unwrap(),
            String::from_utf8(ours.0.lock().unwrap().clone()).unwrap(),
        );
        assert_eq!(stock.lines().count(), 5, "{stock}");
        assert_eq!(ours, stock);
    }

    /// What the plain format's fields must be: every value through `{:?}` and the escaper.
    fn reference_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
        tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
            if field.name() != "message" {
                w.write_str(field.name())?;
                w.write_char('=')?;
            }
            let mut escaped = Escaper::new(w, MAX_FIELD_CHARS);
            write!(escaped, "{value:?}")?;
            escaped.finish()
        })
        .delimited(" ")
    }

    /// Text, integers, floats and flags, in an event and in a span, written by [`PlainFields`]
    /// and by the reference.
    fn log_fields(subscriber: impl tracing::Subscriber + Send + Sync, texts: &[String]) {
        tracing::subscriber::with_default(subscriber, || {
            for t in texts {
                let span = tracing::info_span!("review", uid = t.as_str(), kind = %t);
                let _g = span.enter();
                tracing::info!(
                    text = t.as_str(),
                    shown = %t,
                    n = t.len(),
                    delta = -(t.len() as i64),
                    ok = t.is_empty(),
                    ratio = t.len() as f64 / 7.0,
                    "message with {} bytes",
                    t.len()
                );
                tracing::info!(message = t.as_str());
            }
            tracing::info!(
                min = i64::MIN,
                max = u64::MAX,
                nan = f64::NAN,
                inf = f64::NEG_INFINITY
            );
            tracing::info!(tiny = 1e-9, huge = 1e300, zero = -0.0);
        });
    }

    fn same_fields(texts: &[String]) -> (String, String) {
        let (reference, ours) = (Buffer::default(), Buffer::default());
        let with = |to: &Buffer| {
            tracing_subscriber::fmt()
                .with_writer(to.clone())
                .with_ansi(false)
                .without_time()
        };
        log_fields(
            with(&reference).fmt_fields(reference_fields()).finish(),
            texts,
        );
        log_fields(with(&ours).fmt_fields(PlainFields).finish(), texts);
        let text = |b: Buffer| String::from_utf8(b.0.lock().unwrap().clone()).unwrap();
        (text(reference), text(ours))
    }

    #[test]
    fn plain_fields_are_what_debug_and_the_escaper_write() {
        let mut texts: Vec<String> = [
            "",
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\there",
            "line\nfeed",
            "\u{1b}[31m",
            "bidi \u{202e} override",
            "caf\u{e9} \u{1f600}",
            "~ \u{7f} del",
            "it's",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Around the bound: the quotes count.
        for n in [
            MAX_FIELD_CHARS - 3,
            MAX_FIELD_CHARS - 2,
            MAX_FIELD_CHARS - 1,
            MAX_FIELD_CHARS,
        ] {
            texts.push("x".repeat(n));
        }
        let (reference, ours) = same_fields(&texts);
        assert_eq!(
            reference.lines().count(),
            2 * texts.len() + 2,
            "{reference:.2000}"
        );
        assert!(
            reference.contains(r#"text="with \"quotes\"""#),
            "{reference:.2000}"
        );
        assert_eq!(ours, reference);
    }

    /// The JSON subscriber as tracing-subscriber writes it (`stock`) or with [`json::JsonLine`]
    /// (the rest of the subscriber the same: [`build`]'s), at a fixed time.
    fn json_subscriber(to: &Buffer, stock: bool) -> Box<dyn tracing::Subscriber + Send + Sync> {
        let json = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(to.clone())
            .with_ansi(false)
            .with_timer(Noon)
            .json();
        if stock {
            Box::new(json.flatten_event(true).with_current_span(true).finish())
        } else {
            Box::new(
                json.fmt_fields(json::JsonSpanFields)
                    .event_format(json::JsonLine(Noon))
                    .finish(),
            )
        }
    }

    fn text(b: &Buffer) -> String {
        String::from_utf8(b.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_json_line_is_tracing_subscribers_own() {
        let (stock, ours) = (Buffer::default(), Buffer::default());
        log_the_same_events(json_subscriber(&stock, true));
        log_the_same_events(json_subscriber(&ours, false));
        let (stock, ours) = (text(&stock), text(&ours));
        assert_eq!(stock.lines().count(), 5, "{stock}");
        assert!(
            stock.contains(r#""spans":[{"namespace":"default","uid":"u-1\n","name":"review"},{"name":"verify"}"#),
            "{stock}"
        );
        assert_eq!(ours, stock);
    }

    /// Text, numbers, flags and bytes of every kind, `r#` names, a span field named twice and
    /// one recorded after the span was created, a field named like the line's own keys, and an
    /// event with an explicit parent outside the current span.
    #[test]
    fn json_fields_are_written_as_tracing_subscriber_writes_them() {
        let texts: Vec<String> = [
            "",
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "tab\there\u{8}\u{c}",
            "line\nfeed\r",
            "\u{1b}[31m \u{0} \u{1f} \u{7f}",
            "bidi \u{202e} override",
            "caf\u{e9} \u{1f600}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (stock, ours) = (Buffer::default(), Buffer::default());
        for (to, is_stock) in [(&stock, true), (&ours, false)] {
            tracing::subscriber::with_default(json_subscriber(to, is_stock), || {
                let other = tracing::info_span!("other", r#type = "x");
                tracing::info!(parent: &other, "explicit parent, no span entered");
                let bytes: &[u8] = b"\x00\xff";
                let span =
                    tracing::info_span!("review", uid = tracing::field::Empty, n = 1, bytes, n = 2);
                span.record("uid", "recorded later");
                let _g = span.enter();
                tracing::info!(parent: &other, level = "mine", target = 3, "explicit parent");
                tracing::info!(r#type = "raw", name = "span-like", "raw name");
            });
            log_fields(json_subscriber(to, is_stock), &texts);
        }
        let (stock, ours) = (text(&stock), text(&ours));
        assert_eq!(
            stock.lines().count(),
            3 + 2 * texts.len() + 2,
            "{stock:.3000}"
        );
        for line in stock.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        assert!(stock.contains(r#""nan":null"#), "{stock:.3000}");
        assert!(
            stock.contains(r#""span":{"type":"x","name":"other"},"spans":[]"#),
            "{stock:.3000}"
        );
        assert_eq!(ours, stock);
    }

    proptest::proptest! {
        #[test]
        fn plain_fields_agree_with_the_reference_on_any_text(
            texts in proptest::collection::vec(".{0,40}|[ -~]{0,40}", 1..8)
        ) {
            let (reference, ours) = same_fields(&texts);
            proptest::prop_assert_eq!(ours, reference);
        }

        #[test]
        fn json_lines_agree_with_tracing_subscribers_on_any_text(
            texts in proptest::collection::vec(".{0,40}|[ -~]{0,40}", 1..8)
        ) {
            let (stock, ours) = (Buffer::default(), Buffer::default());
            log_fields(json_subscriber(&stock, true), &texts);
            log_fields(json_subscriber(&ours, false), &texts);
            proptest::prop_assert_eq!(text(&ours), text(&stock));
        }
    }

    /// The same timestamps as tracing-subscriber's own: the date and time of day for known
    /// seconds, the fraction with six digits, and the whole with the default timer's length
    /// and its second.
    #[test]
    fn log_timestamps_are_rfc3339_utc_with_microseconds() {
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

        for (secs, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_796_565_287, "2026-12-06T13:54:47"),
            (4_102_444_800, "2100-01-01T00:00:00"),
        ] {
            assert_eq!(date_and_time(secs), text);
        }
        for (micros, text) in [(0, ".000000Z"), (7, ".000007Z"), (803_747, ".803747Z")] {
            let mut out = String::new();
            write_fraction(&mut out, micros).unwrap();
            assert_eq!(out, text);
        }
        // A second may tick between the two: try again then.
        for _ in 0..3 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            Clock.format_time(&mut Writer::new(&mut ours)).unwrap();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ours} against {theirs}");
            if ours[..19] == theirs[..19] {
                assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
                return;
            }
        }
        panic!("three seconds ticked during three pairs of timestamps");
    }

    /// The drop count is a metric of its own, 0 while nothing was dropped.
    #[test]
    fn dropped_lines_are_a_metric() {
        let m = crate::metrics::Metrics::new();
        m.register(dropped_lines_metric().unwrap()).unwrap();
        let text = m.encode();
        assert!(
            text.lines()
                .any(|l| l == "signet_log_lines_dropped_total 0"),
            "{text}"
        );
    }

    #[test]
    fn untrusted_text_is_escaped_and_cut() {
        assert_eq!(
            Untrusted("a\nb\u{202e}c\u{85}").to_string(),
            "a\\nb\\u{202e}c\\u{85}"
        );
        let long = "x".repeat(MAX_FIELD_CHARS + 10);
        let shown = Untrusted(&long).to_string();
        assert!(shown.ends_with("… (10 more characters)"), "{shown:.40}");
        assert_eq!(escape_controls("CN=a\r\nb"), "CN=a\\r\\nb");
        assert_eq!(escape_controls("plain"), "plain");
    }

    #[test]
    fn joined_lists_are_bounded_with_a_count() {
        let many: Vec<String> = (0..20_000).map(|i| format!("image {i} denied")).collect();
        let j = join_bounded(&many, "; ");
        assert!(j.chars().count() <= MAX_FIELD_CHARS + 20, "{}", j.len());
        assert!(j.starts_with("image 0 denied; image 1 denied"));
        assert!(j.ends_with(" more)"), "{}", &j[j.len() - 30..]);
        let shown = j.matches("denied").count();
        assert!(
            j.ends_with(&format!("({} more)", 20_000 - shown)),
            "{}",
            &j[j.len() - 30..]
        );
        assert_eq!(join_bounded(&["a".into(), "b".into()], "; "), "a; b");
        let huge = vec!["y".repeat(MAX_FIELD_CHARS * 2), "z".into()];
        let j = join_bounded(&huge, "; ");
        assert!(j.starts_with("yyy") && j.ends_with("…; (1 more)"));
    }
}
