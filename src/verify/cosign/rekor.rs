//! Rekor transparency-log entries, verified offline.
//!
//! A signed entry timestamp (SET) is the log's ECDSA signature over the canonical JSON (RFC
//! 8785: keys sorted, no spaces) of `{"body", "integratedTime", "logID", "logIndex"}`, where
//! `body` is the base64 entry and `logID` the hex log id. A valid SET proves the log accepted
//! *some* entry at `integratedTime`; it says nothing about *this* signature. So the body is then
//! decoded and compared with the signature, the signer's certificate or key, and the payload
//! hash: without that, a SET of any other entry would do (CVE-2022-23649).
//!
//! Inclusion proofs (RFC 9162 Merkle audit paths) and their signed checkpoints are verified
//! when a bundle carries them; consistency with other checkpoints is not (no network).
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::policy::cosign::trust_root::{LogKey, TrustRoot};
use crate::reason::Reason;
use crate::verify::Failure;

use super::log_signature_verifies;

fn tlog(detail: impl Into<String>) -> Failure {
    Failure::new(Reason::TransparencyLog, detail)
}

/// A log entry, whichever format carried it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry body, base64 exactly as the log returned it.
    pub body_b64: String,
    pub integrated_time: i64,
    pub log_index: i64,
    pub log_id: Vec<u8>,
    /// The SET, raw signature bytes.
    pub set: Option<Vec<u8>>,
}

/// The `dev.sigstore.cosign/bundle` annotation cosign writes on keyless `.sig` layers.
#[derive(serde::Deserialize)]
struct LegacyBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: LegacyPayload,
}

#[derive(serde::Deserialize)]
struct LegacyPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

impl Entry {
    /// Parses the legacy Rekor bundle annotation.
    pub fn from_legacy_bundle(json: &str) -> Result<Self, Failure> {
        let b: LegacyBundle = serde_json::from_str(json).map_err(|e| {
            Failure::new(
                Reason::Malformed,
                format!("the Rekor bundle annotation is not valid: {e}"),
            )
        })?;
        Ok(Entry {
            body_b64: b.payload.body,
            integrated_time: b.payload.integrated_time,
            log_index: b.payload.log_index,
            log_id: hex::decode(&b.payload.log_id).map_err(|_| {
                Failure::new(Reason::Malformed, "the Rekor bundle's logID is not hex")
            })?,
            set: Some(STANDARD.decode(b.set.trim()).map_err(|_| {
                Failure::new(
                    Reason::Malformed,
                    "the Rekor bundle's SignedEntryTimestamp is not base64",
                )
            })?),
        })
    }

    /// The bytes the SET signs: RFC 8785 canonical JSON of the entry summary. Written by hand
    /// because the key order is part of the signature and must not depend on serde_json
    /// features; the two strings go through serde_json for escaping.
    pub fn set_message(&self) -> Vec<u8> {
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        format!(
            r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
            s(&self.body_b64),
            self.integrated_time,
            s(&hex::encode(&self.log_id)),
            self.log_index
        )
        .into_bytes()
    }

    /// The integrated time as a `SystemTime`.
    pub fn time(&self) -> Result<SystemTime, Failure> {
        u64::try_from(self.integrated_time)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
            .map_err(|_| Failure::new(Reason::TimestampInvalid, "negative integratedTime"))
    }

    /// The decoded body.
    pub fn body(&self) -> Result<Vec<u8>, Failure> {
        STANDARD
            .decode(self.body_b64.trim())
            .map_err(|_| tlog("the log entry body is not base64"))
    }

    /// Finds the log key by log id and verifies the SET; returns the log and the integrated
    /// time, which must not be in the future nor outside the key's validity window.
    pub fn verify_set<'r>(
        &self,
        root: &'r TrustRoot,
        now: SystemTime,
    ) -> Result<(&'r LogKey, SystemTime), Failure> {
        let log = self.log(root)?;
        let set = self.set.as_deref().ok_or_else(|| {
            tlog("the log entry has no signed entry timestamp (inclusion promise)")
        })?;
        if !log_signature_verifies(&log.key, &self.set_message(), set) {
            return Err(tlog(format!(
                "the signed entry timestamp does not verify with the key of log {}",
                hex::encode(&self.log_id)
            )));
        }
        let t = self.time()?;
        if t > now {
            return Err(Failure::new(
                Reason::TimestampInvalid,
                format!("integratedTime {} is in the future", self.integrated_time),
            ));
        }
        if !log.valid_for.contains(t) {
            return Err(tlog(format!(
                "log {} was not valid at integratedTime {}",
                hex::encode(&self.log_id),
                self.integrated_time
            )));
        }
        Ok((log, t))
    }

    /// The trust root's log this entry names.
    pub fn log<'r>(&self, root: &'r TrustRoot) -> Result<&'r LogKey, Failure> {
        root.tlogs
            .iter()
            .find(|l| l.log_id == self.log_id)
            .ok_or_else(|| {
                tlog(format!(
                    "log id {} is not a Rekor log of the trust root",
                    hex::encode(&self.log_id)
                ))
            })
    }
}

