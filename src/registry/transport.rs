//! HTTP plumbing under [`super::HttpRegistry`]: the redirect policy, capped body reads,
//! `Retry-After`, retry backoff, and the mapping of transport failures and statuses to
//! [`Reason`]s. Error details name the host only: reqwest's errors can carry a URL with a
//! query, and registry error bodies are never echoed.
//!
//! Like `registry`: must not import `policy`, `verify` or `decision`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::RegistryError;
use super::ssrf::{DenyList, Unresolvable, denied_in};
use crate::reason::Reason;

/// Redirect hops followed per request (blob downloads commonly redirect once to storage).
pub(crate) const MAX_REDIRECTS: usize = 3;

/// A redirect signet refuses to follow.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedirectRefused {
    #[error("redirected more than {MAX_REDIRECTS} times")]
    TooMany,
    #[error("redirected to plain HTTP on {0}, which is not an insecure registry")]
    PlainHttp(String),
    #[error("redirected to an unsupported URL scheme")]
    Scheme,
}

/// Follows at most [`MAX_REDIRECTS`] hops, each re-checked against the deny-list (IP literals;
/// names are checked by the resolver) and never downgraded to plain HTTP unless the target is
/// an insecure registry. reqwest itself drops `Authorization` when host, port or scheme change.
pub(crate) fn redirect_policy(
    deny: Arc<DenyList>,
    insecure: Arc<HashSet<String>>,
) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the original URL and every hop so far.
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(RedirectRefused::TooMany);
        }
        let url = attempt.url();
        if let Err(denied) = deny.check_url(url) {
            return attempt.error(denied);
        }
        match url.scheme() {
            "https" => {}
            "http" => {
                let host = url_host(url);
                if !insecure.contains(&host) {
                    return attempt.error(RedirectRefused::PlainHttp(host));
                }
            }
            _ => return attempt.error(RedirectRefused::Scheme),
        }
        attempt.follow()
    })
}

/// `host` or `host:port` as written in an insecure-registry list.
pub(crate) fn url_host(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Whether a failed attempt may be repeated: the connection broke before an answer came
/// (reset, closed keep-alive). Not timeouts (the time is spent already), not connect failures
/// (refused and unresolvable are not transient at webhook timescales: answer at once, R3), not
/// refusals by signet's own rules.
pub(crate) fn is_transient(e: &reqwest::Error) -> bool {
    e.is_request() && !e.is_timeout() && !e.is_connect() && denied_in(e).is_none()
}

/// Statuses worth one more try of an idempotent request.
pub(crate) fn is_transient_status(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Exponential backoff with jitter: 100 ms, 200 ms, … plus up to as much again at random,
/// so the webhook replicas do not retry in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 100u64 << attempt.min(4);
    Duration::from_millis(base + rand::random_range(0..base))
}

pub(crate) fn transport_error(host: &str, e: &reqwest::Error, timeout: Duration) -> RegistryError {
    if let Some(denied) = denied_in(e) {
        return RegistryError::new(
            Reason::RegistryUnreachable,
            format!("{host} is not allowed: {denied}"),
        );
    }
    if e.is_timeout() {
        return RegistryError::new(
            Reason::RegistryUnreachable,
            format!("{host} did not answer within {:.1}s", timeout.as_secs_f32()),
        );
    }
    if e.is_redirect() {
        let why = find_in_chain::<RedirectRefused>(e).map_or_else(
            || "redirected too many times".to_string(),
            |r| r.to_string(),
        );
        return RegistryError::new(Reason::RegistryUnreachable, format!("{host} {why}"));
    }
    if e.is_connect() {
        return RegistryError::new(Reason::RegistryUnreachable, connect_failure(host, e));
    }
    RegistryError::new(
        Reason::RegistryUnreachable,
        format!("request to {host} failed"),
    )
}

/// Why a connection could not be made, in words that say what to do: a name that does not
/// resolve, a port where nothing listens, a plain-HTTP registry spoken to over TLS, a
/// certificate signet does not trust.
fn connect_failure(host: &str, e: &reqwest::Error) -> String {
    if let Some(u) = find_in_chain::<Unresolvable>(e) {
        return format!("{u} (is the registry's host name right?)");
    }
    if let Some(tls) = find_in_chain::<rustls::Error>(e) {
        return match tls {
            rustls::Error::InvalidMessage(_) => format!(
                "{host} does not speak TLS (TLS handshake failed: {tls}): if it is a plain-HTTP \
                 registry, add --insecure-registry {host}"
            ),
            rustls::Error::InvalidCertificate(_) => format!(
                "the TLS certificate of {host} is not trusted ({tls}): add its CA with \
                 --registry-ca FILE or --registry-ca-for {host}=FILE"
            ),
            _ => format!("TLS handshake with {host} failed: {tls}"),
        };
    }
    if let Some(io) = find_in_chain::<std::io::Error>(e) {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return format!(
                    "connection refused by {host}: nothing listens there (is the registry \
                     running, is the port right?)"
                );
            }
            std::io::ErrorKind::UnexpectedEof => {
                return format!(
                    "{host} closed the connection during the TLS handshake: if it is a \
                     plain-HTTP registry, add --insecure-registry {host}"
                );
            }
            _ => {}
        }
    }
    format!("cannot connect to {host}")
}

