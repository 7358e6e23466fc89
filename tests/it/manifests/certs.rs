//! `certs/gen.sh`: the serving certificate, the caBundle placeholder and the overlay it writes.

use super::*;

#[test]
fn gen_sh_makes_a_serving_certificate_for_the_service() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(out.path())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "certs/gen.sh failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("kubectl -n signet-system create secret tls signet-tls"));
    let text = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-in",
        ])
        .arg(out.path().join("tls.crt"))
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&text.stdout);
    for san in [
        "DNS:signet,",
        "DNS:signet.signet-system,",
        "DNS:signet.signet-system.svc,",
        "DNS:signet.signet-system.svc.cluster.local",
    ] {
        assert!(text.contains(san), "missing {san} in:\n{text}");
    }
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    let verify = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(out.path().join("ca.crt"))
        .arg(out.path().join("tls.crt"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // The printed caBundle is the CA certificate.
    use base64::Engine;
    let ca = std::fs::read(out.path().join("ca.crt")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(stdout.contains(&b64), "caBundle not printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["tls.key", "ca.key"] {
            let mode = std::fs::metadata(out.path().join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // A second run refuses to overwrite without --force.
    let again = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn ca_bundle_is_a_placeholder_the_api_server_rejects() {
    // Applying the manifests unchanged must fail for the webhook object (not base64), never
    // register a webhook whose TLS cannot verify.
    use base64::Engine;
    let vwc = object("ValidatingWebhookConfiguration", "signet");
    let bundle = vwc["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap();
    assert!(
        base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .is_err(),
        "caBundle {bundle:?} decodes; the placeholder must not"
    );
    assert!(
        bundle.contains("certs/gen.sh"),
        "the placeholder {bundle:?} should name certs/gen.sh"
    );
}

/// `certs/gen.sh --out-dir DIR` makes DIR an overlay: `kubectl apply -k DIR` creates the TLS
/// Secret from the files and fills the caBundle of both webhook configurations; extra SANs
/// land in the certificate.
#[test]
fn gen_sh_writes_an_overlay_with_the_secret_the_ca_bundle_and_extra_sans() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(manifests_dir())
        .arg(dir.path().join("manifests"))
        .status()
        .unwrap();
    assert!(copied.success());
    let out = dir.path().join("deploy");
    let run = Command::new("bash")
        .arg(root().join("certs/gen.sh"))
        .arg("--out-dir")
        .arg(&out)
        .arg("--manifests")
        .arg(dir.path().join("manifests"))
        .args([
            "--ip",
            "10.0.0.7",
            "--ip",
            "fd00::7",
            "--dns",
            "signet.example.test",
        ])
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains(&format!("kubectl apply -k {}", out.display())),
        "{stdout}"
    );
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(out.join("tls.crt"))
        .output()
        .unwrap();
    let sans = String::from_utf8_lossy(&sans.stdout);
    for san in [
        "DNS:signet.signet-system.svc,",
        "DNS:signet.example.test",
        "IP Address:10.0.0.7",
        "IP Address:FD00:0:0:0:0:0:0:7",
    ] {
        assert!(sans.contains(san), "missing {san} in:\n{sans}");
    }

    // With the pinning component added to the overlay, as its comment says.
    let mut k = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
    k.push_str("components: [\"../manifests/components/pinning\"]\n");
    std::fs::write(out.join("kustomization.yaml"), k).unwrap();
    let Some(text) = render_dir(&out) else {
        return;
    };
    let docs = documents(&text);
    assert_eq!(
        docs.len(),
        objects().len() + 2,
        "the base, the pinning webhook, the Secret"
    );
    let (ok, report) = validate(&["-".to_string()], Some(&text));
    assert_clean("gen.sh's overlay", ok, &report, docs.len());
    let ca = b64.encode(std::fs::read(out.join("ca.crt")).unwrap());
    for (kind, name) in [
        ("ValidatingWebhookConfiguration", "signet"),
        ("MutatingWebhookConfiguration", "signet-pinning"),
    ] {
        assert_eq!(
            find(&docs, kind, name)["webhooks"][0]["clientConfig"]["caBundle"].as_str(),
            Some(ca.as_str()),
            "{kind}"
        );
    }
    let secret = find(&docs, "Secret", "signet-tls");
    assert_eq!(secret["metadata"]["namespace"], "signet-system");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for file in ["tls.crt", "tls.key"] {
        let data: String = secret["data"][file]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            b64.decode(data).unwrap(),
            std::fs::read(out.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn gen_sh_refuses_malformed_extra_sans() {
    for (flag, value, message) in [
        ("--ip", "10.0.0.300", "not an IP address"),
        ("--ip", "signet.example", "not an IP address"),
        ("--dns", "Signet_Example", "not a lower-case DNS name"),
        ("--dns", "a..b", "not a lower-case DNS name"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let run = Command::new("bash")
            .arg(root().join("certs/gen.sh"))
            .arg("--out-dir")
            .arg(out.path().join("o"))
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(message), "{flag} {value}: {err}");
        assert!(!out.path().join("o").exists(), "{flag} {value} wrote files");
    }
}
