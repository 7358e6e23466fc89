//! signet admits itself: `scripts/build-image.sh` turns the signet binary into an OCI image
//! layout and pushes it to the real test registry; the image, signed with the test Cosign key,
//! is admitted by the real signet server, and the same image pushed unsigned elsewhere is not.
//!
//! The test uses the test-profile binary (`CARGO_BIN_EXE_signet`): the script does not care
//! which build it packs. Releases pack `target/release/signet` from `cargo build --release
//! --locked` (docs/deploy.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::cosign::{self, CosignKey};
use crate::support::fixtures::{load_review, replace_image};
use crate::support::oci::PushedImage;
use crate::support::registry::TestRegistry;
use crate::support::signet::{Signet, cosign_policy, settings};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image.sh")
}

/// Runs `scripts/build-image.sh --binary signet --out OUT ARGS...` and returns the digest it
/// prints last.
fn build_image(out: &Path, args: &[&str]) -> String {
    let run = Command::new("bash")
        .arg(script())
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_signet"))
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "scripts/build-image.sh {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let digest = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "no digest printed last: {stdout:?}"
    );
    digest
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in the layout")
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).expect("JSON blob")
}

/// `tar -tv --numeric-owner` of the layout's single layer: (mode string, owner, path) lines.
fn layer_listing(layout: &Path, manifest: &Value) -> Vec<(String, String, String)> {
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let hex = layers[0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let out = Command::new("tar")
        .args(["-tvz", "--numeric-owner", "-f"])
        .arg(layout.join("blobs/sha256").join(hex))
        .output()
        .expect("tar runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[5].to_owned())
        })
        .collect()
}

async fn pushed(registry: &TestRegistry, repo: &str, tag: &str) -> PushedImage {
    let fetched = registry
        .pusher()
        .get_manifest(repo, tag)
        .await
        .unwrap_or_else(|| panic!("{repo}:{tag} is not in the registry"));
    PushedImage {
        repo: repo.to_owned(),
        tag: Some(tag.to_owned()),
        digest: fetched.digest(),
        media_type: OCI_MANIFEST.to_owned(),
        size: fetched.bytes.len() as u64,
        manifest: fetched.bytes.clone(),
        platform: None,
        children: Vec::new(),
    }
}

async fn admitted(signet: &Signet, image: &str) -> (bool, Value) {
    let mut review = load_review("pod-create.json");
    assert_eq!(replace_image(&mut review, "nginx:1.27", image), 1);
    let answer = signet.review(&review).await;
    (answer["response"]["allowed"] == true, answer)
}