/// The first `T` in an error's source chain. An `io::Error` wrapping another error (as
/// tokio-rustls wraps `rustls::Error`) does not list it as its source, so it is looked into.
fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if let Some(found) = inner.and_then(find_in_chain::<T>) {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

pub(crate) fn status_error(host: &str, status: StatusCode) -> RegistryError {
    let reason = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Reason::Unauthorized,
        StatusCode::NOT_FOUND => Reason::NotFound,
        StatusCode::TOO_MANY_REQUESTS => Reason::Throttled,
        _ => Reason::RegistryUnreachable,
    };
    RegistryError::new(reason, format!("{host} answered {status}"))
}

/// `Retry-After` in seconds or as an HTTP date (a past date means now).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Reads a body, failing as soon as it would exceed `cap`: a declared `Content-Length` above
/// the cap is refused before reading, and a body longer than it claimed (or with no length)
/// is cut off at the cap, so memory stays at most `cap` plus one chunk whatever the server
/// sends.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
    host: &str,
) -> Result<Bytes, RegistryError> {
    let too_large = || {
        RegistryError::new(
            Reason::TooLarge,
            format!("a response from {host} exceeds {cap} bytes"),
        )
    };
    if resp.content_length().is_some_and(|l| l > cap) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                // The attempt's timeout was the review deadline when that has (all but) passed.
                let reason = if super::remaining().is_some_and(|r| r < Duration::from_millis(50)) {
                    Reason::DeadlineExceeded
                } else {
                    Reason::RegistryUnreachable
                };
                return Err(RegistryError::new(
                    reason,
                    format!("{host} did not finish a response in time"),
                ));
            }
            Err(_) => {
                return Err(RegistryError::new(
                    Reason::RegistryUnreachable,
                    format!("{host} broke off a response"),
                ));
            }
        };
        if (buf.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `rel="next"` target of a `Link` header, if any.
pub(crate) fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        h.insert(RETRY_AFTER, soon.parse().unwrap());
        assert!(retry_after(&h).unwrap() > Duration::from_secs(50));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn link_header_next() {
        let mut h = HeaderMap::new();
        assert_eq!(link_next(&h), None);
        h.insert(
            reqwest::header::LINK,
            "</v2/a/referrers/sha256:ab?n=10&last=x>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            link_next(&h).as_deref(),
            Some("/v2/a/referrers/sha256:ab?n=10&last=x")
        );
        h.insert(
            reqwest::header::LINK,
            "<https://x/prev>; rel=\"prev\", <https://x/next>; rel=next"
                .parse()
                .unwrap(),
        );
        assert_eq!(link_next(&h).as_deref(), Some("https://x/next"));
        h.insert(reqwest::header::LINK, "garbage".parse().unwrap());
        assert_eq!(link_next(&h), None);
    }

    proptest::proptest! {
        /// Hostile header values never panic the parsers.
        #[test]
        fn header_parsers_take_any_input(v in "[ -~]{0,200}") {
            let mut h = HeaderMap::new();
            if let Ok(value) = v.parse() {
                h.insert(reqwest::header::LINK, value);
            }
            if let Ok(value) = v.parse() {
                h.insert(RETRY_AFTER, value);
            }
            let _ = link_next(&h);
            let _ = retry_after(&h);
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for a in 0..10 {
            let b = backoff(a);
            let base = 100u64 << a.min(4);
            assert!(b >= Duration::from_millis(base) && b < Duration::from_millis(2 * base));
        }
    }
}
