//! The README's walk-through (scripts/walkthrough.sh) run end to end against a test registry:
//! each image is denied by `signet verify`, `signet review` and the served webhook before it
//! is signed, and allowed by all three after, for Cosign and for Notation. The script judges
//! each answer from signet's own output (exit code, `"allowed"`); this test reads its verdict
//! lines and signet's raw answers.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;

use crate::support::registry::TestRegistry;

/// A port nothing listens on now (the script's webhook and admin ports).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Builds `signet-dev` into the directory of the `signet` binary under test (same target
/// directory and profile) and returns that directory. The build runs at the lowest CPU
/// priority, so that the tests running beside it keep their timing; building it before the
/// suite (`cargo build --locked -p signet-testkit --bin signet-dev`) makes this a no-op.
fn bin_dir() -> &'static Path {
    let signet = Path::new(env!("CARGO_BIN_EXE_signet"));
    let dir = signet.parent().expect("signet's directory");
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target_dir = dir.parent().expect("the target directory");
    let status = Command::new("nice")
        .args(["-n", "19"])
        .arg(cargo)
        .args(["build", "--locked", "--quiet", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["-p", "signet-testkit", "--bin", "signet-dev"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build signet-dev: {status}");
    assert!(
        dir.join("signet-dev").is_file(),
        "signet-dev in {}",
        dir.display()
    );
    dir
}

#[test]
fn walkthrough_denies_unsigned_and_allows_signed_images() {
    let registry = TestRegistry::start();
    let bin_dir = bin_dir();
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/walkthrough.sh"))
        .arg(registry.addr())
        .env("SIGNET_BIN_DIR", bin_dir)
        .env(
            "SIGNET_WALKTHROUGH_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "SIGNET_WALKTHROUGH_ADMIN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("run scripts/walkthrough.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "walkthrough failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let verdicts: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("verdict: "))
        .collect();
    let mut expected = Vec::new();
    for format in ["cosign", "notation"] {
        for (when, verdict) in [("before", "DENIED"), ("after", "ALLOWED")] {
            for tool in ["verify", "review", "serve"] {
                expected.push(format!("{format} {when} signing: signet {tool}: {verdict}"));
            }
        }
    }
    assert_eq!(verdicts, expected, "verdict lines:\n{stdout}");

    // The webhook's own answers (compact JSON), not only the script's reading of them.
    assert_eq!(stdout.matches("\"allowed\":false").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("\"allowed\":true").count(), 2, "{stdout}");
    for policy in ["cosign-demo", "notation-demo"] {
        assert!(
            stdout.contains(&format!("is not trusted by policy \\\"{policy}\\\"")),
            "deny message for {policy}:\n{stdout}"
        );
    }
    assert!(stdout.contains("walkthrough: every verdict as expected"));
}
