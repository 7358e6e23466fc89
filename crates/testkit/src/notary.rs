//! A Notary Project (Notation) signer for tests, independent of signet's verifier: a test PKI
//! made with rcgen (root → intermediate → code-signing leaf, each of which may name CRL and
//! OCSP locations), JWS and COSE_Sign1 envelopes of the `notary.x509` scheme signed with
//! aws-lc-rs, RFC 3161 countersignatures from a throwaway TSA driven through `openssl ts`, and
//! the signature manifest pushed as an OCI 1.1 referrer of the image.
//!
//! Written from the Notary Project signature specification, not from signet's code:
//! - JWS: flattened JSON; protected header `alg`, `cty`, `crit` = `[signingScheme]`,
//!   `io.cncf.notary.signingScheme` = `notary.x509`, `io.cncf.notary.signingTime` (RFC 3339);
//!   unprotected header `x5c` (standard base64 DER, leaf first, up to the root) and optionally
//!   `io.cncf.notary.timestampSignature` (an RFC 3161 token over the decoded signature bytes).
//! - COSE: tag 18; protected header alg, content type (3), crit (2), the signing scheme and the
//!   signing time (a tag-1 epoch); unprotected `x5chain` (33) and optionally the timestamp.
//! - Manifest: `artifactType` `application/vnd.cncf.notary.signature`, the empty config, one
//!   layer holding the envelope, `subject` = the image, and the
//!   `io.cncf.notary.x509chain.thumbprint#S256` annotation notation writes.
//!
//! Keys are P-384 (root) and P-256 (intermediate, leaf, TSA): EC generation is instant, so each
//! test makes its own PKI.
//!
//! Certificates and envelopes are made in one place, [`craft`], which also serves tests that
//! need a signature a verifier must refuse (signet's own unit tests among them).

use std::path::Path;
use std::process::Command;

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use rcgen::{CertificateParams, CrlDistributionPoint, CustomExtension, Issuer, KeyPair};
use serde_json::json;
use tempfile::TempDir;
use time::OffsetDateTime;

pub mod craft;

pub use craft::{Envelope, Pki, TsaSpec};

use crate::oci::{OCI_EMPTY, PushedImage, Pusher, annotations};

/// The artifact type of Notary Project signature manifests.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// The content type of the signed payload.
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Serial number of every leaf certificate made here, signing and TSA alike (each has its own
/// issuer).
pub const LEAF_SERIAL: u64 = 0x1001;
/// Serial number of every intermediate certificate made here.
pub const INTERMEDIATE_SERIAL: u64 = 0x1002;

const ROOT_CN: &str = "signet e2e root";
const INTERMEDIATE_CN: &str = "signet e2e intermediate";
const THUMBPRINT_ANNOTATION: &str = "io.cncf.notary.x509chain.thumbprint#S256";

/// The two envelope formats of the Notary Project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jws,
    Cose,
}

impl Format {
    /// The media type of the signature manifest's layer.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jws => "application/jose+json",
            Format::Cose => "application/cose",
        }
    }

    /// `jws` or `cose`, e.g. for tags.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jws => "jws",
            Format::Cose => "cose",
        }
    }
}

/// Where a certificate says its revocation status is published (authorityInfoAccess OCSP and
/// CRL distribution point). Empty: nowhere, so it is never checked.
#[derive(Clone, Debug, Default)]
pub struct RevocationUrls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
}

impl RevocationUrls {
    pub fn crl(url: String) -> RevocationUrls {
        RevocationUrls {
            crl: Some(url),
            ocsp: None,
        }
    }

    pub fn ocsp(url: String) -> RevocationUrls {
        RevocationUrls {
            crl: None,
            ocsp: Some(url),
        }
    }

    fn apply(&self, params: &mut CertificateParams) {
        if let Some(url) = &self.crl {
            params.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        if let Some(url) = &self.ocsp {
            params.custom_extensions.push(ocsp_aia(url));
        }
    }
}

/// What the signing chain's certificates name.
#[derive(Clone, Debug, Default)]
pub struct ChainSpec {
    pub leaf: RevocationUrls,
    pub intermediate: RevocationUrls,
}

/// A certificate authority's certificate and key, which signs certificates and CRLs.
pub struct Authority {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A CRL by this authority, valid from yesterday until tomorrow, revoking `serials`
    /// (revoked yesterday, key compromise).
    pub fn crl(&self, revoked: &[u64]) -> Vec<u8> {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        self.crl_between(revoked, now - day, now + day)
    }
}

/// A signing chain root → intermediate → leaf (codeSigning), and the leaf's key.
pub struct SigningChain {
    /// The self-signed root, for a `ca` trust store.
    pub root: Authority,
    /// The intermediate, which issued the leaf: it signs the leaf's CRLs and OCSP answers.
    pub intermediate: Authority,
    /// DER certificates, leaf first, root last (the `x5c` order).
    ders: Vec<Vec<u8>>,
    leaf_pkcs8: Vec<u8>,
    /// The leaf's key is RSA (PS256), not P-256 (ES256).
    leaf_rsa: bool,
}

impl SigningChain {
    pub fn new(spec: &ChainSpec) -> SigningChain {
        SigningChain::craft(&Pki {
            intermediate: spec.intermediate.clone(),
            leaf: spec.leaf.clone(),
            ..Pki::default()
        })
    }

