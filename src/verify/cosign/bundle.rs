//! Sigstore bundles (v0.3), as cosign v3 attaches them to an image as OCI referrers.
//!
//! A signature bundle holds a DSSE envelope around an in-toto v1 statement whose subject is the
//! image digest and whose predicateType is `https://sigstore.dev/cosign/sign/v1`; the DSSE
//! signature covers the PAE encoding (`DSSEv1 <len> <type> <len> <payload>`), never the bare
//! payload. Bundles with other predicate types are attestations (SBOMs, provenance), not
//! signatures: they are skipped with a detail saying so, and never count as a pass.
//!
//! Verified: the DSSE signature (certificate key or a trusted key); the identity; the log
//! entry (a `dsse` 0.0.1 entry recording this signature, signer and payload hash, with a SET,
//! an inclusion proof plus signed checkpoint, or both, each checked when present); the trusted
//! times (the SET's integrated time and every RFC 3161 timestamp over the signature, at least
//! one required); and the certificate chain, usage and SCT at every one of those times. Not
//! verified: `envelopeHash` of the log entry (the log's re-serialisation of the envelope),
//! Rekor v2 entries (`dsse` 0.0.2), checkpoint consistency with other views of the log
//! (offline), and `messageSignature` bundles (blob signatures, which name no image).
//!
//! Like `verify`: pure; must not import `registry`, `discovery` or hyper.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::image::Digest;
use crate::policy::cosign::{CosignAuthority, Keyless};
use crate::reason::Reason;
use crate::verify::format::{Layers, Place, Predicate, ReferrerSource, Source};
use crate::verify::{Context, Evidence, Failure};

use super::certificate::Leaf;
use super::key_verifies;
use super::rekor::{Entry, InclusionProof, Signer, check_dsse};

/// The bundle media types accepted, newest first: the one definition, used both for the
/// bundle's own `mediaType` and for the `artifactType` of the referrer that carries it (the
/// Sigstore OCI layout makes them equal; cosign v3 writes v0.3). v0.1/v0.2 differ only in how
/// the certificate is carried.
pub const MEDIA_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
/// The predicate type of a cosign image signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The annotation cosign v3 puts on each bundle referrer (and the referrers index copies): the
/// predicate type of the statement inside.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// Where discovery finds bundles: referrers of one of [`MEDIA_TYPES`], in the second round
/// (only when the `.sig` tag satisfied no authority). cosign v3 attestations (SBOMs,
/// provenance, scans) share the signature's artifact type and accumulate; the predicate-type
/// annotation sets them aside without a fetch, so they cannot use up the attempts.
pub const REFERRER: Source = Source {
    stage: 1,
    place: Place::Referrers(ReferrerSource {
        artifact_types: MEDIA_TYPES,
        name: "a Sigstore bundle",
        predicate: Some(Predicate {
            annotation: PREDICATE_ANNOTATION,
            signature: SIGN_PREDICATE,
        }),
        layers: Layers::First,
    }),
};
const IN_TOTO: &str = "application/vnd.in-toto+json";

fn malformed(d: impl Into<String>) -> Failure {
    Failure::new(Reason::Malformed, d)
}

