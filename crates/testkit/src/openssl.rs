//! An openssl CA for revocation test data, made by an implementation that shares nothing with
//! signet's verifier: CRLs (`openssl ca -gencrl`, with any CRL extensions: delta CRLs,
//! freshest-CRL pointers), OCSP responses (`openssl ocsp`, signed by the CA or a delegated
//! responder) and delegated OCSP responder certificates (`openssl x509`). Index lines are
//! openssl's CA database format (`R\t<expiry>\t<revoked>,<reason>\t<serial hex>\t...`).
//!
//! Used by signet's Notation revocation unit tests; [`crate::responder::Responder`] serves
//! such answers over HTTP.

use std::time::{Duration, SystemTime};

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> SystemTime {
    SystemTime::now()
}

/// A CA whose certificate and key are on disk for openssl.
pub struct OpensslCa {
    dir: tempfile::TempDir,
}

/// Runs `openssl args...` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// openssl's time format (`YYYYMMDDHHMMSSZ`).
pub fn stamp(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl OpensslCa {
    /// A CA from its certificate and key (PEM).
    pub fn new(cert_pem: &str, key_pem: &str) -> OpensslCa {
        let dir = tempfile::tempdir().expect("openssl CA files");
        std::fs::write(dir.path().join("ca.pem"), cert_pem).expect("openssl CA files");
        std::fs::write(dir.path().join("ca.key"), key_pem).expect("openssl CA files");
        OpensslCa { dir }
    }

    /// A CRL listing the `index` lines, numbered `number`, with extra CRL extensions (openssl
    /// config lines), valid from yesterday until `next_update`.
    pub fn crl_until(
        &self,
        index: &str,
        number: u32,
        extensions: &str,
        next_update: SystemTime,
    ) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("index.txt"), index).expect("openssl CA files");
        std::fs::write(d.join("crlnumber"), format!("{number:02X}\n")).expect("openssl CA files");
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[ ca ]\ndefault_ca = c\n[ c ]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
                 default_md = sha256\ncrl_extensions = ext\n[ ext ]\n{extensions}"
            ),
        )
        .expect("openssl CA files");
        let last = stamp(now() - DAY);
        let next = stamp(next_update);
        openssl(
            d,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-gencrl",
                "-keyfile",
                "ca.key",
                "-cert",
                "ca.pem",
                "-crl_lastupdate",
                &last,
                "-crl_nextupdate",
                &next,
                "-out",
                "crl.pem",
            ],
        );
        openssl(
            d,
            &[
                "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der",
            ],
        );
        std::fs::read(d.join("crl.der")).expect("openssl CA files")
    }

    /// A CRL like [`OpensslCa::crl_until`], valid until tomorrow.
    pub fn crl(&self, index: &str, number: u32, extensions: &str) -> Vec<u8> {
        self.crl_until(index, number, extensions, now() + DAY)
    }

    /// A delegated OCSP responder certificate (serial 77), optionally with
    /// id-pkix-ocsp-nocheck and a CRL distribution point. Returns (PEM, key PEM).
    pub fn responder(&self, nocheck: bool, crl_url: Option<&str>) -> (String, String) {
        let d = self.dir.path();
        let mut ext = String::from(
            "[ e ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = OCSPSigning\n",
        );
        if nocheck {
            ext.push_str("noCheck = ignored\n");
        }
        if let Some(url) = crl_url {
            ext.push_str(&format!("crlDistributionPoints = URI:{url}\n"));
        }
        std::fs::write(d.join("responder.cnf"), ext).expect("openssl CA files");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "responder.key",
                "-subj",
                "/C=US/ST=WA/O=Example/CN=responder",
                "-out",
                "responder.csr",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "responder.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "77",
                "-days",
                "30",
                "-extfile",
                "responder.cnf",
                "-extensions",
                "e",
                "-out",
                "responder.pem",
            ],
        );
        (
            std::fs::read_to_string(d.join("responder.pem")).expect("openssl CA files"),
            std::fs::read_to_string(d.join("responder.key")).expect("openssl CA files"),
        )
    }

    /// `openssl ocsp` answering `request` from `index`, signed by the CA or by `signer`.
    pub fn ocsp(&self, request: &[u8], index: &str, signer: Option<&(String, String)>) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join("index.txt"), index).expect("openssl CA files");
        std::fs::write(d.join("req.der"), request).expect("openssl CA files");
        let (cert, key) = match signer {
            Some((pem, key)) => {
                std::fs::write(d.join("signer.pem"), pem).expect("openssl CA files");
                std::fs::write(d.join("signer.key"), key).expect("openssl CA files");
                ("signer.pem", "signer.key")
            }
            None => ("ca.pem", "ca.key"),
        };
        openssl(
            d,
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-rsigner",
                cert,
                "-rkey",
                key,
                "-reqin",
                "req.der",
                "-respout",
                "resp.der",
                "-ndays",
                "1",
            ],
        );
        std::fs::read(d.join("resp.der")).expect("openssl CA files")
    }
}