/// Who signed, as the log entry must name them.
pub enum Signer<'a> {
    /// DER certificate (keyless).
    Certificate(&'a [u8]),
    /// DER SubjectPublicKeyInfo (keys).
    Key(&'a [u8]),
}

impl Signer<'_> {
    /// Whether a base64 PEM from a log entry names this signer.
    fn matches_b64_pem(&self, b64_pem: &str) -> bool {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
        let Ok(pem) = STANDARD.decode(b64_pem.trim()) else {
            return false;
        };
        match self {
            Signer::Certificate(der) => {
                CertificateDer::from_pem_slice(&pem).is_ok_and(|c| c.as_ref() == *der)
            }
            Signer::Key(der) => {
                SubjectPublicKeyInfoDer::from_pem_slice(&pem).is_ok_and(|k| k.as_ref() == *der)
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Body {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct HashedRekord {
    data: HrData,
    signature: HrSignature,
}
#[derive(serde::Deserialize)]
struct HrData {
    hash: Hash,
}
#[derive(serde::Deserialize)]
struct Hash {
    algorithm: String,
    value: String,
}
#[derive(serde::Deserialize)]
struct HrSignature {
    content: String,
    #[serde(rename = "publicKey")]
    public_key: HrKey,
}
#[derive(serde::Deserialize)]
struct HrKey {
    content: String,
}

#[derive(serde::Deserialize)]
struct Dsse {
    #[serde(rename = "payloadHash")]
    payload_hash: Hash,
    signatures: Vec<DsseSig>,
}
#[derive(serde::Deserialize)]
struct DsseSig {
    signature: String,
    verifier: String,
}

fn parse_body(body: &[u8], kind: &str) -> Result<serde_json::Value, Failure> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| tlog(format!("the log entry body is not a Rekor entry: {e}")))?;
    if b.kind != kind || b.api_version != "0.0.1" {
        return Err(tlog(format!(
            "the log entry is {} {}, expected {kind} 0.0.1",
            b.kind, b.api_version
        )));
    }
    Ok(b.spec)
}

fn same_b64(a: &str, raw: &[u8]) -> bool {
    STANDARD.decode(a.trim()).is_ok_and(|d| d == raw)
}

fn check_hash(h: &Hash, data: &[u8], what: &str) -> Result<(), Failure> {
    let want = hex::encode(digest(&SHA256, data));
    if h.algorithm != "sha256" || !h.value.eq_ignore_ascii_case(&want) {
        return Err(tlog(format!(
            "the log entry records {what} hash {}:{}, not this {what}'s sha256:{want}",
            h.algorithm, h.value
        )));
    }
    Ok(())
}

/// A `hashedrekord` body must record this signature, this signer and SHA-256 of this payload.
pub fn check_hashedrekord(
    body: &[u8],
    signature: &[u8],
    payload: &[u8],
    signer: &Signer<'_>,
) -> Result<(), Failure> {
    let spec: HashedRekord = serde_json::from_value(parse_body(body, "hashedrekord")?)
        .map_err(|e| tlog(format!("the hashedrekord entry is incomplete: {e}")))?;
    if !same_b64(&spec.signature.content, signature) {
        return Err(tlog("the log entry records another signature"));
    }
    if !signer.matches_b64_pem(&spec.signature.public_key.content) {
        return Err(tlog("the log entry records another certificate or key"));
    }
    check_hash(&spec.data.hash, payload, "payload")
}

/// A `dsse` body must record this signature, this signer and SHA-256 of the DSSE payload.
/// (`envelopeHash` is not compared: it hashes the envelope as the log re-serialised it.)
pub fn check_dsse(
    body: &[u8],
    signature: &[u8],
    payload: &[u8],
    signer: &Signer<'_>,
) -> Result<(), Failure> {
    let spec: Dsse = serde_json::from_value(parse_body(body, "dsse")?)
        .map_err(|e| tlog(format!("the dsse entry is incomplete: {e}")))?;
    check_hash(&spec.payload_hash, payload, "payload")?;
    if !spec
        .signatures
        .iter()
        .any(|s| same_b64(&s.signature, signature) && signer.matches_b64_pem(&s.verifier))
    {
        return Err(tlog(
            "the log entry records another signature or another certificate or key",
        ));
    }
    Ok(())
}

/// An RFC 9162 inclusion proof with its signed checkpoint.
pub struct InclusionProof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    /// The signed note text.
    pub checkpoint: String,
}

impl InclusionProof {
    /// Verifies that `body` is the leaf at `log_index` of the tree with `root_hash`, and that
    /// the log's key signed a checkpoint for that root and size.
    pub fn verify(&self, body: &[u8], log: &LogKey) -> Result<(), Failure> {
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(body);
        let leaf = digest(&SHA256, &leaf).as_ref().to_vec();
        if !verify_inclusion(
            self.log_index,
            self.tree_size,
            &leaf,
            &self.hashes,
            &self.root_hash,
        ) {
            return Err(tlog("the inclusion proof does not lead to its root hash"));
        }
        let (size, root) = verify_checkpoint(&self.checkpoint, log)?;
        if size != self.tree_size || root != self.root_hash {
            return Err(tlog(
                "the checkpoint is for another tree than the inclusion proof",
            ));
        }
        Ok(())
    }
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &[u8],
    proof: &[Vec<u8>],
    root: &[u8],
) -> bool {
    if index >= size {
        return false;
    }
    let node = |l: &[u8], r: &[u8]| {
        let mut b = Vec::with_capacity(65);
        b.push(1u8);
        b.extend_from_slice(l);
        b.extend_from_slice(r);
        digest(&SHA256, &b).as_ref().to_vec()
    };
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf.to_vec();
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == root
}

/// Verifies a signed-note checkpoint with the log key; returns (tree size, root hash).
pub fn verify_checkpoint(note: &str, log: &LogKey) -> Result<(u64, Vec<u8>), Failure> {
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or_else(|| tlog("the checkpoint is not a signed note"))?;
    let signed = format!("{text}\n");
    let mut lines = text.lines();
    let _origin = lines.next();
    let size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| tlog("the checkpoint has no tree size"))?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .ok_or_else(|| tlog("the checkpoint has no root hash"))?;
    let verified = sigs.lines().any(|line| {
        line.strip_prefix("\u{2014} ")
            .and_then(|rest| rest.rsplit_once(' '))
            .and_then(|(_, b64)| STANDARD.decode(b64).ok())
            .is_some_and(|raw| {
                raw.len() > 4 && log_signature_verifies(&log.key, signed.as_bytes(), &raw[4..])
            })
    });
    if !verified {
        return Err(tlog("the checkpoint is not signed by the log's key"));
    }
    Ok((size, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: &[u8]) -> Vec<u8> {
        digest(&SHA256, b).as_ref().to_vec()
    }
    fn leaf(b: &[u8]) -> Vec<u8> {
        h(&[&[0u8][..], b].concat())
    }
    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        h(&[&[1u8][..], l, r].concat())
    }

    #[test]
    fn inclusion_proofs_of_a_five_leaf_tree() {
        let l: Vec<Vec<u8>> = (0u8..5).map(|i| leaf(&[i])).collect();
        let n01 = node(&l[0], &l[1]);
        let n23 = node(&l[2], &l[3]);
        let n0123 = node(&n01, &n23);
        let root = node(&n0123, &l[4]);
        assert!(verify_inclusion(
            2,
            5,
            &l[2],
            &[l[3].clone(), n01.clone(), l[4].clone()],
            &root
        ));
        assert!(verify_inclusion(
            4,
            5,
            &l[4],
            std::slice::from_ref(&n0123),
            &root
        ));
        assert!(!verify_inclusion(
            4,
            5,
            &l[3],
            std::slice::from_ref(&n0123),
            &root
        ));
        assert!(!verify_inclusion(
            5,
            5,
            &l[4],
            std::slice::from_ref(&n0123),
            &root
        ));
        assert!(!verify_inclusion(
            3,
            5,
            &l[2],
            &[l[3].clone(), n01, l[4].clone()],
            &root
        ));
    }

    #[test]
    fn set_message_is_canonical_json() {
        let e = Entry {
            body_b64: "Ym9keQ==".into(),
            integrated_time: 1700000000,
            log_index: 7,
            log_id: vec![0xab, 0xcd],
            set: None,
        };
        assert_eq!(
            String::from_utf8(e.set_message()).unwrap(),
            r#"{"body":"Ym9keQ==","integratedTime":1700000000,"logID":"abcd","logIndex":7}"#
        );
    }
}