/// Protobuf JSON writes int64 as strings; accept numbers too.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match <N as serde::Deserialize>::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    #[serde(default)]
    dsse_envelope: Option<Envelope>,
    #[serde(default)]
    message_signature: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    public_key: Option<serde_json::Value>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampData>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampData {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestamp>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedTimestamp {
    signed_timestamp: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(serde::Deserialize)]
struct Chain {
    certificates: Vec<RawBytes>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntry {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    log_id: LogId,
    kind_version: KindVersion,
    #[serde(deserialize_with = "int64")]
    integrated_time: i64,
    #[serde(default)]
    inclusion_promise: Option<Promise>,
    #[serde(default)]
    inclusion_proof: Option<Proof>,
    canonicalized_body: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(serde::Deserialize)]
struct KindVersion {
    kind: String,
    version: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Proof {
    #[serde(deserialize_with = "int64")]
    log_index: i64,
    root_hash: String,
    #[serde(deserialize_with = "int64")]
    tree_size: i64,
    hashes: Vec<String>,
    checkpoint: Checkpoint,
}

#[derive(serde::Deserialize)]
struct Checkpoint {
    envelope: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSig>,
}

#[derive(serde::Deserialize)]
struct EnvelopeSig {
    sig: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<StatementSubject>,
    predicate_type: String,
}

#[derive(serde::Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// DSSE pre-authentication encoding (DSSE v1).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// What a bundle turned out to be, when it is not a valid signature of the image.
#[derive(Debug)]
pub enum Skip {
    /// An attestation of another predicate type: not a signature.
    NotASignature(String),
    /// A signature bundle that failed.
    Failed(Failure),
}

impl From<Failure> for Skip {
    fn from(f: Failure) -> Self {
        Skip::Failed(f)
    }
}

/// Verifies one bundle as a cosign signature of `digest` under `authority`: the envelope and
/// its statement (`Signed::open`), the signer (`signer`), the statement's subject, then
/// the log entries and trusted times when a log is required (`log_and_times`).
pub fn verify_bundle(
    authority: &CosignAuthority,
    digest: &Digest,
    bytes: &[u8],
    ctx: &Context,
) -> Result<Evidence, Skip> {
    let b: Bundle = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not a Sigstore bundle: {e}")))?;
    if !MEDIA_TYPES.contains(&b.media_type.as_str()) {
        return Err(malformed(format!(
            "bundle media type {:?} is not supported",
            b.media_type
        ))
        .into());
    }
    let signed = Signed::open(&b)?;
    // The signer first: a certificate under keyless, or one of the authority's keys.
    let signer = signer(authority, &b.verification_material, &signed)?;
    // The statement must name this image: checked before the log so a replayed bundle of
    // another image says so plainly.
    check_subject(&signed.statement, digest)?;
    let log_note = if signer.leaf.is_some() || authority.tlog_required {
        log_and_times(authority, &b.verification_material, &signed, &signer, ctx)?
    } else {
        String::new()
    };
    Ok(Evidence {
        summary: format!("cosign bundle signed by {}{log_note}", signer.who),
        logged: Vec::new(),
        valid_until: None,
        expires: None,
    })
}

/// A bundle's DSSE envelope, opened: the statement it carries and the signature over it.
struct Signed {
    /// The DSSE payload (the in-toto statement's bytes).
    payload: Vec<u8>,
    statement: Statement,
    /// The DSSE signature.
    raw: Vec<u8>,
    /// What the signature covers: the PAE encoding of the payload.
    pae: Vec<u8>,
}

impl Signed {
    /// The envelope of a signature bundle; other bundles (blob signatures, attestations of
    /// another predicate type) are [`Skip::NotASignature`].
    fn open(b: &Bundle) -> Result<Signed, Skip> {
        let env = match (&b.dsse_envelope, &b.message_signature) {
            (Some(env), _) => env,
            (None, Some(_)) => {
                return Err(Skip::NotASignature(
                    "a message-signature bundle (a signed blob) names no image".into(),
                ));
            }
            (None, None) => return Err(malformed("the bundle has no DSSE envelope").into()),
        };
        if env.payload_type != IN_TOTO {
            return Err(Skip::NotASignature(format!(
                "DSSE payload type {:?} is not an in-toto statement",
                env.payload_type
            )));
        }
        let payload = STANDARD
            .decode(env.payload.trim())
            .map_err(|_| malformed("the DSSE payload is not base64"))?;
        let statement: Statement = serde_json::from_slice(&payload)
            .map_err(|e| malformed(format!("the DSSE payload is not an in-toto statement: {e}")))?;
        if !statement.kind.starts_with("https://in-toto.io/Statement/") {
            return Err(malformed(format!("unknown statement type {:?}", statement.kind)).into());
        }
        if statement.predicate_type != SIGN_PREDICATE {
            return Err(Skip::NotASignature(format!(
                "an attestation of predicate type {:?}, not a cosign signature ({SIGN_PREDICATE})",
                statement.predicate_type
            )));
        }
        let [sig] = env.signatures.as_slice() else {
            return Err(malformed(format!(
                "the DSSE envelope has {} signatures, cosign bundles have exactly one",
                env.signatures.len()
            ))
            .into());
        };
        let raw = STANDARD
            .decode(sig.sig.trim())
            .map_err(|_| malformed("the DSSE signature is not base64"))?;
        let pae = pae(&env.payload_type, &payload);
        Ok(Signed {
            payload,
            statement,
            raw,
            pae,
        })
    }
}

/// Who signed a bundle: a Fulcio certificate (keyless) or one of the authority's keys.
struct BundleSigner<'a> {
    leaf: Option<(Leaf, &'a Keyless)>,
    key_der: Option<Vec<u8>>,
    /// In the evidence: `identity …` or `key … (algorithm)`.
    who: String,
}

/// The signer of a bundle: its certificate's key (which must name a trusted identity) or a
/// trusted key must verify the DSSE signature.
fn signer<'a>(
    authority: &'a CosignAuthority,
    material: &Material,
    signed: &Signed,
) -> Result<BundleSigner<'a>, Skip> {
    let cert_der = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => Some(c.raw_bytes.as_str()),
        (None, Some(chain)) => chain.certificates.first().map(|c| c.raw_bytes.as_str()),
        (None, None) => None,
    }
    .map(|s| {
        STANDARD
            .decode(s.trim())
            .map_err(|_| malformed("the bundle certificate is not base64"))
    })
    .transpose()?;
    if let Some(der) = cert_der {
        let Some(keyless) = authority.keyless.as_ref() else {
            return Err(Failure::new(
                Reason::UntrustedSigner,
                "a keyless (certificate) bundle, but this authority trusts keys only",
            )
            .into());
        };
        let leaf = Leaf::from_der(&der)?;
        if !key_verifies(&leaf.key, &signed.pae, &signed.raw) {
            return Err(Failure::new(
                Reason::SignatureInvalid,
                "the DSSE signature does not verify with the bundle certificate's key",
            )
            .into());
        }
        let who = leaf.check_identity(&keyless.identities)?;
        return Ok(BundleSigner {
            leaf: Some((leaf, keyless)),
            key_der: None,
            who,
        });
    }
    if material.public_key.is_none() {
        return Err(malformed("the bundle has neither a certificate nor a public key").into());
    }
    let key = authority
        .keys
        .iter()
        .find(|k| key_verifies(k, &signed.pae, &signed.raw))
        .ok_or_else(|| {
            Failure::new(
                Reason::UntrustedSigner,
                "the bundle's DSSE signature verifies with none of the trusted keys",
            )
        })?;
    Ok(BundleSigner {
        leaf: None,
        key_der: Some(key.der.clone()),
        who: format!(
            "key {} ({})",
            key.fingerprint.short(),
            key.algorithm.as_str()
        ),
    })
}