    /// DER certificates, leaf first, root last.
    pub fn ders(&self) -> &[Vec<u8>] {
        &self.ders
    }

    /// The leaf's private key, PKCS#8 DER.
    pub fn leaf_pkcs8(&self) -> &[u8] {
        &self.leaf_pkcs8
    }

    /// Writes the chain into `dir` as PEM files: `ca.pem` (the root, for a `ca` trust store)
    /// and `ca.key`, `intermediate.pem` and `intermediate.key`, `leaf.pem` and `leaf.key`.
    /// [`SigningChain::read_from`] reads them back.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let cert = |der: &[u8]| crate::sigstore::pem("CERTIFICATE", der);
        std::fs::write(dir.join("ca.pem"), &self.root.cert_pem)?;
        std::fs::write(dir.join("ca.key"), &self.root.key_pem)?;
        std::fs::write(dir.join("intermediate.pem"), &self.intermediate.cert_pem)?;
        std::fs::write(dir.join("intermediate.key"), &self.intermediate.key_pem)?;
        std::fs::write(dir.join("leaf.pem"), cert(&self.ders[0]))?;
        std::fs::write(
            dir.join("leaf.key"),
            crate::sigstore::pem("PRIVATE KEY", &self.leaf_pkcs8),
        )
    }

    /// A chain [`SigningChain::write_to`] wrote into `dir`.
    pub fn read_from(dir: &Path) -> Result<SigningChain, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|err| format!("{}: {err}", dir.join(name).display()))
        };
        let der = |name: &str| -> Result<Vec<u8>, String> {
            let pem = read(name)?;
            CertificateDer::from_pem_slice(pem.as_bytes())
                .map(|der| der.to_vec())
                .map_err(|err| format!("{}: {err}", dir.join(name).display()))
        };
        let authority = |name: &str, cn: &str| -> Result<Authority, String> {
            let cert_pem = read(&format!("{name}.pem"))?;
            let key_pem = read(&format!("{name}.key"))?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|err| format!("{}/{name}.key: {err}", dir.display()))?;
            // The issuer's name is all a certificate it signs refers to.
            let params = craft::ca_params("Signet Test", cn, OffsetDateTime::now_utc());
            Ok(Authority {
                cert_pem,
                key_pem,
                issuer: Issuer::new(params, key),
            })
        };
        let leaf_pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(read("leaf.key")?.as_bytes())
            .map_err(|err| format!("{}/leaf.key: {err}", dir.display()))?
            .secret_pkcs8_der()
            .to_vec();
        let leaf_rsa = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&leaf_pkcs8).is_ok();
        Ok(SigningChain {
            ders: vec![der("leaf.pem")?, der("intermediate.pem")?, der("ca.pem")?],
            root: authority("ca", ROOT_CN)?,
            intermediate: authority("intermediate", INTERMEDIATE_CN)?,
            leaf_pkcs8,
            leaf_rsa,
        })
    }

    /// Replaces the leaf with a new one (new key, same name and serial) from the same
    /// intermediate, naming `urls`: many signers under one trusted root, e.g. a leaf per image
    /// whose OCSP URL differs, so that no revocation answer is reused between them.
    pub fn reissue_leaf(&mut self, urls: &RevocationUrls) {
        self.issue_leaf(&Pki {
            leaf: urls.clone(),
            ..Pki::default()
        });
    }

    /// Replaces the leaf with one that expires `days` from now (naming no revocation URLs).
    pub fn reissue_leaf_expiring_in(&mut self, days: i64) {
        self.issue_leaf(&Pki {
            leaf_valid: (30, days),
            ..Pki::default()
        });
    }

    /// A Notary signature of `image` in `format`, countersigned by `tsa` when given.
    pub fn sign(&self, format: Format, image: &PushedImage, tsa: Option<&Tsa>) -> Vec<u8> {
        let opts = Envelope {
            signing_time: Some(SystemTime::now() - Duration::from_secs(60)),
            timestamp: tsa.map(|tsa| (tsa, false)),
            ..Envelope::default()
        };
        self.envelope(format, &payload(image), &opts)
    }

    /// Signs `image` and pushes the signature manifest as its referrer (through the referrers
    /// tag schema). Returns the signature manifest's digest.
    pub async fn sign_and_push(
        &self,
        pusher: &Pusher,
        image: &PushedImage,
        format: Format,
        tsa: Option<&Tsa>,
    ) -> String {
        let envelope = self.sign(format, image, tsa);
        pusher
            .push_referrer(
                &image.repo,
                image,
                SIGNATURE_ARTIFACT_TYPE,
                OCI_EMPTY,
                vec![(format.media_type(), envelope, Default::default())],
                annotations(&[(THUMBPRINT_ANNOTATION, &self.thumbprints())]),
            )
            .await
    }

    /// `["<sha256 hex of each certificate>", ...]`, leaf first, as notation annotates.
    fn thumbprints(&self) -> String {
        let prints: Vec<String> = self
            .ders
            .iter()
            .map(|der| hex::encode(digest::digest(&digest::SHA256, der)))
            .collect();
        serde_json::to_string(&prints).expect("thumbprints JSON")
    }
}

