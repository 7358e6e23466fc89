//! Anchored globs over normalised repository names.
//!
//! The host and the path are matched separately, both anchored at both ends: `*` in the host
//! matches any characters but `/`; in the path a segment `*` is exactly one segment, `**` is any
//! number of segments (zero included), and `*` inside a segment matches within that segment.
//! So `registry.example.com/prod/**` never matches `evil.com/registry.example.com/prod/x`.
//!
//! Pure: must not import anything with I/O, nor `registry` or `verify`.

use std::fmt;

use crate::image::{self, DEFAULT_REGISTRY, ImageRef, ParseError};

/// Why an `images` entry is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty image glob")]
    Empty,
    #[error(
        "image glob {0:?} names a tag or digest: globs match repositories, drop the ':tag' or '@digest'"
    )]
    TagOrDigest(String),
    #[error("image glob {0:?} has an empty path segment")]
    EmptySegment(String),
    #[error("image glob {0:?}: '**' must be a whole path segment")]
    DoubleStar(String),
    #[error("image glob {0:?}: invalid registry host: {1}")]
    Host(String, ParseError),
}

/// A compiled `images` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageGlob {
    source: String,
    host: String,
    path: Vec<String>,
}

impl fmt::Debug for ImageGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageGlob({:?})", self.source)
    }
}

