//! `serve`'s log writer: a logging call appends its formatted line to a bounded buffer and
//! returns; a thread of its own writes whatever has gathered every [`FLUSH_EVERY`]. A line
//! neither waits for stderr nor wakes a thread (a channel per line would: a futex wake, and on
//! a busy node a context switch, per line), and a stalled stderr (a full pipe nobody reads)
//! costs dropped lines, counted, never a review's time.
//!
//! A leaf of `telemetry`: must not import anything else of the crate.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often the writer thread wakes to write what has gathered: the most a line waits.
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// How long dropping the [`Guard`] waits for the last lines to be written (a stalled stderr
/// must not hold up the process's exit).
const LAST_WRITE_WAIT: Duration = Duration::from_secs(1);

/// The capacity kept for the next batch between writes: a burst's buffer is not held forever.
const KEPT_CAPACITY: usize = 256 << 10;

struct Shared {
    queue: Mutex<Vec<u8>>,
    /// The most bytes the queue holds; a line that does not fit is dropped.
    limit: usize,
    dropped: AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves bytes, never a broken invariant.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the subscriber writes: cheap to clone, one line per `write`.
#[derive(Clone)]
pub struct Lines(Arc<Shared>);

impl Lines {
    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(&self.0)
    }
}

/// One event's writer. The formatter hands it the whole line in one `write_all`, so a line is
/// queued whole or dropped whole.
pub struct Line<'a>(&'a Shared);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut queue = self.0.queue();
        if queue.len() + buf.len() <= self.0.limit {
            queue.extend_from_slice(buf);
        } else {
            drop(queue);
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops the writer thread when dropped, after it has written what was queued (waiting at most
/// [`LAST_WRITE_WAIT`]).
pub struct Guard {
    shared: Arc<Shared>,
    done: Option<mpsc::Receiver<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_one();
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(LAST_WRITE_WAIT);
        }
    }
}

/// Starts the writer thread over `out`, holding at most `limit` bytes of lines; the error is
/// the system's refusal of a thread.
pub fn start<W: Write + Send + 'static>(out: W, limit: usize) -> std::io::Result<(Lines, Guard)> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Vec::with_capacity(KEPT_CAPACITY)),
        limit,
        dropped: AtomicU64::new(0),
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    let (done_tx, done_rx) = mpsc::channel();
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("signet-log".into())
            .spawn(move || {
                write_until_stopped(&shared, out);
                let _ = done_tx.send(());
            })?;
    }
    let guard = Guard {
        shared: shared.clone(),
        done: Some(done_rx),
    };
    Ok((Lines(shared), guard))
}

fn write_until_stopped(shared: &Shared, mut out: impl Write) {
    let mut batch: Vec<u8> = Vec::with_capacity(KEPT_CAPACITY);
    loop {
        let stopping = {
            let stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
            let (stop, _) = shared
                .wake
                .wait_timeout_while(stop, FLUSH_EVERY, |stop| !*stop)
                .unwrap_or_else(PoisonError::into_inner);
            *stop
        };
        std::mem::swap(&mut *shared.queue(), &mut batch);
        if !batch.is_empty() {
            // Nowhere to report a failed write to but the log itself.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            batch.shrink_to(KEPT_CAPACITY);
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// An output that records what reaches it, and how many writes it took.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut r = self.0.lock().unwrap();
            r.0.extend_from_slice(buf);
            r.1 += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An output that blocks until told to go on: a full pipe nobody reads.
    struct Stalled(Arc<(Mutex<bool>, std::sync::Condvar)>);

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, go) = &*self.0;
            let mut g = lock.lock().unwrap();
            while !*g {
                g = go.wait(g).unwrap();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Waits until the writer thread has taken the queue (it then writes it, or is stuck).
    fn taken(lines: &Lines) {
        while !lines.0.queue().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn line(lines: &Lines, text: &str) {
        lines.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_arrive_whole_in_order_and_in_few_writes() {
        let out = Recorded::default();
        let (lines, guard) = start(out.clone(), 1 << 20).unwrap();
        for i in 0..1000 {
            line(&lines, &format!("line {i}\n"));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().0.len() < 8890 && Instant::now() < deadline {
            std::thread::sleep(FLUSH_EVERY);
        }
        let (text, writes) = out.0.lock().unwrap().clone();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(text).unwrap(), expected);
        assert!(writes < 100, "{writes} writes for 1000 lines");
        assert_eq!(lines.dropped(), 0);
        drop(guard);
    }

    #[test]
    fn dropping_the_guard_writes_what_is_queued() {
        let out = Recorded::default();
        let (lines, guard) = start(out.clone(), 1 << 20).unwrap();
        line(&lines, "last words\n");
        drop(guard);
        assert_eq!(out.0.lock().unwrap().0, b"last words\n");
    }

    #[test]
    fn a_stalled_output_drops_and_counts_lines_and_never_blocks_the_caller() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (lines, guard) = start(Stalled(gate.clone()), 100).unwrap();
        // The first batch gets stuck in the stalled write; then the queue fills.
        line(&lines, "first\n");
        taken(&lines);
        let started = Instant::now();
        for _ in 0..50 {
            line(&lines, "0123456789\n");
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        // 100 bytes hold 9 lines of 11; the other 41 are dropped.
        assert_eq!(lines.dropped(), 41);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(guard);
    }

    #[test]
    fn a_stalled_output_holds_up_the_guard_at_most_a_second() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (lines, guard) = start(Stalled(gate.clone()), 1 << 20).unwrap();
        line(&lines, "stuck\n");
        taken(&lines);
        let started = Instant::now();
        drop(guard);
        let waited = started.elapsed();
        assert!(
            waited >= LAST_WRITE_WAIT && waited < LAST_WRITE_WAIT * 3,
            "{waited:?}"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }
}
