//! From image reports to the admission answer and its words.
//!
//! A deny message names each failing image, its digest, the policy and the reason in plain
//! words. Warnings are short (the API server cuts warnings beyond 4 KiB in total to 256
//! characters each) and free of control characters (it silently drops those). Deny messages
//! have control characters escaped (`\n`, `\u{1b}`): their reasons quote certificate subjects
//! and registry answers, which whoever made them chose.
//!
//! Like `decision`: must not import hyper or Kubernetes types.

use super::{ImageReport, ImageStatus, PolicyResult, PolicyVerdict, Verdict};
use crate::policy::{Mode, NoMatch, OnError};
use crate::reason::Reason;
use crate::telemetry::{escape_controls, needs_escape};
use crate::verify::{AuthorityOutcome, Outcome, format_time};

use std::time::{Duration, SystemTime};

const MAX_WARNING_CHARS: usize = 240;
const MAX_ANNOTATION_CHARS: usize = 1000;

/// What one failing (image, policy) pair contributes to the answer.
enum Effect {
    Deny(String),
    Warn(String),
    Audit(String),
}

pub(super) fn aggregate(images: Vec<ImageReport>, no_match: NoMatch) -> Verdict {
    let mut effects = Vec::new();
    for report in &images {
        let name = report.reference.as_deref().unwrap_or(&report.image);
        match &report.status {
            ImageStatus::InvalidReference { detail } => effects.push(Effect::Deny(format!(
                "image {:?}{} is not a valid image reference: {detail}",
                report.image,
                containers(report)
            ))),
            ImageStatus::NoPolicy { .. } => {
                let text = format!(
                    "image {name} is not covered by any image policy (noMatch: {})",
                    no_match_str(no_match)
                );
                match no_match {
                    NoMatch::Deny => effects.push(Effect::Deny(text)),
                    NoMatch::Warn => effects.push(Effect::Warn(text)),
                    NoMatch::Allow => {}
                }
            }
            ImageStatus::Checked { policies } => {
                for p in policies {
                    if let Some(e) = effect(report, name, p) {
                        effects.push(e);
                    }
                    effects.extend(logged_checks(report, name, p));
                }
            }
        }
    }
    let mut verdict = Verdict {
        allowed: true,
        ..Verdict::default()
    };
    for e in effects {
        match e {
            Effect::Deny(m) => {
                verdict.allowed = false;
                // Reasons quote certificate subjects and registry answers: kubectl prints the
                // message to a terminal, so nothing in it may be a raw control character.
                verdict.denials.push(escape_controls(&m));
            }
            Effect::Warn(m) => verdict.warnings.push(sanitize_warning(&m)),
            Effect::Audit(m) => {
                let key = format!("image-{}", verdict.audit_annotations.len());
                verdict
                    .audit_annotations
                    .insert(key, truncate(&without_controls(&m), MAX_ANNOTATION_CHARS));
            }
        }
    }
    verdict.warnings.dedup();
    verdict.images = images;
    verdict
}

