//! The closed set of reasons an image is not admitted as trusted.
//!
//! Every failure anywhere in the pipeline maps to one of these. They name the failure in deny
//! messages (with [`Reason::describe`]) and label metrics (with [`Reason::as_str`]): never an
//! error string, so metric cardinality stays bounded. A leaf module: imports nothing.

use std::fmt;

/// Why an image was not verified. `Trusted` is included so metrics can label successes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Trusted,
    /// No policy covers the image and `noMatch` is not `allow`.
    NoPolicy,
    /// The image string in the pod spec is not a valid reference.
    InvalidReference,
    /// No signature artifact of the kinds the policy accepts refers to the digest.
    NoSignature,
    /// Signatures exist, but none is valid for any authority of the policy.
    SignatureInvalid,
    /// A signature verified against a key or certificate the policy does not trust.
    UntrustedSigner,
    /// The signed payload names another image or digest.
    PayloadMismatch,
    /// The certificate chain does not lead to a trusted root, or violates a constraint.
    CertificateInvalid,
    /// The certificate's identity is not one the policy lists.
    IdentityMismatch,
    /// The signature or certificate expired.
    Expired,
    /// A certificate in the chain is revoked.
    Revoked,
    /// The revocation status of a certificate could not be determined (no answer, a stale or
    /// unusable one, "unknown"); the Notary Project counts it as a revocation failure.
    RevocationUnknown,
    /// The timestamp could not be authenticated.
    TimestampInvalid,
    /// A transparency-log entry is missing or does not match.
    TransparencyLog,
    /// A signature artifact or envelope could not be parsed.
    Malformed,
    /// The policy requires images by digest and the workload names a tag alone.
    DigestRequired,
    // Undecidable: these follow the policy's `onError`.
    RegistryUnreachable,
    Throttled,
    Unauthorized,
    NotFound,
    DigestMismatch,
    TooLarge,
    TooManyReferrers,
    DeadlineExceeded,
    Internal,
}

impl Reason {
    /// Every reason, for pre-registering metric label values and for tests.
    pub const ALL: [Reason; 25] = [
        Reason::Trusted,
        Reason::NoPolicy,
        Reason::InvalidReference,
        Reason::NoSignature,
        Reason::SignatureInvalid,
        Reason::UntrustedSigner,
        Reason::PayloadMismatch,
        Reason::CertificateInvalid,
        Reason::IdentityMismatch,
        Reason::Expired,
        Reason::Revoked,
        Reason::RevocationUnknown,
        Reason::TimestampInvalid,
        Reason::TransparencyLog,
        Reason::Malformed,
        Reason::DigestRequired,
        Reason::RegistryUnreachable,
        Reason::Throttled,
        Reason::Unauthorized,
        Reason::NotFound,
        Reason::DigestMismatch,
        Reason::TooLarge,
        Reason::TooManyReferrers,
        Reason::DeadlineExceeded,
        Reason::Internal,
    ];

    /// How much a failure says about why an image is not trusted, to report the most telling
    /// one: a signature that was found but failed says more than "no signature", and a
    /// malformed one less than one that was checked. Private: every choice goes through
    /// [`Reason::outranks`] or [`Reason::most_telling`], so ties keep the first seen everywhere.
    fn telling(self) -> u8 {
        match self {
            Reason::NoSignature => 0,
            Reason::Malformed => 1,
            _ => 2,
        }
    }

    /// Whether a failure for this reason says more than one for `other`: the one ranking of
    /// "the most telling failure". Equally telling reasons do not outrank each other, so the
    /// first seen is kept.
    pub fn outranks(self, other: Reason) -> bool {
        self.telling() > other.telling()
    }