#[tokio::test]
async fn signet_admits_its_own_signed_image_and_not_an_unsigned_copy() {
    let registry = TestRegistry::start();
    let addr = registry.addr();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");

    let digest = build_image(
        &layout,
        &[
            "--tag",
            "0.1.0",
            "--push",
            &format!("{addr}/signet/signet:0.1.0"),
            "--insecure",
        ],
    );
    eprintln!("image digest: {digest}");

    // The layout: index.json -> manifest -> config, all content-addressed.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0"
    );
    let manifest = json_blob(&layout, &digest);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    let config = json_blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/signet"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["serve"]));
    for port in ["8443/tcp", "8080/tcp"] {
        assert!(c["ExposedPorts"].get(port).is_some(), "{port} not exposed");
    }
    assert_eq!(config["os"], "linux");

    // The layer: the entrypoint, its loader and libraries, the user, the CA roots.
    let listing = layer_listing(&layout, &manifest);
    let entry = |path: &str| {
        listing
            .iter()
            .find(|(_, _, p)| p.trim_end_matches('/') == path)
            .unwrap_or_else(|| panic!("{path} not in the layer: {listing:?}"))
            .clone()
    };
    let (mode, owner, _) = entry("usr/local/bin/signet");
    assert_eq!((mode.as_str(), owner.as_str()), ("-rwxr-xr-x", "0/0"));
    entry("etc/ssl/certs/ca-certificates.crt");
    entry("usr/lib64/ld-linux-x86-64.so.2");
    entry("usr/lib/x86_64-linux-gnu/libc.so.6");
    let (mode, owner, _) = entry("home/nonroot");
    assert_eq!(
        (mode.as_str(), owner.as_str()),
        ("drwx------", "65532/65532")
    );
    assert!(
        listing
            .iter()
            .all(|(_, o, p)| o == "0/0" || p.starts_with("home/nonroot")),
        "only /home/nonroot belongs to the user: {listing:?}"
    );
    let passwd = Command::new("tar")
        .args(["-xzO", "-f"])
        .arg(
            layout.join("blobs/sha256").join(
                manifest["layers"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("sha256:")
                    .unwrap(),
            ),
        )
        .arg("etc/passwd")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&passwd.stdout).contains("nonroot:x:65532:65532:"),
        "{passwd:?}"
    );

    // The registry holds the same manifest, under the digest the script printed.
    let image = pushed(&registry, "signet/signet", "0.1.0").await;
    assert_eq!(image.digest, digest);

    // Sign it like `cosign sign --key`, and the real server admits a Pod running it.
    let key = CosignKey::p256();
    cosign::sign_image(&registry, "signet/signet", &image, &key).await;
    let policies = format!(
        "{}---\n{}",
        settings("deny"),
        cosign_policy(
            "signet",
            &format!("{addr}/**"),
            "enforce",
            "deny",
            &key.public_key_pem()
        )
    );
    let signet = Signet::start(&policies, &[&registry]).await;
    let (allowed, answer) = admitted(&signet, &image.reference_by_tag(&addr)).await;
    assert!(allowed, "signet denied its own signed image: {answer}");

    // The image's own filesystem runs signet as 65532 and verifies the image from inside it:
    // loader, libraries, user and CA bundle suffice.
    run_inside_the_image(
        &layout,
        &manifest,
        &policies,
        &image.reference_by_tag(&addr),
        &addr,
    );

    // Another tag for the same manifest in the same repository is the same signed digest: a
    // signature covers the content, not the tag, so it is admitted too.
    registry
        .pusher()
        .push_manifest("signet/signet", "stable", OCI_MANIFEST, &image.manifest)
        .await;
    let (allowed, answer) = admitted(&signet, &format!("{addr}/signet/signet:stable")).await;
    assert!(allowed, "the same digest under another tag: {answer}");

    // The same image, rebuilt and pushed to another repository without a signature: the build
    // is reproducible (same digest), and the signature of the first repository does not carry
    // over, so the Pod is denied.
    let digest_again = build_image(
        &work.path().join("again"),
        &[
            "--push",
            &format!("{addr}/unsigned/signet:0.1.0"),
            "--insecure",
        ],
    );
    assert_eq!(digest_again, digest, "the build is not reproducible");
    let copy = pushed(&registry, "unsigned/signet", "0.1.0").await;
    let (allowed, answer) = admitted(&signet, &copy.reference_by_tag(&addr)).await;
    assert!(!allowed, "an unsigned copy was admitted: {answer}");
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no signature found"),
        "{answer}"
    );
    signet.stop().await;
}

/// Unpacks the layer and runs `signet verify` in it with `chroot --userspec=65532:65532` (root
/// only: elsewhere this part is skipped with a message). The registry on 127.0.0.1 is reached
/// from inside, as the host network is shared.
fn run_inside_the_image(layout: &Path, manifest: &Value, policies: &str, image: &str, addr: &str) {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("skipped running inside the image: chroot needs root");
        return;
    }
    let rootfs = tempfile::tempdir().unwrap();
    let hex = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let unpacked = Command::new("tar")
        .args(["-xz", "--same-owner", "-p", "-f"])
        .arg(layout.join("blobs/sha256").join(hex))
        .arg("-C")
        .arg(rootfs.path())
        .status()
        .unwrap();
    assert!(unpacked.success());
    // The policies, readable by 65532 (tempfile dirs are 0700).
    let dir = rootfs.path().join("tmp/policies");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("p.yaml"), policies).unwrap();
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(rootfs.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let run = Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(rootfs.path())
        .args(["/usr/local/bin/signet", "verify", image])
        .args(["--policies", "/tmp/policies", "--insecure-registry", addr])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("RUST_LOG", "warn")
        .output()
        .expect("chroot runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(0), "signet in its image: {text}");
    assert!(text.contains("TRUSTED"), "{text}");
}

#[test]
fn build_image_refuses_bad_arguments_with_a_message() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = Command::new("bash")
            .arg(script())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let out = work.path().join("o");
    let out = out.to_str().unwrap();
    let (code, err) = run(&["--out", out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--binary is required"), "{err}");
    let (code, err) = run(&["--binary", "/nonexistent/signet", "--out", out]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not an executable file"), "{err}");
    let bin = env!("CARGO_BIN_EXE_signet");
    let (code, err) = run(&["--binary", bin, "--out", out, "--insecure"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--insecure only applies to --push"), "{err}");
    assert!(
        !Path::new(out).exists(),
        "nothing is written on bad arguments"
    );
    // A directory that is not a layout is never replaced.
    let precious = work.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), b"keep").unwrap();
    let (code, err) = run(&["--binary", bin, "--out", precious.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not an OCI image layout"), "{err}");
    assert!(precious.join("keep.txt").exists());
}
