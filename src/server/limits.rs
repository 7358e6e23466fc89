//! What one signet process will hold at once: connections, in-flight reviews, buffered body
//! bytes, concurrent decodes, HTTP/2 streams, and how long a peer may take or stay idle.
//!
//! The webhook runs with a memory limit and, usually, `failurePolicy: Fail`: an OOM kill or
//! exhausted file descriptors block pod creation in the whole cluster. So every resource a
//! peer can make the server hold is bounded here, and the bounds are chosen so that the
//! worst case fits the memory limit (see [`ServeLimits::default`]).
//!
//! [`Connections`] is the table of open webhook connections. At the cap, a new connection
//! evicts the connection that has been idle longest (no request in flight: it can only be
//! waiting, so closing it loses nothing), so idlers can never lock the API server out; only
//! when every connection has a request in flight is the new one closed at once.
//!
//! Like `server`: must not import `verify`, `registry` or `decision` internals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The resource limits of `signet serve`, validated by [`ServeLimits::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Open webhook connections (TLS handshakes included).
    pub max_connections: usize,
    /// Requests on `/validate` being read, decoded or decided at once. Beyond it a request
    /// waits for a place until its read deadline, then gets 503 with `Retry-After` before its
    /// body is read.
    pub max_inflight_reviews: usize,
    /// Largest request body (413 beyond it).
    pub max_body_bytes: usize,
    /// Request body bytes buffered at once, over all requests. A body that does not fit what
    /// is left waits until its read deadline, then gets 503 with `Retry-After`.
    pub body_budget_bytes: usize,
    /// Bodies decoded at once on the blocking pool (decoding can cost many times the body).
    pub max_concurrent_decodes: usize,
    /// Bodies up to this size are decoded on the async worker, where they never wait for a
    /// decode slot behind large bodies (a normal review is a few KiB).
    pub inline_decode_max_bytes: usize,
    /// Time to receive a request's body, from the end of its headers.
    pub request_read_timeout: Duration,
    /// Time to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed. For HTTP/1.1 it is
    /// also the time allowed to send a request's headers.
    pub idle_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval; the connection is closed if a ping is not answered
    /// within [`ServeLimits::h2_keep_alive_timeout`].
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
    /// Largest request head: the HTTP/2 decoded header list, and the HTTP/1.1 read buffer.
    pub max_header_bytes: u32,
    /// HTTP/2 flow-control windows: how much a peer may send before signet reads it.
    pub h2_stream_window_bytes: u32,
    pub h2_connection_window_bytes: u32,
}

/// The largest AdmissionReview body accepted by default. An object of the API server's 3 MiB
/// limit can come with its old version, so allow for both.
pub const DEFAULT_MAX_BODY_BYTES: usize = 7 << 20;

impl Default for ServeLimits {
    /// Sized for a 512 MiB memory limit. Worst case memory held for requests: the body
    /// budget (64 MiB) plus what the concurrent decodes build (2 decodes of a 7 MiB
    /// pathological body, about 120 MiB each), plus per-connection buffers (an HTTP/2
    /// connection window of 256 KiB, an HTTP/1 read buffer of 64 KiB) over the connections
    /// that are sending. A webhook normally sees bodies of a few KiB, so the budget holds
    /// thousands at once.
    fn default() -> Self {
        ServeLimits {
            max_connections: 1024,
            // A 500-replica rollout sends 500 reviews at once; past the decode a review holds
            // little (its images, not its object), so this bounds work rather than memory.
            max_inflight_reviews: 512,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_budget_bytes: 64 << 20,
            max_concurrent_decodes: 2,
            inline_decode_max_bytes: 64 << 10,
            request_read_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            // The API server sends one review per stream; in a burst beyond the cap its
            // HTTP/2 client (Go's, which does not treat the limit as strict) opens another
            // connection. 32 keeps one connection a small share of the in-flight cap.
            h2_max_concurrent_streams: 32,
            h2_keep_alive_interval: Duration::from_secs(20),
            h2_keep_alive_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
            // Data a peer sends to a stream that waits for a place is not yet counted in the
            // body budget: the connection window bounds it (256 KiB a connection), and the
            // smaller stream window keeps one waiting stream from using all of it and stalling
            // the connection's other reviews.
            h2_stream_window_bytes: 64 << 10,
            h2_connection_window_bytes: 256 << 10,
        }
    }
}

/// Serving limits that do not make sense together; each names the flag to change.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A count or timeout flag is zero.
    #[error("{flag} must be positive")]
    NotPositive { flag: &'static str },
    /// The largest body could never get a permit from the body budget.
    #[error(
        "--max-body-bytes ({max_body}) exceeds --body-budget-bytes ({budget}): a body of the \
         largest size could never be read"
    )]
    BodyOverBudget { max_body: usize, budget: usize },
    /// Body-budget permits are requested as `u32`.
    #[error("--body-budget-bytes must be below {} (4 GiB)", u32::MAX)]
    BudgetTooLarge,
    /// A new connection could find every connection busy and nothing to evict.
    #[error(
        "--max-connections ({connections}) must exceed --max-inflight-reviews ({inflight}), so \
         that a new connection can always replace an idle one"
    )]
    ConnectionsNotAboveInflight { connections: usize, inflight: usize },
    /// An HTTP/2 flow-control window below the protocol's initial window.
    #[error("HTTP/2 windows must be at least 65535 bytes")]
    H2WindowTooSmall,
}

