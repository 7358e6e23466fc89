//! Where verifications run. `main` serves admission reviews on tokio's default multi-thread
//! runtime; what a cache miss costs (the registry exchanges, the signature checks on the blocking
//! pool, the renewals of cached entries) runs on the runtime [`verification`] builds, whose
//! threads run at a lower CPU priority. When a storm of new images keeps every core busy, the
//! kernel then favours a review's answer over someone else's verification, and an image whose
//! verdict is cached is seldom kept waiting behind images that have none.
//!
//! A leaf: must not import anything else of the crate.

use tokio::runtime::{Builder, Handle, Runtime};

/// How many nice steps below the serving threads the verification threads run. At 10 the
/// kernel gives a busy serving thread about nine times a busy verification thread's share of a
/// core: verification never stops, it yields, and with idle cores it runs at full speed.
/// Measured against 0, 5 and 19 with the benchmark's storm of 200 new images (bench/README.md).
pub const NICE_STEPS: i32 = 10;

/// A verification runtime, stopped when dropped without waiting for its tasks (it may be
/// dropped inside the serving runtime, where waiting would block a worker).
pub struct Verification(Option<Runtime>);

impl Verification {
    /// Where the engine starts its verifications.
    pub fn handle(&self) -> Option<Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for Verification {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The verification runtime: as many workers as cores, named `signet-verify`, each of them and
/// each of its blocking-pool threads [`NICE_STEPS`] below the thread that built it.
pub fn verification() -> std::io::Result<Verification> {
    let base = current_nice();
    let runtime = Builder::new_multi_thread()
        .thread_name("signet-verify")
        .on_thread_start(move || lower_priority(base))
        .enable_all()
        .build()?;
    Ok(Verification(Some(runtime)))
}

/// The nice value of the calling thread (0 where threads have none of their own).
fn current_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Lowers the calling thread's priority to `base` + [`NICE_STEPS`]. On Linux a thread has a
/// nice value of its own, and raising it needs no privilege. Elsewhere the value belongs to the
/// process, so the threads keep the process's priority. A failure is logged once and changes
/// nothing else: the runtime still runs, at the same priority as the serving one.
fn lower_priority(base: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(tid), base + NICE_STEPS) {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(%error, "verification threads keep the serving threads' priority");
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = base;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn verification_threads_run_below_the_thread_that_built_the_runtime() {
        let base = current_nice();
        // The kernel's lowest priority is 19.
        let lowered = (base + NICE_STEPS).min(19);
        let verification = verification().expect("runtime");
        let handle = verification.handle().expect("a runtime");
        let worker = handle.block_on(handle.spawn(async { current_nice() }));
        let blocking = handle.block_on(handle.spawn_blocking(current_nice));
        assert_eq!(worker.expect("worker"), lowered);
        assert_eq!(blocking.expect("blocking thread"), lowered);
        // The building thread itself is untouched.
        assert_eq!(current_nice(), base);
    }
}