    /// The most telling of `items` by their `reason` ([`Reason::outranks`]); on a tie the
    /// first. `None` when there are none.
    pub fn most_telling<T>(
        items: impl IntoIterator<Item = T>,
        reason: impl Fn(&T) -> Reason,
    ) -> Option<T> {
        items.into_iter().fold(None, |best, item| match best {
            Some(b) if !reason(&item).outranks(reason(&b)) => Some(b),
            _ => Some(item),
        })
    }

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Trusted => "trusted",
            Reason::NoPolicy => "no_policy",
            Reason::InvalidReference => "invalid_reference",
            Reason::NoSignature => "no_signature",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::UntrustedSigner => "untrusted_signer",
            Reason::PayloadMismatch => "payload_mismatch",
            Reason::CertificateInvalid => "certificate_invalid",
            Reason::IdentityMismatch => "identity_mismatch",
            Reason::Expired => "expired",
            Reason::Revoked => "revoked",
            Reason::RevocationUnknown => "revocation_unknown",
            Reason::TimestampInvalid => "timestamp_invalid",
            Reason::TransparencyLog => "transparency_log",
            Reason::Malformed => "malformed",
            Reason::DigestRequired => "digest_required",
            Reason::RegistryUnreachable => "registry_unreachable",
            Reason::Throttled => "throttled",
            Reason::Unauthorized => "unauthorized",
            Reason::NotFound => "not_found",
            Reason::DigestMismatch => "digest_mismatch",
            Reason::TooLarge => "too_large",
            Reason::TooManyReferrers => "too_many_referrers",
            Reason::DeadlineExceeded => "deadline_exceeded",
            Reason::Internal => "internal",
        }
    }

    /// The reason in plain words, as the start of a deny message.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Trusted => "trusted",
            Reason::NoPolicy => "no image policy covers this image",
            Reason::InvalidReference => "the image reference is not valid",
            Reason::NoSignature => "no signature found",
            Reason::SignatureInvalid => "no signature is valid",
            Reason::UntrustedSigner => "signed, but not by a trusted key or certificate",
            Reason::PayloadMismatch => "the signature is for another image",
            Reason::CertificateInvalid => "the signing certificate is not valid",
            Reason::IdentityMismatch => "the signer's identity is not trusted",
            Reason::Expired => "the signature or its certificate has expired",
            Reason::Revoked => "the signing certificate is revoked",
            Reason::RevocationUnknown => {
                "the revocation status of the signing certificate could not be determined"
            }
            Reason::TimestampInvalid => "the signature's timestamp is not valid",
            Reason::TransparencyLog => "the transparency-log entry is missing or does not match",
            Reason::Malformed => "the signature is malformed",
            Reason::DigestRequired => "the policy requires the image by digest",
            Reason::RegistryUnreachable => "the registry is unreachable",
            Reason::Throttled => "the registry is throttling requests",
            Reason::Unauthorized => "the registry refused access",
            Reason::NotFound => "the image was not found in the registry",
            Reason::DigestMismatch => {
                "the registry returned content that does not match its digest"
            }
            Reason::TooLarge => "a registry response is larger than allowed",
            Reason::TooManyReferrers => "the image has more referrers than allowed",
            Reason::DeadlineExceeded => "verification did not finish before the deadline",
            Reason::Internal => "internal error",
        }
    }

    /// Whether this reason means "could not decide" (the policy's `onError` applies) rather
    /// than "decided: not trusted". Undecidable outcomes are never cached.
    pub fn is_undecidable(self) -> bool {
        matches!(
            self,
            Reason::RegistryUnreachable
                | Reason::Throttled
                | Reason::Unauthorized
                | Reason::NotFound
                | Reason::DigestMismatch
                | Reason::TooLarge
                | Reason::TooManyReferrers
                | Reason::DeadlineExceeded
                | Reason::Internal
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_telling_is_a_checked_failure_and_the_first_on_a_tie() {
        fn pick(rs: &[Reason]) -> Option<(usize, &Reason)> {
            Reason::most_telling(rs.iter().enumerate(), |(_, r)| **r)
        }
        assert_eq!(pick(&[]), None);
        let rs = [
            Reason::NoSignature,
            Reason::Malformed,
            Reason::Expired,
            Reason::Revoked,
            Reason::NoSignature,
        ];
        assert_eq!(pick(&rs), Some((2, &Reason::Expired)));
        assert_eq!(pick(&rs[..2]), Some((1, &Reason::Malformed)));
        assert_eq!(
            pick(&[Reason::NoSignature; 2]),
            Some((0, &Reason::NoSignature))
        );
        assert!(!Reason::Expired.outranks(Reason::Revoked));
        assert!(Reason::Malformed.outranks(Reason::NoSignature));
    }

    #[test]
    fn labels_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate label {}", r.as_str());
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(!r.describe().is_empty());
        }
    }
}