impl ServeLimits {
    /// Checks the limits make sense together; the error names the flag to change.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let positive = [
            ("--max-connections", self.max_connections),
            ("--max-inflight-reviews", self.max_inflight_reviews),
            ("--max-body-bytes", self.max_body_bytes),
            ("--body-budget-bytes", self.body_budget_bytes),
            ("--max-concurrent-decodes", self.max_concurrent_decodes),
            (
                "--h2-max-concurrent-streams",
                self.h2_max_concurrent_streams as usize,
            ),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(LimitsError::NotPositive { flag });
            }
        }
        let timeouts = [
            ("--request-read-timeout-ms", self.request_read_timeout),
            ("--tls-handshake-timeout-ms", self.tls_handshake_timeout),
            ("--idle-timeout-secs", self.idle_timeout),
            ("--h2-keep-alive-interval-secs", self.h2_keep_alive_interval),
            ("--h2-keep-alive-timeout-secs", self.h2_keep_alive_timeout),
        ];
        for (flag, value) in timeouts {
            if value.is_zero() {
                return Err(LimitsError::NotPositive { flag });
            }
        }
        if self.max_body_bytes > self.body_budget_bytes {
            return Err(LimitsError::BodyOverBudget {
                max_body: self.max_body_bytes,
                budget: self.body_budget_bytes,
            });
        }
        // Semaphore permits are requested as u32.
        if u32::try_from(self.body_budget_bytes).is_err() {
            return Err(LimitsError::BudgetTooLarge);
        }
        // Only a connection with a request in flight cannot be evicted for a new one, so with
        // more connections than in-flight reviews a new connection always gets in.
        if self.max_connections <= self.max_inflight_reviews {
            return Err(LimitsError::ConnectionsNotAboveInflight {
                connections: self.max_connections,
                inflight: self.max_inflight_reviews,
            });
        }
        if self.h2_stream_window_bytes < 65_535 || self.h2_connection_window_bytes < 65_535 {
            return Err(LimitsError::H2WindowTooSmall);
        }
        Ok(())
    }
}

/// Raises the soft open-file limit to the hard limit where the platform allows, and returns
/// the limit in force (`None` where there is no such limit).
pub fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// One open connection, as the table sees it.
#[derive(Debug)]
pub struct ConnState {
    /// Requests in flight on this connection.
    active: AtomicUsize,
    /// When the connection last became idle, in nanoseconds since the table's epoch.
    idle_since: AtomicU64,
    /// Told when the connection must close (evicted for a newer one).
    pub evict: Notify,
}

impl ConnState {
    /// Idle since, or `None` while a request is in flight.
    fn idle_since(&self, epoch: Instant) -> Option<Instant> {
        (self.active.load(Ordering::Acquire) == 0)
            .then(|| epoch + Duration::from_nanos(self.idle_since.load(Ordering::Acquire)))
    }
}

/// The table of open webhook connections.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    epoch: Instant,
    table: Mutex<Table>,
    /// Told when the table becomes empty.
    pub empty: Notify,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<ConnState>>,
}

/// Outcome of [`Connections::admit`].
pub enum Admission {
    /// Admitted.
    Admitted(ConnSlot),
    /// Admitted after evicting the longest-idle connection.
    AdmittedByEvicting(ConnSlot),
    /// Every connection has a request in flight.
    Refused,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Connections {
            max,
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
            empty: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a slot for a new connection; at the cap, evicts the longest-idle one.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut table = self.lock();
        let mut evicted = false;
        if table.open.len() >= self.max {
            let oldest_idle = table
                .open
                .iter()
                .filter_map(|(id, c)| c.idle_since(self.epoch).map(|t| (t, *id)))
                .min();
            let Some((_, id)) = oldest_idle else {
                return Admission::Refused;
            };
            // Out of the table at once, so it is not chosen twice and its slot is free; the
            // connection closes as soon as its task sees the notice.
            if let Some(c) = table.open.remove(&id) {
                c.evict.notify_one();
            }
            evicted = true;
        }
        let id = table.next_id;
        table.next_id += 1;
        let state = Arc::new(ConnState {
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ns()),
            evict: Notify::new(),
        });
        table.open.insert(id, state.clone());
        let slot = ConnSlot {
            id,
            state,
            table: self.clone(),
        };
        if evicted {
            Admission::AdmittedByEvicting(slot)
        } else {
            Admission::Admitted(slot)
        }
    }
}

