//! `signet serve` as the real binary: two development servers on one machine do not collide.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::fixtures::load_review;

/// A `signet serve` with a self-signed certificate and its own temporary directory; the
/// webhook address and the CA path are read from its log, as a person would.
struct DevServer {
    child: Child,
    webhook: String,
    ca: std::path::PathBuf,
}

impl DevServer {
    fn start(tmp: &std::path::Path, policies: &std::path::Path) -> DevServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--policies",
                policies.to_str().unwrap(),
                "--log-format",
                "json",
            ])
            .env("TMPDIR", tmp)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut webhook, mut ca) = (None, None);
        while webhook.is_none() || ca.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("serve logs its address and CA");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(w) = v["webhook"].as_str() {
                webhook = Some(w.to_string());
            }
            if let Some(c) = v["ca"].as_str() {
                ca = Some(c.into());
            }
        }
        DevServer {
            child,
            webhook: webhook.unwrap(),
            ca: ca.unwrap(),
        }
    }

    /// Calls the webhook trusting only the CA file the log named.
    async fn call(&self) -> Result<u16, String> {
        let pem = std::fs::read(&self.ca).map_err(|e| e.to_string())?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap();
        let port = self.webhook.rsplit(':').next().unwrap();
        let body = serde_json::to_vec(&load_review("pod-create.json")).unwrap();
        client
            .post(format!("https://localhost:{port}/validate?timeout=5s"))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"))
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_dev_servers_each_get_their_own_ca_file() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    let a = DevServer::start(tmp.path(), policies.path());
    let b = DevServer::start(tmp.path(), policies.path());
    assert_ne!(a.ca, b.ca, "both servers wrote {}", a.ca.display());
    assert!(a.ca.starts_with(tmp.path()), "{}", a.ca.display());
    assert_eq!(a.call().await, Ok(200), "first server, its own CA");
    assert_eq!(b.call().await, Ok(200), "second server, its own CA");
}

/// `signet serve` with neither a policy directory nor `--kubernetes` says which to give; with
/// `--kubernetes` alone it needs no directory and goes on to look for the cluster.
#[test]
fn serve_needs_a_policy_directory_unless_every_policy_is_a_resource() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            // No ./policies here, no kubeconfig, not in a pod.
            .current_dir(tmp.path())
            .env("TMPDIR", tmp.path())
            .env("KUBECONFIG", tmp.path().join("missing"))
            .env("HOME", tmp.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "no policy directory: ./policies does not exist here; pass --policies DIR (the \
             directory of your policy YAML files), or --kubernetes to take every policy from \
             ClusterImagePolicy and ImagePolicy resources"
        ),
        "{}",
        text(&o)
    );
    let o = run(&["--kubernetes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--kubernetes: no usable cluster configuration")
            && !text(&o).contains("no policy directory"),
        "{}",
        text(&o)
    );
    // A ./policies is not read with --kubernetes alone, and the log says so.
    std::fs::create_dir(tmp.path().join("policies")).unwrap();
    let o = run(&["--kubernetes"]);
    assert!(
        text(&o).contains("a policy directory is here but not read"),
        "{}",
        text(&o)
    );
}

/// A `signet serve` that cannot start logs why as its last line before it exits 2: log lines
/// are written by a thread of their own, and the exit waits for the lines still queued.
#[test]
fn a_serve_that_cannot_start_logs_why_before_it_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for _ in 0..3 {
        let out = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["serve", "--listen", &addr, "--admin-listen", "127.0.0.1:0"])
            .args(["--policies", policies.path().to_str().unwrap()])
            .args(["--log-format", "json"])
            .env("TMPDIR", tmp.path())
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
        assert_eq!(
            v["message"], "cannot start",
            "last line {last:?} of {stderr}"
        );
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains(&addr)),
            "{last}"
        );
    }
    drop(taken);
}
