//! How reviews are sent: closed loops (one review in flight per connection), the open loop
//! (reviews due at a fixed rate), all at once, and a fixed list in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use crate::client::{Conn, Target, Work, connect_all, send_one};
use crate::report::{Stats, histogram};

/// Closed loop: `concurrency` connections, each with one review in flight, for `duration`.
pub async fn closed_loop(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let conns = connect_all(target, concurrency).await?;
    closed_loop_on(target, work, conns, duration).await
}

/// Closed loop over connections already made (or HTTP/2 stream slots): one worker each, one
/// review in flight per worker, for `duration`.
pub async fn closed_loop_on(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    conns: Vec<Conn>,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let concurrency = conns.len();
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut send)| {
            let target = target.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                let mut k = i;
                while Instant::now() < end {
                    let w = &work[k % work.len()];
                    k += concurrency;
                    send_one(&target, &mut send, w, Instant::now(), &mut stats).await;
                }
                stats
            })
        })
        .collect();
    gather(tasks, start).await
}

/// Open loop: reviews due at `rate` per second for `duration`, served by `connections`
/// connections; latency counts from when each review was due (no coordinated omission).
///
/// The reviews are handed out by [`pace`], an OS thread of its own, through one queue that
/// any idle connection takes the next review from.
pub async fn open_loop(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let conns = connect_all(target, connections).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    // One receiver shared by every connection: whichever holds the lock waits for the next
    // review, the others queue behind it (a multi-consumer queue out of tokio's parts).
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut send| {
            let target = target.clone();
            let work = work.clone();
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((k, due)) = next else { break };
                    send_one(&target, &mut send, &work[k % work.len()], due, &mut stats).await;
                }
                stats
            })
        })
        .collect();
    let total_n = (rate * duration.as_secs_f64()) as usize;
    let (started, start) = tokio::sync::oneshot::channel();
    let pacer = std::thread::Builder::new()
        .name("open-loop-pacer".into())
        .spawn(move || {
            sharpen_pacer();
            let start = Instant::now();
            let _ = started.send(start);
            pace(&tx, start, rate, total_n);
        })?;
    let start = start.await?;
    let total = gather(tasks, start).await;
    // Done: it dropped the sender, which is what ended the tasks.
    let _ = pacer.join();
    total
}

