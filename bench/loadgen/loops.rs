//! How reviews are sent: closed loops (one review in flight per connection), the open loop
//! (reviews due at a fixed rate), all at once, and a fixed list in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
/// connections; latency counts from when each review was due.
pub async fn open_loop(
    target: &Arc<Target>,
    work: &Arc<Vec<Work>>,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let conns = connect_all(target, connections).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
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
    let mut sent = 0usize;
    while sent < total_n {
        let due_now = ((start.elapsed().as_secs_f64() * rate) as usize).min(total_n);
        while sent < due_now {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            tx.send((sent, due)).ok();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    drop(tx);
    let mut total = Stats::empty();
    for t in tasks {
        total.merge(&t.await?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
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
