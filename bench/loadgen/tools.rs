//! External tools: nginx (the static-body TLS server), `wrk` and `h2load` (HTTP load
//! generators that drive signet and nginx alike).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::procs::{Proc, free_port};

/// `wrk`'s figures: requests per second and latency percentiles in ms.
pub struct Wrk {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub raw: String,
}

/// `wrk -t1 -c{connections} -d{secs}s --latency` POSTing `body` to `url`.
pub fn wrk(url: &str, body: &[u8], connections: usize, secs: f64) -> anyhow::Result<Wrk> {
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
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", secs.max(1.0) as u64),
        ])
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
        p50,
        p99,
        raw,
    })
}

/// nginx from Debian, one worker, TLS with signet's own certificate and key, answering every
/// request `200` with `body`: the floor of a static-body TLS server.
pub struct Nginx {
    pub proc: Proc,
    pub port: u16,
    pub _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(cert: &Path, key: &Path, body: &[u8]) -> anyhow::Result<Nginx> {
        let dir = tempfile::Builder::new().prefix("nginx-bench-").tempdir()?;
        let port = free_port();
        let d = dir.path().display();
        let body = String::from_utf8(body.to_vec())?;
        anyhow::ensure!(
            !body.contains('\''),
            "the body holds a quote nginx would need escaped"
        );
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000000;\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n    location / {{ default_type application/json; return 200 '{body}'; }}\n  }}\n}}\n",
            cert.display(),
            key.display()
        );
        let conf_file = dir.path().join("nginx.conf");
        std::fs::write(&conf_file, conf)?;
        let child = Command::new("nginx")
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
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
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
            _dir: dir,
        })
    }
}
