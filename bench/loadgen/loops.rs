//! How reviews are sent: closed loops (one review in flight per connection), the open loop
//! (reviews due at a fixed rate), all at once, and a fixed list in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::client::{Conn, Target, Work, connect_all, send_one};
use crate::report::Stats;

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
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
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
    let start = Instant::now();
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
    let pacer = std::thread::Builder::new()
        .name("open-loop-pacer".into())
        .spawn(move || pace(&tx, start, rate, total_n))?;
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    // Done: it dropped the sender, which is what ended the tasks.
    let _ = pacer.join();
    Ok(total)
}

/// The open loop's pacer: sends review `k` with its due time `start + k / rate` as soon as
/// that time has come, for `k < total`, then drops the sender.
///
/// It sleeps (never spins: the machine's cores belong to the server under test) until the
/// next review is due, with `std::thread::sleep`, a `nanosleep` on Linux, precise to some
/// 10 µs once the thread's timer slack is down from its default 50 µs. tokio's timer, at
/// 1 ms resolution, sent reviews in 1 ms batches, which the server's latency then counted.
fn pace(tx: &UnboundedSender<(usize, Instant)>, start: Instant, rate: f64, total: usize) {
    fine_timer_slack();
    let due = |k: usize| start + Duration::from_secs_f64(k as f64 / rate);
    let mut sent = 0usize;
    while sent < total {
        // Reviews 0..=elapsed × rate are due.
        let due_now = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
        while sent < due_now {
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
}

/// Lowers the calling thread's timer slack to 1 µs (Linux's default, 50 µs, lets a sleep
/// end up to that much late), by writing `/proc/TID/timerslack_ns`, which a thread may do
/// for itself (this crate allows no `unsafe`, so no `prctl`). Without it, the pacer's
/// reviews leave up to 50 µs late.
fn fine_timer_slack() {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()));
    let set =
        tid.is_some_and(|tid| std::fs::write(format!("/proc/{tid}/timerslack_ns"), "1000").is_ok());
    if !set {
        eprintln!(
            "open loop: the pacer's timer slack stays at the default (reviews up to 50 µs late)"
        );
    }
}

/// Sends every review of `reviews` at once, each on a connection of its own (made first),
/// released together; returns their stats.
pub async fn all_at_once(target: &Arc<Target>, reviews: Vec<Work>) -> anyhow::Result<Stats> {
    let n = reviews.len();
    let conns = connect_all(target, n).await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let start = Instant::now();
    let tasks: Vec<_> = conns
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
    let mut stats = Stats::empty();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
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
    let mut stats = Stats::empty();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
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