/// A connection's place in the table; leaves it when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    id: u64,
    pub state: Arc<ConnState>,
    table: Arc<Connections>,
}

impl ConnSlot {
    /// Marks a request in flight until the returned guard is dropped.
    pub fn request(&self) -> RequestGuard {
        self.state.active.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            state: self.state.clone(),
            table: self.table.clone(),
        }
    }

    /// When the connection stops being idle too long to keep: `None` while a request is in
    /// flight.
    pub fn idle_deadline(&self, idle_timeout: Duration) -> Option<Instant> {
        self.state
            .idle_since(self.table.epoch)
            .map(|t| t + idle_timeout)
    }

    /// Requests in flight on this connection.
    pub fn active(&self) -> usize {
        self.state.active.load(Ordering::Acquire)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        table.open.remove(&self.id);
        if table.open.is_empty() {
            self.table.empty.notify_waiters();
        }
    }
}

/// A request in flight on a connection.
pub struct RequestGuard {
    state: Arc<ConnState>,
    table: Arc<Connections>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Idle-since first, so that a reader who sees no request in flight sees the fresh time.
        self.state
            .idle_since
            .store(self.table.now_ns(), Ordering::Release);
        self.state.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits that conflict are named with their values, in the words `--help` users see.
    #[test]
    fn conflicting_limits_are_typed_and_name_both_flags() {
        let l = ServeLimits {
            max_body_bytes: 10,
            body_budget_bytes: 5,
            ..ServeLimits::default()
        };
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "--max-body-bytes (10) exceeds --body-budget-bytes (5): a body of the largest size \
             could never be read"
        );
        let mut l = ServeLimits::default();
        l.max_connections = l.max_inflight_reviews;
        let e = l.validate().unwrap_err();
        assert!(
            matches!(e, LimitsError::ConnectionsNotAboveInflight { .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "--max-connections ({n}) must exceed --max-inflight-reviews ({n}), so that a new \
                 connection can always replace an idle one",
                n = l.max_inflight_reviews
            )
        );
        let l = ServeLimits {
            h2_stream_window_bytes: 1,
            ..ServeLimits::default()
        };
        assert_eq!(l.validate(), Err(LimitsError::H2WindowTooSmall));
        assert_eq!(
            LimitsError::BudgetTooLarge.to_string(),
            "--body-budget-bytes must be below 4294967295 (4 GiB)"
        );
    }

    #[test]
    fn defaults_are_valid() {
        ServeLimits::default().validate().unwrap();
    }

    #[test]
    fn invalid_combinations_name_the_flag() {
        type Change = fn(&mut ServeLimits);
        let cases: [(Change, &str); 5] = [
            (|l| l.max_connections = 0, "--max-connections"),
            (
                |l| l.request_read_timeout = Duration::ZERO,
                "--request-read-timeout-ms",
            ),
            (|l| l.body_budget_bytes = 1 << 20, "--body-budget-bytes"),
            (|l| l.max_connections = 512, "--max-inflight-reviews"),
            (
                |l| l.h2_max_concurrent_streams = 0,
                "--h2-max-concurrent-streams",
            ),
        ];
        for (change, flag) in cases {
            let mut l = ServeLimits::default();
            change(&mut l);
            let e = l.validate().unwrap_err();
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
        use rlimit::Resource;
        let (_, hard) = Resource::NOFILE.get().unwrap();
        // Just below the hard limit, so that tests running alongside keep their descriptors.
        Resource::NOFILE.set(hard - 1, hard).unwrap();
        assert_eq!(raise_file_limit(), Some(hard));
        assert_eq!(Resource::NOFILE.get().unwrap(), (hard, hard));
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_is_evicted() {
        let table = Connections::new(2);
        let Admission::Admitted(a) = table.admit() else {
            panic!("first is admitted")
        };
        std::thread::sleep(Duration::from_millis(2));
        let Admission::Admitted(b) = table.admit() else {
            panic!("second is admitted")
        };
        let _busy = b.request();
        // a is idle and oldest: evicted and told so.
        let Admission::AdmittedByEvicting(c) = table.admit() else {
            panic!("third evicts")
        };
        assert_eq!(table.len(), 2);
        {
            let notified = a.state.evict.notified();
            tokio::pin!(notified);
            assert!(
                futures_util::FutureExt::now_or_never(notified.as_mut()).is_some(),
                "a was told to close"
            );
        }
        // b busy, c idle: c goes next.
        let Admission::AdmittedByEvicting(d) = table.admit() else {
            panic!("fourth evicts c")
        };
        drop(a);
        drop(c);
        assert_eq!(table.len(), 2, "dropping evicted slots frees nothing twice");
        let _busy_d = d.request();
        assert!(matches!(table.admit(), Admission::Refused), "all busy");
        drop(_busy);
        assert!(
            matches!(table.admit(), Admission::AdmittedByEvicting(_)),
            "b is idle again"
        );
    }
}