fn effect(report: &ImageReport, name: &str, p: &PolicyResult) -> Option<Effect> {
    let (full, short) = match &*p.verdict {
        PolicyVerdict::Trusted { .. } => return None,
        PolicyVerdict::Untrusted {
            reason,
            authorities,
        } => {
            let digest = digest_words(report);
            (
                format!(
                    "image {name} ({digest}) is not trusted by policy {:?}: {}",
                    p.policy.as_str(),
                    authority_details(authorities)
                ),
                format!(
                    "image {name} is not trusted by policy {:?}: {}",
                    p.policy.as_str(),
                    // The fix is the point of this one: say which reference to write. A policy
                    // with no authority left has no signature reason to give.
                    if *reason == Reason::DigestRequired || authorities.is_empty() {
                        authority_details(authorities)
                    } else {
                        reason.describe().to_string()
                    }
                ),
            )
        }
        PolicyVerdict::Undecided { reason, detail } => {
            let digest = digest_words(report);
            let full = format!(
                "image {name} ({digest}) could not be verified for policy {:?}: {}: {detail}",
                p.policy.as_str(),
                reason.describe()
            );
            if p.on_error == OnError::Allow {
                // Admitted, but never silently: the user and the audit log both hear of it.
                return Some(Effect::Warn(format!(
                    "image {name} could not be verified ({}); admitted because policy {:?} has onError: allow",
                    reason.describe(),
                    p.policy.as_str()
                )));
            }
            let short = format!(
                "image {name} could not be verified for policy {:?}: {}",
                p.policy.as_str(),
                reason.describe()
            );
            (full, short)
        }
    };
    Some(match p.mode {
        Mode::Enforce => Effect::Deny(full),
        Mode::Warn => Effect::Warn(short),
        Mode::Audit => Effect::Audit(format!(
            "policy={} mode=audit image={name} digest={} reason={}",
            p.policy.as_str(),
            report.digest.as_ref().map_or("unknown", |d| d.as_str()),
            p.verdict.reason().as_str()
        )),
    })
}

/// The digest as a deny message names it: short, or `digest unknown`.
fn digest_words(report: &ImageReport) -> String {
    report.digest.as_ref().map_or_else(
        || "digest unknown".to_string(),
        |d| d.short().to_string() + "…",
    )
}

/// A trusted verdict that rests on a signature with failed checks the verification level only
/// logs (Notation permissive/audit, or `override: ...: log`) is admitted, but never silently:
/// a warning for the user and an audit annotation.
fn logged_checks(report: &ImageReport, name: &str, p: &PolicyResult) -> Vec<Effect> {
    let PolicyVerdict::Trusted { authorities } = &*p.verdict else {
        return Vec::new();
    };
    let Some(logged) = authorities.iter().find_map(|a| match &a.result {
        Outcome::Trusted(e) if !e.logged.is_empty() => Some(&e.logged),
        _ => None,
    }) else {
        return Vec::new();
    };
    let more = match logged.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    vec![
        Effect::Warn(format!(
            "image {name} passed policy {:?} with a failed check its verification level only \
             logs: {}{more}",
            p.policy.as_str(),
            logged[0]
        )),
        Effect::Audit(format!(
            "policy={} image={name} digest={} logged={}",
            p.policy.as_str(),
            report.digest.as_ref().map_or("unknown", |d| d.as_str()),
            logged.join("; ")
        )),
    ]
}