/// The statement must name `digest` among its subjects.
fn check_subject(statement: &Statement, digest: &Digest) -> Result<(), Failure> {
    let hex = digest.hex();
    let algorithm = digest.as_str().split(':').next().unwrap_or("sha256");
    if statement.subject.iter().any(|s| {
        s.digest
            .get(algorithm)
            .is_some_and(|v| v.eq_ignore_ascii_case(hex))
    }) {
        return Ok(());
    }
    let named: Vec<String> = statement
        .subject
        .iter()
        .flat_map(|s| s.digest.iter().map(|(a, v)| format!("{a}:{v}")))
        .collect();
    Err(Failure::new(
        Reason::PayloadMismatch,
        format!("the bundle signs {named:?}, not this image's digest"),
    ))
}

/// The transparency log and the trusted times: a log entry recording this signature, every
/// established time (the SET's integrated time and each RFC 3161 timestamp, at least one),
/// and for a certificate its chain, usage and SCT at every one of those times. Returns the
/// evidence's note.
fn log_and_times(
    authority: &CosignAuthority,
    material: &Material,
    signed: &Signed,
    signer: &BundleSigner<'_>,
    ctx: &Context,
) -> Result<String, Failure> {
    let root = authority.trust_root.as_deref().ok_or_else(|| {
        Failure::new(
            Reason::Internal,
            "a transparency log is required but there is no trust root",
        )
    })?;
    let log_signer = match (&signer.leaf, &signer.key_der) {
        (Some((l, _)), _) => Signer::Certificate(&l.der),
        (None, Some(k)) => Signer::Key(k),
        (None, None) => return Err(malformed("no signer")),
    };
    let (entry, set_time) = verify_entries(
        &material.tlog_entries,
        root,
        ctx,
        &signed.raw,
        &signed.payload,
        &log_signer,
    )?;
    let mut log_note = String::new();
    // Every established time: the SET's integrated time and each RFC 3161 timestamp.
    let mut times = Vec::new();
    if let Some(t) = set_time {
        times.push((
            t,
            format!(
                "Rekor entry {} at {}",
                entry.log_index, entry.integrated_time
            ),
        ));
    } else {
        log_note.push_str(&format!(
            ", Rekor entry {} (inclusion proof)",
            entry.log_index
        ));
    }
    for (i, ts) in material
        .timestamp_verification_data
        .iter()
        .flat_map(|d| &d.rfc3161_timestamps)
        .enumerate()
    {
        let token = STANDARD
            .decode(ts.signed_timestamp.trim())
            .map_err(|_| Failure::new(Reason::Malformed, format!("timestamp {i} is not base64")))?;
        let (t, tsa) = super::timestamp::verify(&token, &signed.raw, root)?;
        if t > ctx.now {
            return Err(Failure::new(
                Reason::TimestampInvalid,
                "a timestamp is in the future",
            ));
        }
        times.push((t, format!("timestamp from {tsa:?}")));
    }
    if times.is_empty() {
        return Err(Failure::new(
            Reason::TimestampInvalid,
            "no trusted time: the log entry has no inclusion promise and there is no RFC 3161 timestamp",
        ));
    }
    if let Some((leaf, keyless)) = &signer.leaf {
        let at: Vec<SystemTime> = times.iter().map(|(t, _)| *t).collect();
        log_note = format!("{}{log_note}", certificate_note(leaf, keyless, root, &at)?);
    }
    for (_, what) in &times {
        log_note.push_str(&format!(", {what}"));
    }
    Ok(log_note)
}

