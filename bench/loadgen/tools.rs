//! External tools: nginx (the static-body TLS server), `wrk` and `h2load` (HTTP load
//! generators that drive signet and nginx alike).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::procs::{Proc, free_port};
use crate::report::histogram;

/// `wrk`'s figures: requests per second over `secs` and latency percentiles in ms.
pub struct Wrk {
    pub rate: f64,
    pub secs: f64,
    pub p50: f64,
    pub p99: f64,
    pub raw: String,
}

/// `wrk -t1 -c{connections} -d{secs}s --latency` POSTing `body` to `url`.
pub fn wrk(url: &str, body: &[u8], connections: usize, secs: f64) -> anyhow::Result<Wrk> {
    // wrk takes whole seconds.
    let whole = secs.max(1.0) as u64;
    let dir = tempfile::tempdir()?;
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body)?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal f = io.open(\"{}\", \"rb\")\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body_file.display()
        ),
    )?;
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{whole}s")])
        .arg("--latency")
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .context("run wrk (bench/install.sh installs it)")?;
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let ms = |line: &str| -> Option<f64> {
        let v = line.split_whitespace().nth(1)?;
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = n.parse().ok()?;
        Some(match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            _ => return None,
        })
    };
    let find = |prefix: &str| raw.lines().find(|l| l.trim_start().starts_with(prefix));
    let rate = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let p50 = find("50%").and_then(ms).unwrap_or(f64::NAN);
    let p99 = find("99%").and_then(ms).unwrap_or(f64::NAN);
    anyhow::ensure!(
        rate > 0.0,
        "wrk gave no rate:\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Wrk {
        rate,
        secs: whole as f64,
        p50,
        p99,
        raw,
    })
}

/// How `h2load` speaks to the server: HTTP/1.1 (`--h1`) or HTTP/2, over `clients`
/// connections with up to `streams` requests in flight on each.
#[derive(Clone, Copy)]
pub struct H2loadShape {
    pub h2: bool,
    pub clients: usize,
    pub streams: usize,
}

impl H2loadShape {
    /// The flags, as in the report: `--h1 -c16 -m1`.
    pub fn flags(&self) -> String {
        format!(
            "{}-c{} -m{}",
            if self.h2 { "" } else { "--h1 " },
            self.clients,
            self.streams
        )
    }
}

/// `h2load`'s figures: requests per second (its own), latency percentiles in ms from its
/// per-request log (it prints only min, max, mean and sd), and its status-code line.
pub struct H2load {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    /// Responses with a status outside 2xx, from the per-request log (`-1`: failed).
    pub not_2xx: u64,
    /// Requests logged with status `0` (none) or no readable status: seen once, one in
    /// 305,783 over one HTTP/2 connection, where h2load counted none failed and no status
    /// outside 2xx. Allowed up to the requests in flight at once, and reported.
    pub no_status: u64,
    /// Requests h2load counts as failed, errored or timed out.
    pub failed: u64,
    /// Its `status codes: …` line.
    pub statuses: String,
    pub raw: String,
}

