//! A future polled only after it has woken.
//!
//! A connection's task wakes for every request it serves. Beside the connection, it waits for
//! eviction, for shutdown and for its idle timer; polling those at every wake-up takes the
//! locks of their notifiers each time (about 900 instructions per cache hit). [`WhenWoken`]
//! gives them a waker of their own and polls them only when it has been called.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// `inner`, polled on its first poll and then only after its own waker was called.
pub struct WhenWoken<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Flag>,
}

/// The waker handed to the inner future: notes the wake, then wakes the task.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    pub fn new(inner: F) -> Self {
        WhenWoken {
            inner: Box::pin(inner),
            flag: Arc::new(Flag {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Registered before the flag is read: a wake after the read wakes this task again.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.flag.clone());
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls, keeps the last waker, and is ready once `ready` is set.
    #[derive(Default)]
    struct Probe {
        polls: AtomicUsize,
        waker: Mutex<Option<Waker>>,
        ready: AtomicBool,
    }

    struct Probed(Arc<Probe>);

    impl Future for Probed {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.polls.fetch_add(1, Ordering::SeqCst);
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.0.ready.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// The task's own waker: counts how often it is woken.
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_inner_future_is_polled_first_and_then_only_after_its_own_wake() {
        let probe = Arc::new(Probe::default());
        let task = Arc::new(Task(AtomicUsize::new(0)));
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = WhenWoken::new(Probed(probe.clone()));
        let polls = || probe.polls.load(Ordering::SeqCst);

        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls(), 1, "the first poll reaches the inner future");
        // The task wakes for other reasons (its connection): the inner future is left alone.
        for _ in 0..5 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert_eq!(polls(), 1);

        // The inner future's waker fires: the task is woken, and the next poll reaches it.
        probe.waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls(), 2);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        assert_eq!(polls(), 2);

        probe.ready.store(true, Ordering::SeqCst);
        probe.waker.lock().unwrap().take().unwrap().wake_by_ref();
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(polls(), 3);
    }

    /// Under tokio: a `Notify` and a timer behind the wrapper still end the wait when they
    /// fire.
    #[tokio::test(start_paused = true)]
    async fn a_notify_and_a_timer_still_end_the_wait() {
        let evict = Arc::new(tokio::sync::Notify::new());
        let wait = |evict: Arc<tokio::sync::Notify>| {
            WhenWoken::new(async move {
                tokio::select! {
                    _ = evict.notified() => "evicted",
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => "timer",
                }
            })
        };
        let notifier = evict.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            notifier.notify_one();
        });
        assert_eq!(wait(evict.clone()).await, "evicted");
        assert_eq!(wait(evict).await, "timer");
    }
}