/// A keyless signer's certificate: its chain valid at every established time, its usage, and
/// its SCT when the authority requires one. Returns the evidence's note.
fn certificate_note(
    leaf: &Leaf,
    keyless: &Keyless,
    root: &crate::policy::cosign::TrustRoot,
    times: &[SystemTime],
) -> Result<String, Failure> {
    let mut ca_name = String::new();
    let mut issuer_der: &[u8] = &[];
    for t in times {
        let (ca, issuer) = leaf.verify_chain(root, *t)?;
        ca_name = ca.name.clone();
        issuer_der = issuer;
    }
    leaf.check_usage()?;
    let sct = if keyless.ctlog_required {
        format!(", SCT from {}", leaf.verify_sct(root, issuer_der)?)
    } else {
        String::new()
    };
    Ok(format!(", certificate from {ca_name:?}{sct}"))
}

/// The first tlog entry that verifies fully: a `dsse` entry with a valid SET or a valid
/// inclusion proof (both checked when both are present), and a body recording this signature.
/// The time is the SET's integrated time; without a SET the entry proves inclusion only.
fn verify_entries(
    entries: &[TlogEntry],
    root: &crate::policy::cosign::TrustRoot,
    ctx: &Context,
    raw: &[u8],
    payload: &[u8],
    signer: &Signer<'_>,
) -> Result<(Entry, Option<std::time::SystemTime>), Failure> {
    let mut last = Failure::new(
        Reason::TransparencyLog,
        "the bundle has no transparency-log entry",
    );
    for e in entries {
        match verify_entry(e, root, ctx, raw, payload, signer) {
            Ok(ok) => return Ok(ok),
            Err(f) => last = f,
        }
    }
    Err(last)
}