impl fmt::Display for ImageGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl ImageGlob {
    /// Compiles a glob. Short forms are normalised like image references: `nginx` means
    /// `docker.io/library/nginx`, `bitnami/*` means `docker.io/bitnami/*`; `**` alone matches
    /// every image.
    pub fn parse(source: &str) -> Result<Self, GlobError> {
        if source.is_empty() {
            return Err(GlobError::Empty);
        }
        if source.contains('@') {
            return Err(GlobError::TagOrDigest(source.to_string()));
        }
        let segments: Vec<&str> = source.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(GlobError::EmptySegment(source.to_string()));
        }
        if segments.iter().skip(1).any(|s| s.contains(':')) {
            return Err(GlobError::TagOrDigest(source.to_string()));
        }
        if segments.iter().any(|s| s.contains("**") && *s != "**") {
            return Err(GlobError::DoubleStar(source.to_string()));
        }
        let first = segments[0];
        if let Some((_, port)) = first.rsplit_once(':')
            && port != "*"
            && !port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(GlobError::TagOrDigest(source.to_string()));
        }
        let (host, path): (String, Vec<String>) = if source == "**" {
            ("*".into(), vec!["**".into()])
        } else if first == "*"
            || first.contains('.')
            || first.contains(':')
            || first.eq_ignore_ascii_case("localhost")
        {
            if segments.len() == 1 {
                // A host alone: everything on it.
                (first.to_string(), vec!["**".into()])
            } else {
                (
                    first.to_string(),
                    segments[1..].iter().map(|s| s.to_string()).collect(),
                )
            }
        } else {
            if first.contains(':') {
                return Err(GlobError::TagOrDigest(source.to_string()));
            }
            let mut path: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            if path.len() == 1 && path[0] != "**" {
                path.insert(0, "library".into());
            }
            (DEFAULT_REGISTRY.to_string(), path)
        };
        let host = glob_host(&host).map_err(|e| GlobError::Host(source.to_string(), e))?;
        Ok(ImageGlob {
            source: source.to_string(),
            host,
            path,
        })
    }

    /// Whether the image's repository is covered.
    pub fn matches(&self, image: &ImageRef) -> bool {
        if !wildcard(&self.host, image.registry()) {
            return false;
        }
        let segs: Vec<&str> = image.repository().split('/').collect();
        match_path(&self.path, &segs)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// The host part of a glob, normalised as image hosts are ([`image::normalize_host`]) so that
/// a glob written `REGISTRY.EXAMPLE.COM:443` or `registry-1.docker.io` names the host images
/// spelled either way are normalised to. A host with `*` in it is lower-cased and loses a
/// literal `:443`; its wildcards then match normalised hosts.
fn glob_host(host: &str) -> Result<String, ParseError> {
    if !host.contains('*') {
        return image::normalize_host(host);
    }
    let lower = host.to_ascii_lowercase();
    Ok(match lower.strip_suffix(":443") {
        Some(name) => name.to_string(),
        None => lower,
    })
}

/// Whether the path pattern matches the segments. A dynamic programme over pattern position
/// × segment position, one row at a time: `row[j]` says whether the pattern so far matches the
/// first `j` segments. O(pattern × segments) whatever the number of `**`; trying every split
/// for each `**` recursively is exponential in their number.
fn match_path(pattern: &[String], segs: &[&str]) -> bool {
    let mut row = vec![false; segs.len() + 1];
    row[0] = true;
    for p in pattern {
        if p == "**" {
            // Zero or more segments: reachable from any earlier position.
            let mut seen = false;
            for cell in row.iter_mut() {
                seen |= *cell;
                *cell = seen;
            }
        } else {
            // Exactly one segment; walk right to left so each cell reads the previous row.
            for j in (1..row.len()).rev() {
                row[j] = row[j - 1] && wildcard(p, segs[j - 1]);
            }
            row[0] = false;
        }
    }
    row[segs.len()]
}

/// `*` matches any run of characters (the caller has already split on `/`).
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, image: &str) -> bool {
        ImageGlob::parse(glob)
            .unwrap()
            .matches(&image.parse().unwrap())
    }

    #[test]
    fn table() {
        let cases = [
            (
                "registry.example.com/prod/**",
                "registry.example.com/prod/app:1",
                true,
            ),
            (
                "registry.example.com/prod/**",
                "registry.example.com/prod/a/b/c",
                true,
            ),
            (
                "registry.example.com/prod/**",
                "registry.example.com/production/app",
                false,
            ),
            (
                "registry.example.com/prod/**",
                "evil.com/registry.example.com/prod/x",
                false,
            ),
            (
                "registry.example.com/prod/*",
                "registry.example.com/prod/a/b",
                false,
            ),
            (
                "registry.example.com/prod/*",
                "registry.example.com/prod/a",
                true,
            ),
            (
                "registry.example.com/prod/app-*",
                "registry.example.com/prod/app-web",
                true,
            ),
            (
                "registry.example.com/prod/app-*",
                "registry.example.com/prod/db",
                false,
            ),
            ("*.example.com/**", "registry.example.com/x", true),
            ("*.example.com/**", "example.com/x", false),
            ("*.example.com/**", "registry.example.com.evil.io/x", false),
            ("nginx", "nginx:1.27", true),
            ("nginx", "docker.io/library/nginx", true),
            ("nginx", "docker.io/bitnami/nginx", false),
            ("bitnami/*", "bitnami/redis", true),
            ("docker.io/**", "busybox", true),
            ("**", "anything.io/x/y/z", true),
            ("*/**", "ghcr.io/a", true),
            ("localhost:5000/**", "localhost:5000/x/y:1", true),
            ("localhost:5000/**", "localhost:5001/x/y:1", false),
            ("127.0.0.1:5000", "127.0.0.1:5000/a/b", true),
            (
                "registry.example.com/**/base",
                "registry.example.com/a/b/base",
                true,
            ),
            (
                "registry.example.com/**/base",
                "registry.example.com/a/b/base2",
                false,
            ),
        ];
        for (glob, image, want) in cases {
            assert_eq!(m(glob, image), want, "{glob} vs {image}");
        }
    }

    /// Globs written with another spelling of a host compile to the same host as images do.
    #[test]
    fn glob_hosts_are_normalised_like_image_hosts() {
        let cases = [
            (
                "REGISTRY.EXAMPLE.COM/prod/**",
                "registry.example.com/prod/x",
                true,
            ),
            (
                "registry.example.com:443/prod/**",
                "registry.example.com/prod/x",
                true,
            ),
            (
                "registry.example.com/prod/**",
                "Registry.Example.COM:443/prod/x",
                true,
            ),
            (
                "registry.example.com/prod/**",
                "registry.example.com:80/prod/x",
                false,
            ),
            ("registry-1.docker.io/library/**", "nginx", true),
            (
                "registry.hub.docker.com/library/*",
                "docker.io/library/nginx",
                true,
            ),
            ("docker.io/library/*", "registry-1.docker.io/nginx", true),
            ("LOCALHOST:5000/**", "localhost:5000/a", true),
            ("LOCALHOST/**", "localhost/a", true),
            ("*.EXAMPLE.com/**", "registry.example.com/a", true),
            ("*.example.com:443/**", "registry.example.com/a", true),
            ("[0:0::1]:5000/**", "[::1]:5000/a", true),
        ];
        for (glob, image, want) in cases {
            assert_eq!(m(glob, image), want, "{glob} vs {image}");
        }
        assert!(ImageGlob::parse("host:99999/x").is_err());
    }

    const GLOBS: &[&str] = &[
        "registry.example.com/**",
        "registry.example.com/team/**",
        "registry.example.com:5000/**",
        "localhost/**",
        "localhost:5000/**",
        "docker.io/library/*",
        "registry-1.docker.io/library/**",
        "index.docker.io/**",
        "registry.hub.docker.com/team/*",
        "*.example.com/**",
        "*.docker.io/**",
        "nginx",
        "team/*",
        "**",
    ];

    /// The indices of the globs that match `image`.
    fn matching(globs: &[String], image: &str) -> Vec<usize> {
        let image: ImageRef = image.parse().unwrap();
        (0..globs.len())
            .filter(|&i| ImageGlob::parse(&globs[i]).unwrap().matches(&image))
            .collect()
    }

    /// `glob` with its host (if it names one) in another spelling: case scrambled by `mask`,
    /// and `:443` added when `add_443` and it has no port.
    fn respell_glob(glob: &str, mask: u64, add_443: bool) -> String {
        let (first, rest) = glob.split_once('/').unwrap_or((glob, ""));
        let is_host =
            first != "**" && (first.contains('.') || first.contains(':') || first == "localhost");
        if !is_host {
            return glob.to_string();
        }
        let port = if add_443 && !first.contains(':') {
            ":443"
        } else {
            ""
        };
        let host = format!("{}{port}", scramble(first, mask));
        if rest.is_empty() {
            host
        } else {
            format!("{host}/{rest}")
        }
    }

    /// Scrambles the case of `s` with the bits of `mask`.
    fn scramble(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    proptest::proptest! {
        /// Every spelling of one image matches the same globs as its plain spelling.
        #[test]
        fn every_spelling_of_an_image_matches_the_same_globs(
            host in 0usize..4,
            port_443 in proptest::bool::ANY,
            glob_443 in proptest::bool::ANY,
            five_thousand in proptest::bool::ANY,
            alias in 0usize..4,
            mask in proptest::num::u64::ANY,
            path in proptest::collection::vec("nginx|team|app|library", 1..3),
        ) {
            let (plain, spelled) = match host {
                0 => ("docker.io", ["docker.io", "index.docker.io", "registry-1.docker.io",
                    "registry.hub.docker.com"][alias]),
                1 => ("registry.example.com", "registry.example.com"),
                2 => ("localhost", "localhost"),
                _ => ("ghcr.io", "ghcr.io"),
            };
            let port = if five_thousand { ":5000" } else { "" };
            let plain_host = format!("{plain}{port}");
            // `LOCALHOST/x` is refused as a reference (an upper-case first component with no
            // `.` or `:` is no host to signet), so it is not a spelling to vary alone.
            let bare_localhost = spelled == "localhost" && port.is_empty() && !port_443;
            let spelled_host = format!(
                "{}{port}{}",
                if bare_localhost { spelled.to_string() } else { scramble(spelled, mask) },
                if port_443 && port.is_empty() { ":443" } else { "" }
            );
            let path = path.join("/");
            let globs: Vec<String> = GLOBS.iter().map(|g| g.to_string()).collect();
            let respelled: Vec<String> =
                GLOBS.iter().map(|g| respell_glob(g, mask.rotate_left(7), glob_443)).collect();
            let want = matching(&globs, &format!("{plain_host}/{path}"));
            proptest::prop_assert_eq!(
                &want,
                &matching(&globs, &format!("{spelled_host}/{path}")),
                "{} vs {}", plain_host, spelled_host
            );
            proptest::prop_assert_eq!(
                &want,
                &matching(&respelled, &format!("{spelled_host}/{path}")),
                "{:?} vs {:?} for {}", GLOBS, respelled, spelled_host
            );
        }
    }

    /// Each `**` used to try every split of the rest of the path, so a handful of them
    /// against a long path took exponential time (minutes for one image).
    #[test]
    fn many_double_stars_against_a_long_path_finish() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let stars = ["**"; 10].join("/");
            // The longest repository a reference may name (255 characters).
            let image: ImageRef = format!("x.io/{}", vec!["a"; 128].join("/"))
                .parse()
                .unwrap();
            let miss = ImageGlob::parse(&format!("x.io/{stars}/nomatch")).unwrap();
            let hit = ImageGlob::parse(&format!("x.io/{stars}/a")).unwrap();
            // And past what references allow, on the matcher itself.
            let pattern: Vec<String> = [vec!["**".to_string(); 10], vec!["b".into()]].concat();
            let segs = vec!["a"; 200];
            let _ = tx.send((
                miss.matches(&image),
                hit.matches(&image),
                match_path(&pattern, &segs),
            ));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("matching 10 '**' against a long path must not take seconds");
        assert_eq!(got, (false, true, false));
    }

    /// The obvious recursive matcher: exponential, but plainly right on small inputs.
    fn reference_match(pattern: &[String], segs: &[&str]) -> bool {
        match pattern.split_first() {
            None => segs.is_empty(),
            Some((p, rest)) if p == "**" => {
                (0..=segs.len()).any(|skip| reference_match(rest, &segs[skip..]))
            }
            Some((p, rest)) => match segs.split_first() {
                Some((s, srest)) => wildcard(p, s) && reference_match(rest, srest),
                None => false,
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn path_matcher_agrees_with_the_reference(
            pattern in proptest::collection::vec("\\*\\*|\\*|a\\*|a|b", 0..7),
            segs in proptest::collection::vec("a|b|ab|ba", 0..8),
        ) {
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            proptest::prop_assert_eq!(
                match_path(&pattern, &segs),
                reference_match(&pattern, &segs)
            );
        }
    }

    #[test]
    fn invalid_globs() {
        for g in [
            "",
            "nginx:1.27",
            "registry.example.com/app:1",
            "a//b",
            "x.io/a**",
            "x.io/a@sha256:00",
        ] {
            assert!(ImageGlob::parse(g).is_err(), "{g:?} should be rejected");
        }
    }
}