/// The Notary payload: `{"targetArtifact": <descriptor of the image manifest>}`.
fn payload(image: &PushedImage) -> Vec<u8> {
    serde_json::to_vec(&json!({"targetArtifact": {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": image.size,
    }}))
    .expect("payload JSON")
}

/// A throwaway RFC 3161 time-stamping authority: a self-signed root and a TSA certificate
/// (critical EKU timeStamping only, critical keyUsage digitalSignature) made with rcgen, whose
/// tokens `openssl ts -reply` makes.
pub struct Tsa {
    /// The TSA root: it goes into a `tsa` trust store, and it signs the TSA's CRLs.
    pub root: Authority,
    /// The root certificate, DER.
    pub root_der: Vec<u8>,
    /// The TSA's own certificate (which the tokens carry), DER.
    pub leaf_der: Vec<u8>,
    dir: TempDir,
}

impl Tsa {
    /// A TSA whose certificate names `revocation` (a CRL distribution point, an OCSP responder).
    pub fn new(revocation: &RevocationUrls) -> Tsa {
        Tsa::craft(&TsaSpec {
            revocation: revocation.clone(),
            ..TsaSpec::default()
        })
    }

    /// An RFC 3161 token (the `TimeStampToken`, a CMS SignedData) over `data`, with the TSA
    /// certificate in it.
    pub fn stamp(&self, data: &[u8]) -> Vec<u8> {
        let work = tempfile::tempdir_in(self.dir.path()).expect("stamp dir");
        let w = work.path();
        std::fs::write(w.join("data"), data).expect("write data");
        let tsa = self.dir.path();
        openssl(
            w,
            &[
                "ts", "-query", "-data", "data", "-sha256", "-cert", "-out", "req.tsq",
            ],
        );
        openssl(
            w,
            &[
                "ts",
                "-reply",
                "-config",
                &tsa.join("ts.cnf").display().to_string(),
                "-queryfile",
                "req.tsq",
                "-signer",
                &tsa.join("tsa.pem").display().to_string(),
                "-inkey",
                &tsa.join("tsa.key").display().to_string(),
                "-token_out",
                "-out",
                "token.der",
            ],
        );
        std::fs::read(w.join("token.der")).expect("read token")
    }
}

/// A policy covering `images` with one Notation authority trusting `ca_root_pem` (and
/// `tsa_root_pem` as a `tsa` store), any identity, and `verification` (a YAML flow map, e.g.
/// `{level: strict, override: {revocation: skip}}`).
pub fn notation_policy(
    images: &str,
    verification: &str,
    ca_root_pem: &str,
    tsa_root_pem: Option<&str>,
) -> String {
    named_notation_policy(
        "notation-revocation",
        images,
        verification,
        ca_root_pem,
        tsa_root_pem,
    )
}

/// [`notation_policy`] named `name`, for a policy set with several of them.
pub fn named_notation_policy(
    name: &str,
    images: &str,
    verification: &str,
    ca_root_pem: &str,
    tsa_root_pem: Option<&str>,
) -> String {
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n                  ");
    let ca = indent(ca_root_pem);
    let mut policy = format!(
        r#"apiVersion: signet.dev/v1alpha1
kind: ClusterImagePolicy
metadata:
  name: {name}
spec:
  images: ["{images}"]
  authorities:
    - name: release
      notation:
        signatureVerification: {verification}
        trustedIdentities: ["*"]
        trustStores:
          - type: ca
            name: release
            certificates:
              - inline: |
                  {ca}
"#
    );
    if let Some(tsa) = tsa_root_pem {
        let tsa = indent(tsa);
        policy.push_str(&format!(
            r#"          - type: tsa
            name: tsa
            certificates:
              - inline: |
                  {tsa}
"#
        ));
    }
    policy
}

/// authorityInfoAccess naming one OCSP responder (rcgen has no field for it):
/// `SEQUENCE { SEQUENCE { id-ad-ocsp, [6] uri } }`.
fn ocsp_aia(url: &str) -> CustomExtension {
    const ID_AD_OCSP: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 48, 1];
    let access = [der_tlv(0x06, ID_AD_OCSP), der_tlv(0x86, url.as_bytes())].concat();
    CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 1],
        der_tlv(0x30, &der_tlv(0x30, &access)),
    )
}

/// One DER TLV (definite length, short or long form).
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// Runs `openssl args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
