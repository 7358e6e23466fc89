//! The processes under test: `signet serve` (the release binary) and the echo server (this
//! binary's `echo-server`), with their CPU time and RSS from /proc, and the CPUs the servers
//! run on when `--split-cpus` sets them apart from the clients.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::client::Target;
use crate::report::Stats;

/// Which CPUs the servers under test and the clients run on, once `--split-cpus` set them
/// apart (`taskset -c` lists).
pub struct Split {
    pub servers: String,
    pub clients: String,
}

static SPLIT: OnceLock<Split> = OnceLock::new();

/// The CPU split, if `--split-cpus` made one.
pub fn split() -> Option<&'static Split> {
    SPLIT.get()
}

/// Gives the servers under test the first half of the CPUs this process may use, and this
/// thread (so every thread and process started after it) the rest. Called before the runtime
/// starts its threads.
pub fn split_cpus() -> anyhow::Result<()> {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let allowed = sched_getaffinity(None)?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    anyhow::ensure!(
        cpus.len() >= 2,
        "--split-cpus needs two CPUs or more; this process may use {}",
        cpus.len()
    );
    let (servers, clients) = cpus.split_at(cpus.len() / 2);
    let mut set = CpuSet::new();
    for &c in clients {
        set.set(c);
    }
    sched_setaffinity(None, &set)?;
    let list = |cs: &[usize]| {
        cs.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    SPLIT.get_or_init(|| Split {
        servers: list(servers),
        clients: list(clients),
    });
    Ok(())
}

/// A server under test (signet, the echo server, nginx): `program`, on the servers' CPUs when
/// they are split off.
pub fn server_command(program: impl AsRef<OsStr>) -> Command {
    match split() {
        Some(split) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(&split.servers).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    /// SIGTERM first (signet drains and exits; under valgrind, callgrind writes its profile on
    /// exit), SIGKILL after 60 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// CPU time (user + system) the process has used so far, in seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs_of(self.child.id())
    }

    /// CPU time of the process and of its children still running, in seconds: nginx's master
    /// with its worker, which serves every request.
    pub fn cpu_secs_with_children(&self) -> f64 {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let of_children: f64 = children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .map(cpu_secs_of)
            .sum();
        cpu_secs_of(pid) + of_children
    }

    /// VmRSS of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// VmHWM (the peak RSS) of the process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    pub fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

/// CPU time (user + system) process `pid` has used so far, in seconds; 0 once it is gone.
fn cpu_secs_of(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    ticks / clock_ticks()
}

/// `getconf CLK_TCK` (the unit of /proc/PID/stat times), 100 when unknown.
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Runs `f` and returns its result with the CPU microseconds `proc` spent per successful
/// review meanwhile.
pub async fn with_cpu<F: std::future::Future<Output = anyhow::Result<Stats>>>(
    proc: &Proc,
    f: F,
) -> anyhow::Result<(Stats, f64)> {
    let before = proc.cpu_secs();
    let stats = f.await?;
    let used = proc.cpu_secs() - before;
    let per = used * 1e6 / (stats.ok.max(1) as f64);
    Ok((stats, per))
}

pub struct SignetProc {
    pub proc: Proc,
    pub webhook: SocketAddr,
    pub admin: String,
    pub ca_pem: String,
    pub http: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

impl SignetProc {
    /// `signet serve` with these policies, reaching `insecure` registries over plain HTTP.
    pub async fn start(
        bin: &Path,
        policies: &str,
        insecure: &[String],
        rust_log: Option<&str>,
        prefix: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<SignetProc> {
        let dir = tempfile::Builder::new().prefix("signet-bench-").tempdir()?;
        let policy_dir = dir.path().join("policies");
        std::fs::create_dir(&policy_dir)?;
        std::fs::write(policy_dir.join("policies.yaml"), policies)?;
        // A certificate of our own, in files, so that nginx (scenario n) serves the same one.
        let (pair, ca_pem) = signet::server::tls::self_signed(&[]).map_err(anyhow::Error::msg)?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pair.cert)?;
        std::fs::write(&key, &pair.key)?;
        let (port, admin_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("signet.log"))?;
        let mut words: Vec<&str> = prefix
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        let mut cmd = match words.first() {
            Some(first) => {
                let mut c = server_command(first);
                c.args(words.drain(1..)).arg(bin);
                c
            }
            None => server_command(bin),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--policies")
            .arg(&policy_dir)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for host in insecure {
            cmd.arg("--insecure-registry").arg(host);
        }
        cmd.args(extra);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start {} (build it: bench/run.sh)", bin.display()))?;
        let proc = Proc { child };
        let admin = format!("http://127.0.0.1:{admin_port}");
        let http = reqwest::Client::builder().no_proxy().build()?;
        // Under valgrind, start-up takes tens of seconds.
        let deadline =
            Instant::now() + Duration::from_secs(if prefix.is_some() { 180 } else { 20 });
        loop {
            let ready = http
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "signet did not become ready; log:\n{}",
                    std::fs::read_to_string(dir.path().join("signet.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(SignetProc {
            proc,
            webhook: format!("127.0.0.1:{port}").parse()?,
            admin,
            ca_pem,
            http,
            _dir: dir,
        })
    }

    /// The serving certificate and key files.
    pub fn cert_files(&self) -> (PathBuf, PathBuf) {
        (
            self._dir.path().join("cert.pem"),
            self._dir.path().join("key.pem"),
        )
    }

    /// signet's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("signet.log")).unwrap_or_default()
    }

    pub fn target(&self) -> anyhow::Result<Arc<Target>> {
        Ok(Arc::new(Target::new(
            self.webhook,
            &self.ca_pem,
            "/validate?timeout=10s",
        )?))
    }

    /// The admin port's `/metrics` page; empty if it did not answer.
    async fn metrics_text(&self) -> String {
        match self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The sum of every series of a metric family (`name{...} value` lines).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// Every series of a metric family by its labels, e.g. `{operation="blob",status="200"}`.
    pub async fn series(&self, name: &str) -> HashMap<String, f64> {
        let text = self.metrics_text().await;
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| {
                let (labels, v) = l.rsplit_once(' ')?;
                Some((labels.to_owned(), v.parse().ok()?))
            })
            .collect()
    }

    /// Seconds signet spent answering reviews and in registry requests so far (the sums of
    /// its duration histograms).
    pub async fn durations(&self) -> (f64, f64) {
        (
            self.metric("signet_admission_review_duration_seconds_sum")
                .await,
            self.metric("signet_registry_request_duration_seconds_sum")
                .await,
        )
    }

    pub async fn counters(&self) -> (f64, f64) {
        (
            self.metric("signet_registry_requests_total").await,
            self.metric("signet_verifications_total").await,
        )
    }
}

/// `loadgen echo-server`: signet's TLS configuration and hyper-util server, answering every
/// request with its own body. The transport's limit for signet's figures.
pub async fn echo_server(port_file: &Path, ca_out: &Path) -> anyhow::Result<()> {
    use signet::server::tls;
    let (pair, ca) = tls::self_signed(&[]).map_err(anyhow::Error::msg)?;
    let resolver = Arc::new(tls::ReloadingResolver::new(
        tls::certified_key(&pair).map_err(anyhow::Error::msg)?,
    ));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
        tls::server_config(resolver).map_err(anyhow::Error::msg)?,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(ca_out, ca)?;
    std::fs::write(port_file, listener.local_addr()?.port().to_string())?;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(|req: Request<Incoming>| async move {
                let body = req.into_body().collect().await?.to_bytes();
                let mut resp = Response::new(Full::new(body));
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, hyper::Error>(resp)
            });
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

pub async fn start_echo() -> anyhow::Result<(Proc, Arc<Target>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (port_file, ca_out) = (dir.path().join("port"), dir.path().join("ca.pem"));
    let child = server_command(std::env::current_exe()?)
        .arg("echo-server")
        .arg("--port-file")
        .arg(&port_file)
        .arg("--ca-out")
        .arg(&ca_out)
        .stdin(Stdio::null())
        .spawn()?;
    let proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    let port: u16 = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse()
        {
            break p;
        }
        if Instant::now() > deadline {
            bail!("the echo server did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ca = std::fs::read_to_string(&ca_out)?;
    let target = Arc::new(Target::new(
        format!("127.0.0.1:{port}").parse()?,
        &ca,
        "/validate?timeout=10s",
    )?);
    Ok((proc, target, dir))
}