/// The open loop's pacer: sends review `k` with its due time `start + k / rate` as soon as
/// that time has come, for `k < total`, then drops the sender.
///
/// It sleeps (never spins: the machine's cores belong to the server under test) until the
/// next review is due, with `std::thread::sleep`, a `nanosleep` on Linux; made sharp by
/// [`sharpen_pacer`], it hands reviews out some 30 µs late (p50; p99 0.1–0.2 ms at 10,000/s
/// with both cores of the 2-core VM of bench/README.md busy). tokio's timer, at 1 ms
/// resolution, sent reviews in 1 ms batches, which the server's latency then counted. It
/// says how late it was.
fn pace(tx: &UnboundedSender<(usize, Instant)>, start: Instant, rate: f64, total: usize) {
    let due = |k: usize| start + Duration::from_secs_f64(k as f64 / rate);
    let mut sent = 0usize;
    // How late each review was handed out (the generator's own share of the latencies).
    let mut late = histogram();
    while sent < total {
        // Reviews 0..=elapsed × rate are due.
        let due_now = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
        while sent < due_now {
            late.saturating_record(due(sent).elapsed().as_nanos() as u64);
            if tx.send((sent, due(sent))).is_err() {
                return; // every connection is gone
            }
            sent += 1;
        }
        if sent == total {
            break;
        }
        if let Some(wait) = due(sent).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let ms = |q: f64| late.value_at_quantile(q) as f64 / 1e6;
    eprintln!(
        "open loop {rate:.0}/s: the pacer handed reviews out late by p50 {:.3} / p99 {:.3} / max {:.3} ms",
        ms(0.5),
        ms(0.99),
        late.max() as f64 / 1e6
    );
}

/// Makes the calling thread (the pacer) wake on time: its timer slack down to 1 µs from
/// Linux's default 50 µs, by writing `/proc/TID/timerslack_ns`, which a thread may do for
/// itself (this crate allows no `unsafe`, hence no `prctl`). Says so once when it cannot:
/// reviews then leave up to 50 µs late, and late counts against the server.
///
/// The pacer keeps the normal priority. At `SCHED_FIFO` it was late by 0.05 ms at p99
/// instead of 0.1–0.2 ms, but each of its wake-ups preempted the server under test on the
/// shared cores: signet's p99 at 10,000/s went from 0.8 to 3–7 ms, and at 80 % of its
/// closed-loop rate it kept 26,800 of 32,600 reviews/s instead of 31,900.
fn sharpen_pacer() {
    static SAID: std::sync::Once = std::sync::Once::new();
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if std::fs::write(format!("/proc/{tid}/timerslack_ns"), "1000").is_err() {
        SAID.call_once(|| {
            eprintln!("open loop: the pacer keeps the default 50 µs timer slack (reviews may leave up to 50 µs late)");
        });
    }
}

/// Sends every review of `reviews` at once, each on a connection of its own (made first),
/// released together; returns their stats.
pub async fn all_at_once(target: &Arc<Target>, reviews: Vec<Work>) -> anyhow::Result<Stats> {
    let armed = arm(target, reviews).await?;
    let start = Instant::now();
    armed.release().await;
    armed.finish(start).await
}

/// Reviews waiting on connections of their own, to be sent together: [`Armed::release`].
pub struct Armed {
    barrier: Arc<tokio::sync::Barrier>,
    tasks: Vec<JoinHandle<Stats>>,
}

/// Makes a connection for each of `reviews` and has each wait there for the release.
pub async fn arm(target: &Arc<Target>, reviews: Vec<Work>) -> anyhow::Result<Armed> {
    let conns = connect_all(target, reviews.len()).await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(reviews.len() + 1));
    let tasks = conns
        .into_iter()
        .zip(reviews)
        .map(|(mut send, w)| {
            let (target, barrier) = (target.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                barrier.wait().await;
                send_one(&target, &mut send, &w, Instant::now(), &mut stats).await;
                stats
            })
        })
        .collect();
    Ok(Armed { barrier, tasks })
}

impl Armed {
    /// Sends every armed review at once.
    pub async fn release(&self) {
        self.barrier.wait().await;
    }

    /// Their stats once every one is answered, timed from `start`.
    pub async fn finish(self, start: Instant) -> anyhow::Result<Stats> {
        gather(self.tasks, start).await
    }
}

/// The stats of every task, merged, with the time since `start`.
pub async fn gather(tasks: Vec<JoinHandle<Stats>>, start: Instant) -> anyhow::Result<Stats> {
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Sends `work` in order over `conc` connections, one review in flight on each.
pub async fn drive(target: &Arc<Target>, work: Vec<Work>, conc: usize) -> anyhow::Result<Stats> {
    let work = Arc::new(work);
    let conns = connect_all(target, conc).await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut send| {
            let (target, work, next) = (target.clone(), work.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::empty();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(w) = work.get(k) else { break };
                    send_one(&target, &mut send, w, Instant::now(), &mut stats).await;
                }
                stats
            })
        })
        .collect();
    gather(tasks, start).await
}

/// `conns` connections to `target`, each shared by `streams` workers when it speaks HTTP/2
/// (one review in flight per worker: `conns × streams` at once).
pub async fn slots(
    target: &Arc<Target>,
    conns: usize,
    streams: usize,
) -> anyhow::Result<Vec<Conn>> {
    let mut out = Vec::with_capacity(conns * streams);
    for conn in connect_all(target, conns).await? {
        match conn {
            Conn::H2(send) => out.extend((0..streams).map(|_| Conn::H2(send.clone()))),
            h1 => out.push(h1),
        }
    }
    Ok(out)
}