/// `h2load -t1 -c{clients} -m{streams} -D{secs} --warm-up-time=1` POSTing `body` as
/// `application/json` to `url` (`--h1` for HTTP/1.1), its per-request log kept. Fails when
/// the server did not speak the protocol asked for or h2load reports no rate.
pub fn h2load(url: &str, body: &[u8], shape: H2loadShape, secs: f64) -> anyhow::Result<H2load> {
    let dir = tempfile::tempdir()?;
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body)?;
    let log_file = dir.path().join("requests.log");
    let mut cmd = Command::new("h2load");
    cmd.args([
        "-t1".to_owned(),
        format!("-c{}", shape.clients),
        format!("-m{}", shape.streams),
        format!("-D{}", secs.max(1.0) as u64),
        "--warm-up-time=1".to_owned(),
        "-H".to_owned(),
        "content-type: application/json".to_owned(),
    ])
    .arg("-d")
    .arg(&body_file)
    .arg(format!("--log-file={}", log_file.display()));
    if !shape.h2 {
        cmd.arg("--h1");
    }
    let out = cmd
        .arg(url)
        .output()
        .context("run h2load (bench/install.sh installs it)")?;
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let find = |prefix: &str| raw.lines().find(|l| l.trim_start().starts_with(prefix));
    let protocol = find("Application protocol:")
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("none");
    let wanted = if shape.h2 { "h2" } else { "http/1.1" };
    anyhow::ensure!(
        protocol == wanted,
        "h2load spoke {protocol}, not {wanted}:\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "finished in 5.00s, 12345.67 req/s, 3.21MB/s"
    let rate = find("finished in")
        .and_then(|l| l.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok())
        .unwrap_or(0.0);
    anyhow::ensure!(
        rate > 0.0,
        "h2load gave no rate:\n{raw}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "requests: N total, N started, N done, N succeeded, F failed, E errored, T timeout"
    let failed = find("requests:")
        .map(|l| {
            l.split(", ")
                .filter(|f| {
                    f.ends_with(" failed") || f.ends_with(" errored") || f.ends_with(" timeout")
                })
                .filter_map(|f| f.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let statuses = find("status codes:")
        .unwrap_or("status codes: ?")
        .trim()
        .to_owned();
    // Each line: start (µs since the epoch), status, µs until the end of the response.
    let mut hist = histogram();
    let (mut not_2xx, mut no_status) = (0, 0);
    for line in std::fs::read_to_string(&log_file)?.lines() {
        let mut cols = line.split('\t').skip(1);
        let status: Option<i32> = cols.next().and_then(|c| c.parse().ok());
        let us: u64 = cols.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        match status {
            Some(200..300) => {
                hist.saturating_record(us * 1_000);
            }
            None | Some(0) => no_status += 1,
            Some(_) => not_2xx += 1,
        }
    }
    anyhow::ensure!(!hist.is_empty(), "h2load logged no 2xx answer:\n{raw}");
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e6;
    Ok(H2load {
        rate,
        p50: ms(0.5),
        p99: ms(0.99),
        not_2xx,
        no_status,
        failed,
        statuses,
        raw,
    })
}

/// nginx from Debian, one worker, TLS with signet's own certificate and key, answering every
/// request `200` with `body`: the floor of a static-body TLS server. Two ports, one process:
/// - `port`: `return 200`, which never reads the request body (HTTP/1.1 only, for `wrk`);
/// - `body_port`: reads the request body first, then the same `return 200`; HTTP/1.1 and
///   HTTP/2, for `h2load`. Over HTTP/2, nginx 1.22 counts the bytes of a body it discards as
///   no payload and, after some 8 MiB of them, closes the connection as a flood ("http2 flood
///   detected"), so `return 200` alone cannot serve a long HTTP/2 run of POSTs. The body is
///   read by `mirror` (to an internal location answering 204); `empty_gif` then refuses the
///   POST with 405, which `error_page` turns into the `return 200` (no file is opened).
pub struct Nginx {
    pub proc: Proc,
    pub port: u16,
    pub body_port: u16,
    pub _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(cert: &Path, key: &Path, body: &[u8]) -> anyhow::Result<Nginx> {
        let dir = tempfile::Builder::new().prefix("nginx-bench-").tempdir()?;
        let (port, body_port) = (free_port(), free_port());
        let d = dir.path().display();
        let body = String::from_utf8(body.to_vec())?;
        anyhow::ensure!(
            !body.contains('\''),
            "the body holds a quote nginx would need escaped"
        );
        let tls = format!(
            "ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;",
            cert.display(),
            key.display()
        );
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000000;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    {tls}\n    location / {{ default_type application/json; return 200 '{body}'; }}\n  }}\n  server {{\n    listen 127.0.0.1:{body_port} ssl http2;\n    {tls}\n    client_body_buffer_size 64k;\n    location / {{ mirror /read-body; empty_gif; error_page 405 =200 @answer; }}\n    location = /read-body {{ internal; return 204; }}\n    location @answer {{ default_type application/json; return 200 '{body}'; }}\n  }}\n}}\n"
        );
        let conf_file = dir.path().join("nginx.conf");
        std::fs::write(&conf_file, conf)?;
        let child = crate::procs::server_command("nginx")
            .arg("-c")
            .arg(&conf_file)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start nginx (bench/install.sh installs it)")?;
        let proc = Proc { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", body_port)).is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx {
            proc,
            port,
            body_port,
            _dir: dir,
        })
    }
}
