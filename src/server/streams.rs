//! An HTTP/2 connection's streams, run inside the connection's own task.
//!
//! hyper hands every HTTP/2 request to an executor. With tokio's, each stream is a task of its
//! own and each answer reaches the connection apart: one TLS record and one `writev` per
//! answer, even when a read brought several requests and their answers are ready together.
//! [`Streams`] is the executor instead: it queues the stream futures, and [`WithStreams`] polls
//! them in the connection's task, between polls of the connection, so that the answers that are
//! ready at one wake-up leave in few writes: the first [`FIRST_WRITE`] as soon as they are
//! ready, the rest together after them. A client keeping many streams open then gets its first
//! answers while the rest are worked on, and sends its next requests meanwhile: the two ends
//! work at the same time instead of in turns (all answers, then all requests). A stream that
//! panics is dropped alone (hyper then resets it), as a task of its own would be; the
//! connection and its other streams go on.
//!
//! The streams of one connection then share one worker at a time. A review's heavy work
//! (signature checks, policy loading) runs elsewhere already, so what runs here is the decode,
//! the cache lookup and the answer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use hyper_util::server::graceful::GracefulConnection;

/// How many times one poll goes round the connection and its streams while either makes
/// progress, before it yields to the other tasks of the worker.
const ROUNDS: usize = 8;

/// How many answers of a wake-up the connection writes before the streams go on with the rest
/// (which it writes together once they are done). Writing all of a read's answers at once
/// leaves the client idle until the last one; writing every few answers costs a system call
/// and a TLS record each.
const FIRST_WRITE: usize = 4;

/// The executor a connection gives hyper: stream futures wait here for [`WithStreams`].
#[derive(Clone, Default)]
pub struct Streams(Arc<Mutex<Vec<BoxFuture<'static, ()>>>>);

impl Streams {
    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        // A panic ends this stream only (its future is dropped), as it ends a task.
        let fut = AssertUnwindSafe(fut).catch_unwind().map(|_| ());
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(fut));
    }
}

/// A connection with the streams it started, polled in one task; ends with the connection.
pub struct WithStreams<C> {
    conn: Pin<Box<C>>,
    queued: Streams,
    running: FuturesUnordered<BoxFuture<'static, ()>>,
}

impl<C> WithStreams<C> {
    /// `conn`, whose builder was given `queued` as its executor.
    pub fn new(conn: C, queued: Streams) -> Self {
        WithStreams {
            conn: Box::pin(conn),
            queued,
            running: FuturesUnordered::new(),
        }
    }
}

impl<C: Future> Future for WithStreams<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        let mut until_write = FIRST_WRITE;
        for _ in 0..ROUNDS {
            // The connection reads requests (starting streams) and writes the answers queued
            // since its last poll, together.
            if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            let started = this.queued.take();
            let mut progress = !started.is_empty();
            this.running.extend(started);
            let mut answered = 0;
            while answered < until_write {
                match this.running.poll_next_unpin(cx) {
                    Poll::Ready(Some(())) => answered += 1,
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if answered > 0 {
                progress = true;
                // The first answers are on their way: the rest of this wake-up's go together.
                until_write = usize::MAX;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Still busy: the worker's other tasks first, then more of this.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A connection the server drives to its end and can tell to close gracefully.
pub trait Connection: Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;

    fn shut_down_gracefully(self: Pin<&mut Self>);
}

impl<C> Connection for C
where
    C: GracefulConnection,
    <C as GracefulConnection>::Error: std::fmt::Display,
{
    type Error = <C as GracefulConnection>::Error;

    fn shut_down_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<C> Connection for WithStreams<C>
where
    C: GracefulConnection,
    <C as GracefulConnection>::Error: std::fmt::Display,
{
    type Error = <C as GracefulConnection>::Error;

    fn shut_down_gracefully(mut self: Pin<&mut Self>) {
        self.conn.as_mut().graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hyper::rt::Executor as _;

    use super::*;

    /// A stand-in for hyper's connection: starts `n` streams on its first poll (the one at
    /// `panics` panics), then ends once the others have counted themselves done.
    struct Conn {
        streams: Streams,
        started: bool,
        n: usize,
        panics: usize,
        done: Arc<AtomicUsize>,
    }

    impl Future for Conn {
        type Output = Result<(), std::convert::Infallible>;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            if !self.started {
                self.started = true;
                for i in 0..self.n {
                    let done = self.done.clone();
                    let panics = i == self.panics;
                    self.streams.execute(async move {
                        tokio::task::yield_now().await;
                        assert!(!panics, "a stream that panics");
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            if self.done.load(Ordering::SeqCst) == self.n - 1 {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }
    }

    /// A stand-in that starts `n` streams which end at their first poll, and notes at each of
    /// its own polls how many have ended (what it could write then); ends when all have.
    struct Writes {
        streams: Streams,
        n: usize,
        done: Arc<AtomicUsize>,
        seen: Vec<usize>,
    }

    impl Future for Writes {
        type Output = Result<Vec<usize>, std::convert::Infallible>;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
            if self.seen.is_empty() {
                for _ in 0..self.n {
                    let done = self.done.clone();
                    self.streams.execute(async move {
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            let done = self.done.load(Ordering::SeqCst);
            self.seen.push(done);
            if done == self.n {
                Poll::Ready(Ok(std::mem::take(&mut self.seen)))
            } else {
                Poll::Pending
            }
        }
    }

    /// Of sixteen answers ready at once, the first [`FIRST_WRITE`] reach the connection before
    /// the others are worked on, and the other twelve together: not one write for all (the
    /// client would wait for the last) nor one each.
    #[tokio::test]
    async fn the_first_ready_answers_leave_before_the_rest() {
        let streams = Streams::default();
        let conn = Writes {
            streams: streams.clone(),
            n: 16,
            done: Arc::new(AtomicUsize::new(0)),
            seen: Vec::new(),
        };
        let Ok(Ok(seen)) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            WithStreams::new(conn, streams),
        )
        .await
        else {
            panic!("the connection did not end");
        };
        let batches: Vec<usize> = seen.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(seen.first(), Some(&0), "{seen:?}");
        assert_eq!(batches, vec![FIRST_WRITE, 16 - FIRST_WRITE], "{seen:?}");
    }

    /// Streams run in the connection's task to their end; one that panics is dropped alone,
    /// and the connection and the other streams go on.
    #[tokio::test]
    async fn streams_run_inside_the_connection_and_a_panic_ends_only_its_stream() {
        let streams = Streams::default();
        let done = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            streams: streams.clone(),
            started: false,
            n: 20,
            panics: 7,
            done: done.clone(),
        };
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            WithStreams::new(conn, streams),
        )
        .await;
        assert!(matches!(ended, Ok(Ok(()))), "the connection did not end");
        assert_eq!(done.load(Ordering::SeqCst), 19);
    }
}