/// `authority "a": why; authority "b": why` — or just the why when there is one authority.
fn authority_details(authorities: &[AuthorityOutcome]) -> String {
    let failures: Vec<(&str, String)> = authorities
        .iter()
        .filter_map(|a| match &a.result {
            Outcome::Failed(f) => Some((
                a.authority.as_str(),
                format!("{}: {}", f.reason.describe(), f.detail),
            )),
            Outcome::Trusted(_) => None,
        })
        .collect();
    match failures.as_slice() {
        // Only a policy whose every authority names missing trust material has none.
        [] => "no authority of the policy can trust it: the trust material they name is missing \
               (signet's log and the policy's status name it)"
            .to_string(),
        [(_, only)] => only.clone(),
        many => many
            .iter()
            .map(|(name, why)| format!("authority {name:?}: {why}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn containers(report: &ImageReport) -> String {
    if report.containers.is_empty() {
        String::new()
    } else {
        format!(" (in {})", report.containers.join(", "))
    }
}

fn no_match_str(n: NoMatch) -> &'static str {
    match n {
        NoMatch::Deny => "deny",
        NoMatch::Warn => "warn",
        NoMatch::Allow => "allow",
    }
}

/// Makes a warning kubectl will print: no control characters (the API server drops warnings
/// with `\n` or `\t`), at most 240 characters (it cuts to 256 past 4 KiB in total).
/// Warns about trusted images whose trust lapses within `window` of `now` (a signature that
/// expires, a certificate no timestamp pins), with a kubectl warning and an audit annotation,
/// so that rotation is seen coming rather than met as a denial.
pub(super) fn expiry_notices(verdict: &mut Verdict, now: SystemTime, window: Duration) {
    let mut notices = Vec::new();
    for report in &verdict.images {
        let ImageStatus::Checked { policies } = &report.status else {
            continue;
        };
        let name = report.reference.as_deref().unwrap_or(&report.image);
        for p in policies {
            let PolicyVerdict::Trusted { authorities } = &*p.verdict else {
                continue;
            };
            let Some(expiry) = authorities.iter().find_map(|a| match &a.result {
                Outcome::Trusted(e) => e.expires.clone(),
                Outcome::Failed(_) => None,
            }) else {
                continue;
            };
            let left = expiry.at.duration_since(now).unwrap_or_default();
            if left > window {
                continue;
            }
            let days = left.as_secs() / 86_400;
            let when = match days {
                0 => "within a day".to_string(),
                1 => "in 1 day".to_string(),
                n => format!("in {n} days"),
            };
            notices.push(format!(
                "trust in image {name} under policy {:?} expires {when} ({}): {}; re-sign or rotate before then",
                p.policy.as_str(),
                format_time(expiry.at),
                expiry.what
            ));
        }
    }
    for (i, notice) in notices.into_iter().enumerate() {
        verdict.audit_annotations.insert(
            format!("expiry-{i}"),
            truncate(&without_controls(&notice), MAX_ANNOTATION_CHARS),
        );
        verdict.warnings.push(sanitize_warning(&notice));
    }
}

/// The most warning text one response carries. Past 4,096 characters in total the API server
/// cuts every warning to 256 characters and drops the rest without a word, so signet keeps
/// below it itself and says how many it left out (each is in the log and audit annotations).
const MAX_WARNINGS_CHARS: usize = 4000;

/// Keeps the warnings under [`MAX_WARNINGS_CHARS`] in total, the last one saying how many
/// were left out.
pub(super) fn bound_warnings(warnings: &mut Vec<String>) {
    let mut total = 0;
    for (i, w) in warnings.iter().enumerate() {
        total += w.chars().count();
        // Room for the closing note, whatever the count.
        if total + 80 > MAX_WARNINGS_CHARS {
            let left = warnings.len() - i;
            warnings.truncate(i);
            warnings.push(format!(
                "and {left} more warning(s) not shown; signet's log and the audit annotations have them all"
            ));
            return;
        }
    }
}

fn sanitize_warning(s: &str) -> String {
    truncate(&without_controls(s), MAX_WARNING_CHARS)
}

fn without_controls(s: &str) -> String {
    s.chars()
        .map(|c| if needs_escape(c) { ' ' } else { c })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyName;
    use crate::reason::Reason;
    use crate::verify::{Failure, VerifierKind};

    fn report(verdict: PolicyVerdict, mode: Mode, on_error: OnError) -> ImageReport {
        ImageReport {
            image: "nginx:1.25".into(),
            reference: Some("docker.io/library/nginx:1.25".into()),
            digest: Some(
                "sha256:ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
                    .parse()
                    .unwrap(),
            ),
            containers: vec!["web".into()],
            status: ImageStatus::Checked {
                policies: vec![PolicyResult {
                    policy: PolicyName::new("production"),
                    mode,
                    on_error,
                    pin_templates: false,
                    verdict: verdict.into(),
                }],
            },
        }
    }

    fn unsigned() -> PolicyVerdict {
        PolicyVerdict::Untrusted {
            reason: Reason::NoSignature,
            authorities: vec![AuthorityOutcome {
                authority: "ci".into(),
                verifier: VerifierKind::Cosign,
                result: Outcome::Failed(Failure::new(
                    Reason::NoSignature,
                    "no Cosign signature (looked for the sha256-<hex>.sig tag)",
                )),
            }],
        }
    }

    fn trusted_until(at: std::time::SystemTime) -> PolicyVerdict {
        PolicyVerdict::Trusted {
            authorities: vec![AuthorityOutcome {
                authority: "release".into(),
                verifier: VerifierKind::Notation,
                result: Outcome::Trusted(crate::verify::Evidence {
                    summary: "Notation".into(),
                    logged: Vec::new(),
                    valid_until: None,
                    expires: Some(crate::verify::Expiry {
                        at,
                        what: "certificate CN=release".into(),
                    }),
                }),
            }],
        }
    }

    #[test]
    fn trust_lapsing_inside_the_window_warns_and_annotates_outside_it_not() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let window = 14 * day;
        let soon = report(
            trusted_until(now + 3 * day + day / 2),
            Mode::Enforce,
            OnError::Deny,
        );
        let later = report(trusted_until(now + 30 * day), Mode::Enforce, OnError::Deny);
        let mut v = aggregate(vec![soon, later], NoMatch::Deny);
        expiry_notices(&mut v, now, window);
        assert!(v.allowed);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(
            v.warnings[0].contains("expires in 3 days"),
            "{}",
            v.warnings[0]
        );
        assert!(
            v.warnings[0].contains("certificate CN=release"),
            "{}",
            v.warnings[0]
        );
        assert!(v.audit_annotations["expiry-0"].contains("policy \"production\""));
        // Already lapsed evidence is never "trusted", but the arithmetic must not underflow.
        let mut past = aggregate(
            vec![report(
                trusted_until(now - day),
                Mode::Enforce,
                OnError::Deny,
            )],
            NoMatch::Deny,
        );
        expiry_notices(&mut past, now, window);
        assert!(
            past.warnings[0].contains("within a day"),
            "{:?}",
            past.warnings
        );
    }

    #[test]
    fn warnings_stay_under_what_the_api_server_passes_whole() {
        let mut few: Vec<String> = (0..3).map(|i| format!("warning {i}")).collect();
        bound_warnings(&mut few);
        assert_eq!(few.len(), 3);
        let mut many: Vec<String> = (0..100)
            .map(|i| format!("{i:03} {}", "w".repeat(200)))
            .collect();
        bound_warnings(&mut many);
        let total: usize = many.iter().map(|w| w.chars().count()).sum();
        assert!(total <= MAX_WARNINGS_CHARS, "{total}");
        let last = many.last().unwrap();
        assert!(
            last.starts_with("and ") && last.contains("more warning(s)"),
            "{last}"
        );
        let shown = many.len() - 1;
        assert!(
            last.contains(&format!("and {} more", 100 - shown)),
            "{last}"
        );
    }

    #[test]
    fn enforce_denies_with_image_digest_policy_and_reason() {
        let v = aggregate(
            vec![report(unsigned(), Mode::Enforce, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(!v.allowed);
        assert_eq!(
            v.denials,
            vec![
                "image docker.io/library/nginx:1.25 (sha256:ab12ab12ab12…) is not trusted by policy \"production\": no signature found: no Cosign signature (looked for the sha256-<hex>.sig tag)"
            ]
        );
    }

    #[test]
    fn warn_and_audit_allow() {
        let v = aggregate(
            vec![report(unsigned(), Mode::Warn, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(v.allowed);
        assert_eq!(
            v.warnings,
            vec![
                "image docker.io/library/nginx:1.25 is not trusted by policy \"production\": no signature found"
            ]
        );
        let v = aggregate(
            vec![report(unsigned(), Mode::Audit, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(v.allowed && v.warnings.is_empty());
        assert!(v.audit_annotations["image-0"].contains("reason=no_signature"));
    }

    #[test]
    fn a_trust_resting_on_logged_checks_is_admitted_with_a_warning() {
        let trusted = |logged: Vec<String>| PolicyVerdict::Trusted {
            authorities: vec![AuthorityOutcome {
                authority: "release".into(),
                verifier: VerifierKind::Notation,
                result: Outcome::Trusted(crate::verify::Evidence {
                    summary: "Notation JWS signature".into(),
                    logged,
                    valid_until: None,
                    expires: None,
                }),
            }],
        };
        let v = aggregate(
            vec![report(trusted(Vec::new()), Mode::Enforce, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(v.allowed && v.warnings.is_empty() && v.audit_annotations.is_empty());
        let logged = vec![
            "signature sha256:0123: revocation (logged): the revocation status of CN=x is unknown"
                .to_string(),
            "signature sha256:0123: expiry (logged): the digital signature has expired".into(),
        ];
        let v = aggregate(
            vec![report(trusted(logged), Mode::Enforce, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(v.allowed);
        assert_eq!(
            v.warnings,
            vec![
                "image docker.io/library/nginx:1.25 passed policy \"production\" with a failed \
                 check its verification level only logs: signature sha256:0123: revocation \
                 (logged): the revocation status of CN=x is unknown (and 1 more)"
            ]
        );
        assert!(
            v.audit_annotations["image-0"].contains("expiry (logged)"),
            "{:?}",
            v.audit_annotations
        );
    }

    #[test]
    fn on_error_allow_admits_with_a_warning_and_deny_denies() {
        let down = PolicyVerdict::Undecided {
            reason: Reason::RegistryUnreachable,
            detail: "cannot connect to docker.io".into(),
        };
        let v = aggregate(
            vec![report(down.clone(), Mode::Enforce, OnError::Allow)],
            NoMatch::Deny,
        );
        assert!(v.allowed);
        assert!(v.warnings[0].contains("onError: allow"), "{:?}", v.warnings);
        let v = aggregate(
            vec![report(down, Mode::Enforce, OnError::Deny)],
            NoMatch::Deny,
        );
        assert!(!v.allowed);
        assert!(
            v.denials[0].contains("the registry is unreachable: cannot connect"),
            "{:?}",
            v.denials
        );
    }

    #[test]
    fn no_match_actions() {
        let mut r = report(unsigned(), Mode::Enforce, OnError::Deny);
        r.status = ImageStatus::NoPolicy {
            no_match: NoMatch::Deny,
        };
        assert!(!aggregate(vec![r.clone()], NoMatch::Deny).allowed);
        let v = aggregate(vec![r.clone()], NoMatch::Warn);
        assert!(v.allowed && v.warnings.len() == 1);
        let v = aggregate(vec![r], NoMatch::Allow);
        assert!(v.allowed && v.warnings.is_empty());
    }

    /// A certificate subject is chosen by whoever made the certificate: its control
    /// characters must not reach kubectl's terminal raw.
    #[test]
    fn denials_escape_control_characters_from_signatures() {
        let subject = "CN=release\r\n\u{1b}[2Jforged\u{202e}";
        let verdict = PolicyVerdict::Untrusted {
            reason: Reason::IdentityMismatch,
            authorities: vec![AuthorityOutcome {
                authority: "release".into(),
                verifier: VerifierKind::Notation,
                result: Outcome::Failed(Failure::new(
                    Reason::IdentityMismatch,
                    format!("the signing certificate {subject} is not a trusted identity"),
                )),
            }],
        };
        let v = aggregate(
            vec![report(verdict, Mode::Enforce, OnError::Deny)],
            NoMatch::Deny,
        );
        let d = &v.denials[0];
        assert!(
            !d.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{d:?}"
        );
        assert!(d.contains("CN=release\\r\\n\\u{1b}[2Jforged"), "{d}");
    }

    #[test]
    fn warnings_have_no_control_characters_and_are_short() {
        let w = sanitize_warning(&format!("a\nb\tc{}", "x".repeat(1000)));
        assert!(!w.contains('\n') && !w.contains('\t'));
        assert!(w.chars().count() <= 240);
    }
}