fn verify_entry(
    e: &TlogEntry,
    root: &crate::policy::cosign::TrustRoot,
    ctx: &Context,
    raw: &[u8],
    payload: &[u8],
    signer: &Signer<'_>,
) -> Result<(Entry, Option<std::time::SystemTime>), Failure> {
    let tlog = |d: &str| Failure::new(Reason::TransparencyLog, d.to_string());
    if e.kind_version.kind != "dsse" || e.kind_version.version != "0.0.1" {
        return Err(Failure::new(
            Reason::TransparencyLog,
            format!(
                "log entry kind {} {} is not supported (dsse 0.0.1 is)",
                e.kind_version.kind, e.kind_version.version
            ),
        ));
    }
    let set = e
        .inclusion_promise
        .as_ref()
        .map(|p| STANDARD.decode(p.signed_entry_timestamp.trim()))
        .transpose()
        .map_err(|_| tlog("the signed entry timestamp is not base64"))?;
    if set.is_none() && e.inclusion_proof.is_none() {
        return Err(tlog(
            "the log entry has neither an inclusion promise nor an inclusion proof",
        ));
    }
    let entry = Entry {
        body_b64: e.canonicalized_body.clone(),
        integrated_time: e.integrated_time,
        log_index: e.log_index,
        log_id: STANDARD
            .decode(e.log_id.key_id.trim())
            .map_err(|_| tlog("the log id is not base64"))?,
        set,
    };
    let (log, at) = match entry.set {
        Some(_) => {
            let (log, at) = entry.verify_set(root, ctx.now)?;
            (log, Some(at))
        }
        None => (entry.log(root)?, None),
    };
    let body = entry.body()?;
    if let Some(p) = &e.inclusion_proof {
        let proof = InclusionProof {
            log_index: u64::try_from(p.log_index).map_err(|_| tlog("negative proof index"))?,
            tree_size: u64::try_from(p.tree_size).map_err(|_| tlog("negative tree size"))?,
            root_hash: STANDARD
                .decode(p.root_hash.trim())
                .map_err(|_| tlog("the root hash is not base64"))?,
            hashes: p
                .hashes
                .iter()
                .map(|h| STANDARD.decode(h.trim()))
                .collect::<Result<_, _>>()
                .map_err(|_| tlog("a proof hash is not base64"))?,
            checkpoint: p.checkpoint.envelope.clone(),
        };
        proof.verify(&body, log)?;
    }
    check_dsse(&body, raw, payload, signer)?;
    Ok((entry, at))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::verify;
    use super::*;
    use crate::verify::Outcome;
    use aws_lc_rs::digest::{SHA256, digest};
    use rcgen::{KeyPair, SigningKey};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn statement(digest_hex: &str, predicate_type: &str) -> Vec<u8> {
        serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "registry.test/app", "digest": {"sha256": digest_hex}}],
            "predicateType": predicate_type,
            "predicate": {}
        })
        .to_string()
        .into_bytes()
    }

    fn h(b: &[u8]) -> Vec<u8> {
        digest(&SHA256, b).as_ref().to_vec()
    }

    struct Made {
        json: serde_json::Value,
    }

    impl Made {
        fn bytes(&self) -> bytes::Bytes {
            self.json.to_string().into_bytes().into()
        }
    }

    /// A cosign-v3-like bundle: DSSE over `stmt`, signed by `key`, the certificate (keyless)
    /// or a public-key hint, and a dsse log entry with SET, inclusion proof and checkpoint.
    fn make(w: &World, key: &KeyPair, cert: Option<&[u8]>, stmt: &[u8]) -> Made {
        let raw = key.sign(&pae(IN_TOTO, stmt)).unwrap();
        let verifier_pem = match cert {
            Some(c) => pem_cert(c),
            None => key.public_key_pem(),
        };
        let body = serde_json::json!({
            "apiVersion": "0.0.1", "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex::encode(h(b"envelope"))},
                "payloadHash": {"algorithm": "sha256", "value": hex::encode(h(stmt))},
                "signatures": [{"signature": STANDARD.encode(&raw), "verifier": STANDARD.encode(&verifier_pem)}]
            }
        })
        .to_string();
        let body_b64 = STANDARD.encode(&body);
        let time = T0 + 60;
        let index = 7;
        let set_msg = format!(
            r#"{{"body":"{body_b64}","integratedTime":{time},"logID":"{}","logIndex":{index}}}"#,
            hex::encode(&w.rekor.id)
        );
        let set = w.rekor.sign(set_msg.as_bytes());
        // A two-leaf tree: some other entry, then ours.
        let l0 = h(&[&[0u8][..], b"other entry"].concat());
        let l1 = h(&[&[0u8][..], body.as_bytes()].concat());
        let root = h(&[&[1u8][..], &l0, &l1].concat());
        let note = format!("rekor.test - 1\n2\n{}\n", STANDARD.encode(&root));
        let mut note_sig = w.rekor.id[..4].to_vec();
        note_sig.extend_from_slice(&w.rekor.sign(note.as_bytes()));
        let checkpoint = format!(
            "{note}\n\u{2014} rekor.test {}\n",
            STANDARD.encode(note_sig)
        );
        let material = match cert {
            Some(c) => serde_json::json!({"certificate": {"rawBytes": STANDARD.encode(c)}}),
            None => serde_json::json!({"publicKey": {"hint": "test"}}),
        };
        let mut material = material;
        material["tlogEntries"] = serde_json::json!([{
            "logIndex": index.to_string(),
            "logId": {"keyId": STANDARD.encode(&w.rekor.id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": STANDARD.encode(&set)},
            "inclusionProof": {
                "logIndex": "1", "rootHash": STANDARD.encode(&root), "treeSize": "2",
                "hashes": [STANDARD.encode(&l0)],
                "checkpoint": {"envelope": checkpoint}
            },
            "canonicalizedBody": body_b64
        }]);
        Made {
            json: serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": material,
                "dsseEnvelope": {
                    "payload": STANDARD.encode(stmt),
                    "payloadType": IN_TOTO,
                    "signatures": [{"sig": STANDARD.encode(&raw), "keyid": ""}]
                }
            }),
        }
    }

    fn keyless_bundle(w: &World, stmt: &[u8]) -> Made {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = w.fulcio.leaf(&key, &LeafSpec::default(), Some(&w.ct));
        make(w, &key, Some(&cert), stmt)
    }

    fn run(auth: &CosignAuthority, d: &str, b: &Made) -> Outcome {
        verify(auth, &d.parse().unwrap(), &[], &[b.bytes()], &ctx())
    }

    #[track_caller]
    fn failed(o: Outcome) -> Failure {
        match o {
            Outcome::Failed(f) => f,
            Outcome::Trusted(e) => panic!("unexpectedly trusted: {}", e.summary),
        }
    }

    #[test]
    fn valid_keyless_bundle_is_trusted() {
        let w = World::new();
        let b = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        match run(&w.default_authority(), D1, &b) {
            Outcome::Trusted(e) => assert!(e.summary.contains(EMAIL), "{}", e.summary),
            Outcome::Failed(f) => panic!("{f:?}"),
        }
    }

    #[test]
    fn bundle_for_another_digest_is_a_payload_mismatch() {
        let w = World::new();
        let b = keyless_bundle(&w, &statement(&D2[7..], SIGN_PREDICATE));
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::PayloadMismatch
        );
    }

    #[test]
    fn attestation_of_another_predicate_type_is_not_a_signature() {
        let w = World::new();
        let b = keyless_bundle(&w, &statement(&D1[7..], "https://spdx.dev/Document"));
        let f = failed(run(&w.default_authority(), D1, &b));
        assert_eq!(f.reason, Reason::NoSignature);
        assert!(f.detail.contains("spdx"), "{}", f.detail);
    }

    #[test]
    fn bundle_with_tampered_dsse_payload_is_rejected() {
        let w = World::new();
        let mut b = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        let mut other = statement(&D1[7..], SIGN_PREDICATE);
        other.extend_from_slice(b" ");
        b.json["dsseEnvelope"]["payload"] = STANDARD.encode(&other).into();
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::SignatureInvalid
        );
    }

    #[test]
    fn bundle_with_bad_inclusion_proof_or_set_is_rejected() {
        let w = World::new();
        let good = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        let mut b = Made {
            json: good.json.clone(),
        };
        b.json["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"] =
            serde_json::json!([STANDARD.encode([9u8; 32])]);
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::TransparencyLog
        );
        let mut b = Made {
            json: good.json.clone(),
        };
        b.json["verificationMaterial"]["tlogEntries"][0]["integratedTime"] =
            (T0 + 61).to_string().into();
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::TransparencyLog
        );
        let mut b = Made { json: good.json };
        b.json["verificationMaterial"]["tlogEntries"][0]
            .as_object_mut()
            .unwrap()
            .remove("inclusionPromise");
        // Inclusion is still proven, but nothing vouches for the signing time.
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::TimestampInvalid
        );
    }

    #[test]
    fn bundle_log_entry_for_another_signature_is_rejected() {
        let w = World::new();
        let a = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        let b = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        let mut grafted = Made { json: a.json };
        grafted.json["verificationMaterial"]["tlogEntries"] =
            b.json["verificationMaterial"]["tlogEntries"].clone();
        assert_eq!(
            failed(run(&w.default_authority(), D1, &grafted)).reason,
            Reason::TransparencyLog
        );
    }

    #[test]
    fn key_based_bundle_is_trusted_by_its_key_only() {
        let w = World::new();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let b = make(&w, &key, None, &statement(&D1[7..], SIGN_PREDICATE));
        let pk = crate::policy::cosign::PublicKey::from_pem(&key.public_key_pem()).unwrap();
        let mut auth = CosignAuthority::from_keys(vec![pk]);
        assert!(matches!(run(&auth, D1, &b), Outcome::Trusted(_)));
        // With the tlog required, the dsse entry is checked against the key too.
        auth.tlog_required = true;
        auth.trust_root = Some(std::sync::Arc::new(w.trust_root()));
        assert!(matches!(run(&auth, D1, &b), Outcome::Trusted(_)));
        let other = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let auth = CosignAuthority::from_keys(vec![
            crate::policy::cosign::PublicKey::from_pem(&other.public_key_pem()).unwrap(),
        ]);
        assert_eq!(failed(run(&auth, D1, &b)).reason, Reason::UntrustedSigner);
    }

    #[test]
    fn message_signature_bundles_are_not_image_signatures() {
        let w = World::new();
        let mut b = keyless_bundle(&w, &statement(&D1[7..], SIGN_PREDICATE));
        let obj = b.json.as_object_mut().unwrap();
        obj.remove("dsseEnvelope");
        obj.insert(
            "messageSignature".into(),
            serde_json::json!({"messageDigest": {"algorithm": "SHA2_256", "digest": "AA=="}, "signature": "AA=="}),
        );
        let f = failed(run(&w.default_authority(), D1, &b));
        assert_eq!(f.reason, Reason::NoSignature);
        assert!(f.detail.contains("message-signature"), "{}", f.detail);
    }

    #[test]
    fn key_based_bundle_without_log_entry_fails_when_tlog_required() {
        let w = World::new();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut b = make(&w, &key, None, &statement(&D1[7..], SIGN_PREDICATE));
        b.json["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
        let pk = crate::policy::cosign::PublicKey::from_pem(&key.public_key_pem()).unwrap();
        let mut auth = CosignAuthority::from_keys(vec![pk]);
        auth.tlog_required = true;
        auth.trust_root = Some(std::sync::Arc::new(w.trust_root()));
        assert_eq!(failed(run(&auth, D1, &b)).reason, Reason::TransparencyLog);
    }

    #[test]
    fn bundle_signed_by_wrong_identity_or_outside_the_trust_root() {
        let w = World::new();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spec = LeafSpec {
            san: "evil@example.com.attacker",
            ..LeafSpec::default()
        };
        let cert = w.fulcio.leaf(&key, &spec, Some(&w.ct));
        let b = make(&w, &key, Some(&cert), &statement(&D1[7..], SIGN_PREDICATE));
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::IdentityMismatch
        );
        let foreign = Fulcio::new();
        let cert = foreign.leaf(&key, &LeafSpec::default(), Some(&w.ct));
        let b = make(&w, &key, Some(&cert), &statement(&D1[7..], SIGN_PREDICATE));
        assert_eq!(
            failed(run(&w.default_authority(), D1, &b)).reason,
            Reason::CertificateInvalid
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bundle_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let w = World::new();
            let _ = verify_bundle(&w.default_authority(), &D1.parse().unwrap(), &bytes, &ctx());
        }
    }

    /// A bundle whose log entry has an inclusion proof but no promise, with an RFC 3161
    /// timestamp over the signature for its time (the shape of newer Sigstore bundles).
    #[test]
    fn bundle_with_inclusion_proof_and_rfc3161_timestamp_is_trusted() {
        let Some(tsa) = Tsa::new() else {
            return;
        };
        let w = World::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let spec = LeafSpec {
            from: now - 60,
            ..LeafSpec::default()
        };
        let cert = w.fulcio.leaf(&key, &spec, Some(&w.ct));
        let mut b = make(&w, &key, Some(&cert), &statement(&D1[7..], SIGN_PREDICATE));
        b.json["verificationMaterial"]["tlogEntries"][0]
            .as_object_mut()
            .unwrap()
            .remove("inclusionPromise");
        let sig = STANDARD
            .decode(
                b.json["dsseEnvelope"]["signatures"][0]["sig"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        b.json["verificationMaterial"]["timestampVerificationData"] = serde_json::json!({
            "rfc3161Timestamps": [{"signedTimestamp": STANDARD.encode(tsa.stamp(&sig))}]
        });
        let mut root = w.trust_root();
        root.timestamp_authorities =
            vec![tsa.authority(vec![tsa.leaf_der.clone(), tsa.root_der.clone()])];
        let mut auth = w.default_authority();
        auth.trust_root = Some(std::sync::Arc::new(root));
        let later = Context {
            now: at(now + 3600),
        };
        let run = |b: &Made| verify(&auth, &D1.parse().unwrap(), &[], &[b.bytes()], &later);
        match run(&b) {
            Outcome::Trusted(e) => assert!(e.summary.contains("timestamp from"), "{}", e.summary),
            Outcome::Failed(f) => panic!("{f:?}"),
        }
        // The same timestamp over another signature does not count.
        let mut other = Made {
            json: b.json.clone(),
        };
        other.json["verificationMaterial"]["timestampVerificationData"] = serde_json::json!({
            "rfc3161Timestamps": [{"signedTimestamp": STANDARD.encode(tsa.stamp(b"other"))}]
        });
        assert_eq!(failed(run(&other)).reason, Reason::TimestampInvalid);
        // A certificate that had expired at the timestamp's time.
        let old = LeafSpec {
            from: now - 3600,
            ..LeafSpec::default()
        };
        let cert = w.fulcio.leaf(&key, &old, Some(&w.ct));
        let mut expired = make(&w, &key, Some(&cert), &statement(&D1[7..], SIGN_PREDICATE));
        expired.json["verificationMaterial"]["tlogEntries"][0]
            .as_object_mut()
            .unwrap()
            .remove("inclusionPromise");
        let sig = STANDARD
            .decode(
                expired.json["dsseEnvelope"]["signatures"][0]["sig"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        expired.json["verificationMaterial"]["timestampVerificationData"] = serde_json::json!({
            "rfc3161Timestamps": [{"signedTimestamp": STANDARD.encode(tsa.stamp(&sig))}]
        });
        assert_eq!(failed(run(&expired)).reason, Reason::Expired);
    }
}
