//! Image references and digests, normalised the way the container runtime normalises them.
//!
//! `nginx` means `docker.io/library/nginx:latest` to containerd and CRI-O, so it must mean the
//! same here: a policy written for `docker.io/library/**` has to cover it. Likewise every
//! spelling of a registry host that reaches the same endpoint (`REGISTRY.EXAMPLE.COM:443`,
//! `registry-1.docker.io`) normalises to one ([`normalize_host`]). Pure: no I/O, no imports
//! from the rest of the crate.

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;

/// The registry host that short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's registry under its other names, all reaching the same repositories: the
/// legacy index name (which the docker reference grammar itself folds), the host containerd
/// and docker contact for `docker.io`, and the Hub's registry alias.
const DOCKER_HUB_ALIASES: [&str; 3] = [
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];
/// The HTTPS port: `host:443` and `host` are one endpoint to the runtime.
const HTTPS_PORT: u16 = 443;
const DEFAULT_TAG: &str = "latest";
const MAX_REFERENCE_LEN: usize = 4096;

/// Why a string is not an image reference or a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty image reference")]
    Empty,
    #[error("image reference is longer than {MAX_REFERENCE_LEN} characters")]
    TooLong,
    #[error("image reference contains whitespace or a control character")]
    Whitespace,
    #[error("invalid registry host {0:?}")]
    Host(String),
    #[error(
        "invalid repository path {0:?}: components are lowercase letters, digits and . _ - separators"
    )]
    Repository(String),
    #[error(
        "invalid tag {0:?}: at most 128 of letters, digits, _ . - and not starting with . or -"
    )]
    Tag(String),
    #[error("invalid digest {0:?}: {1}")]
    Digest(String, &'static str),
}

/// A content digest such as `sha256:<64 hex>`. Only `sha256` and `sha512` are accepted: they
/// are the algorithms OCI registries use, and the only ones signet can recompute.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Digest algorithms signet can recompute from bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    Sha256,
    Sha512,
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        Digest(format!("sha256:{}", hex::encode(d.as_ref())))
    }

    /// The digest of `bytes` with this digest's algorithm, for checking content we received.
    pub fn recompute(&self, bytes: &[u8]) -> Digest {
        match self.algorithm() {
            DigestAlgorithm::Sha256 => Digest::sha256_of(bytes),
            DigestAlgorithm::Sha512 => {
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, bytes);
                Digest(format!("sha512:{}", hex::encode(d.as_ref())))
            }
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        self.recompute(bytes) == *self
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        if self.0.starts_with("sha512:") {
            DigestAlgorithm::Sha512
        } else {
            DigestAlgorithm::Sha256
        }
    }

    /// The hex part after `algorithm:`.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag the OCI 1.1 referrers tag schema and Cosign derive from a digest:
    /// `sha256:abc` becomes `sha256-abc`.
    pub fn tag_form(&self) -> String {
        self.0.replacen(':', "-", 1)
    }

    /// A short form for messages: `sha256:0123456789ab`.
    pub fn short(&self) -> &str {
        let end = self.0.find(':').map_or(0, |i| i + 1) + 12;
        &self.0[..end.min(self.0.len())]
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| ParseError::Digest(s.to_string(), why);
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("missing algorithm prefix"))?;
        let want = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(bad("algorithm must be sha256 or sha512")),
        };
        if hex.len() != want {
            return Err(bad("wrong length for the algorithm"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("not lowercase hexadecimal"));
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A normalised image reference: registry host (with port), repository path, and a tag, a
/// digest, or both. A reference with neither gets the tag `latest`, as the runtime does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// The registry host, normalised by [`normalize_host`], with its port unless that is 443
    /// (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    #[cfg(test)]
    fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, what policies' `images` globs are matched against.
    pub fn name(&self) -> String {
        let mut name = String::with_capacity(self.registry.len() + 1 + self.repository.len());
        name.push_str(&self.registry);
        name.push('/');
        name.push_str(&self.repository);
        name
    }

    /// The same repository pinned to `digest` (the tag is kept for messages).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        self.clone().into_pinned(digest)
    }

    /// [`ImageRef::with_digest`] without copying the reference.
    pub fn into_pinned(self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self
        }
    }

    /// What to ask the registry for: the digest when pinned, the tag otherwise.
    pub fn reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => DEFAULT_TAG,
        }
    }
}

impl fmt::Display for ImageRef {
    /// Written piece by piece: every cache hit writes its reference out once.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.registry)?;
        f.write_char('/')?;
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            f.write_char(':')?;
            f.write_str(t)?;
        }
        if let Some(d) = &self.digest {
            f.write_char('@')?;
            f.write_str(d.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ParseError;

    /// Parses an image reference as the kubelet hands it to the runtime, and normalises it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseError::Empty);
        }
        if s.len() > MAX_REFERENCE_LEN {
            return Err(ParseError::TooLong);
        }
        // In ASCII, whitespace and control characters are exactly the bytes up to the space
        // and DEL; beyond ASCII, Unicode's own classes. The bytes are folded without an early
        // exit so that the compiler checks them sixteen at a time.
        let unwanted = |c: char| c.is_whitespace() || c.is_control();
        let clean_bytes = s.bytes().fold(true, |ok, b| ok & (b > b' ') & (b != 0x7f));
        if !clean_bytes || (!s.is_ascii() && s.chars().any(unwanted)) {
            return Err(ParseError::Whitespace);
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'; a ':' before that is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        let (registry, repository) = split_registry(name)?;
        validate_repository(&repository)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Splits `name` into registry host and repository the way the docker reference grammar does:
/// the first component is a host only when it contains `.` or `:` or is `localhost`. (The
/// grammar also takes an upper-case first component for a host; here that component stays a
/// repository component and fails validation, so such a reference is refused, never guessed.)
fn split_registry(name: &str) -> Result<(String, String), ParseError> {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (normalize_host(first)?, rest.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    Ok((registry, repository))
}

/// Normalises a registry host (`name`, `name:port`, `[ipv6]:port`) to the one spelling of the
/// endpoint the runtime reaches with it, so that policies, credentials and insecure-registry
/// settings keyed by host see every spelling alike:
/// - the name is lower-cased (DNS and TLS names are case-insensitive);
/// - `:443` is dropped: an HTTPS registry (the runtime's default) is at port 443 either way.
///   `:80` is kept: without a port the runtime still speaks HTTPS on 443, so `host:80` is
///   another endpoint, and containerd treats it as another host too;
/// - a port loses leading zeros (`05000` is port 5000);
/// - an IPv6 literal is written in its canonical form (`[0:0::1]` is `[::1]`);
/// - Docker Hub's other names (`index.docker.io`, `registry-1.docker.io` — the host the
///   runtime actually contacts for `docker.io` — and `registry.hub.docker.com`) become
///   `docker.io`.
pub fn normalize_host(host: &str) -> Result<String, ParseError> {
    let bad = || ParseError::Host(host.to_string());
    let (name, port) = if let Some(bracketed) = host.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']').ok_or_else(bad)?;
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (name, port) = match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        };
        let label_ok = |l: &[u8]| {
            !l.is_empty()
                && l.len() <= 63
                && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with(b"-")
                && !l.ends_with(b"-")
        };
        if name.is_empty()
            || name.len() > 253
            || !name.as_bytes().split(|&b| b == b'.').all(label_ok)
        {
            return Err(bad());
        }
        // Room for the port: the host is written once.
        let mut lower = String::with_capacity(host.len());
        lower.push_str(name);
        lower.make_ascii_lowercase();
        (lower, port)
    };
    // Without its port, a dotless name such as `regim` would read as a Docker Hub namespace
    // (`docker.io/regim/...`), so `:443` is dropped only where the host stays a host.
    let host_without_port = name.contains('.') || name.starts_with('[') || name == "localhost";
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad()),
                Ok(HTTPS_PORT) if host_without_port => None,
                Ok(n) => Some(n),
            }
        }
    };
    let host = match port {
        Some(p) => {
            let mut host = name;
            host.push(':');
            host.push_str(itoa::Buffer::new().format(p));
            host
        }
        None => name,
    };
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        return Ok(DEFAULT_REGISTRY.to_string());
    }
    Ok(host)
}

fn validate_repository(repo: &str) -> Result<(), ParseError> {
    let bad = || ParseError::Repository(repo.to_string());
    if repo.is_empty() || repo.len() > 255 {
        return Err(bad());
    }
    for component in repo.split('/') {
        if !component_ok(component) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), ParseError> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !tag.starts_with('.')
        && !tag.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ParseError::Tag(tag.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// The parser's byte test for ASCII is Unicode's whitespace-or-control for every ASCII
    /// character, and a reference with any of them is refused.
    #[test]
    fn ascii_whitespace_and_control_bytes_are_exactly_the_refused_ones() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            assert_eq!(
                b <= b' ' || b == 0x7f,
                c.is_whitespace() || c.is_control(),
                "{b:#04x}"
            );
            let refused = matches!(
                format!("nginx{c}:1").parse::<ImageRef>(),
                Err(ParseError::Whitespace)
            );
            assert_eq!(refused, c.is_whitespace() || c.is_control(), "{b:#04x}");
        }
        for bad in ["nginx\u{a0}:1", "nginx\u{85}", "nginx\u{2028}"] {
            assert!(
                matches!(bad.parse::<ImageRef>(), Err(ParseError::Whitespace)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn normalises_like_the_runtime() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/x/y:1", "localhost:5000/x/y:1"),
            ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:v1"),
            ("ghcr.io/example/app:v1.2.3", "ghcr.io/example/app:v1.2.3"),
            ("[::1]:5000/app:1", "[::1]:5000/app:1"),
        ];
        for (input, want) in cases {
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    /// Spellings the runtime sends to the same registry and repository normalise to one
    /// reference, so no spelling escapes a policy written for another.
    /// Found by the `image_ref` fuzz target: `REGIM:443/a` names the host `regim` only through
    /// its port; printed without it, `regim/a` would read back as `docker.io/regim/a`.
    #[test]
    fn a_dotless_host_keeps_its_port_443_so_it_reads_back_as_a_host() {
        for s in [
            "REGIM:443/a/b/c/base:2",
            "regim:443/a",
            "Registry:443/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            let once: ImageRef = s.parse().unwrap();
            assert_ne!(once.registry(), DEFAULT_REGISTRY, "{s}");
            assert!(once.registry().ends_with(":443"), "{s}: {once}");
            let twice: ImageRef = once.to_string().parse().unwrap();
            assert_eq!(once, twice, "{s} printed as {once}");
        }
        // Dotted names, localhost and IP literals still drop the default port.
        for (s, host) in [
            ("registry.example.com:443/a", "registry.example.com"),
            ("localhost:443/a", "localhost"),
            ("[::1]:443/a", "[::1]"),
        ] {
            let r: ImageRef = s.parse().unwrap();
            assert_eq!(r.registry(), host, "{s}");
        }
    }

    #[test]
    fn host_spellings_of_one_registry_normalise_alike() {
        let cases = [
            (
                "REGISTRY.EXAMPLE.COM/team/app:1",
                "registry.example.com/team/app:1",
            ),
            (
                "Registry.Example.Com/team/app",
                "registry.example.com/team/app:latest",
            ),
            (
                "registry.example.com:443/team/app",
                "registry.example.com/team/app:latest",
            ),
            (
                "REGISTRY.example.com:443/team/app",
                "registry.example.com/team/app:latest",
            ),
            ("LocalHost:5000/x", "localhost:5000/x:latest"),
            ("localhost:05000/x", "localhost:5000/x:latest"),
            ("localhost:443/x", "localhost/x:latest"),
            // Port 80 is another endpoint (HTTPS on port 80, or plain HTTP): kept.
            (
                "registry.example.com:80/x",
                "registry.example.com:80/x:latest",
            ),
            (
                "registry-1.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            (
                "Registry-1.Docker.IO:443/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            (
                "registry.hub.docker.com/library/nginx:1",
                "docker.io/library/nginx:1",
            ),
            (
                "INDEX.DOCKER.IO/bitnami/redis",
                "docker.io/bitnami/redis:latest",
            ),
            (
                "registry-1.docker.io/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("docker.io:443/nginx", "docker.io/library/nginx:latest"),
            ("Docker.io/nginx", "docker.io/library/nginx:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("[0:0::1]:5000/app", "[::1]:5000/app:latest"),
            ("[2001:DB8::1]:443/app", "[2001:db8::1]/app:latest"),
        ];
        for (input, want) in cases {
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
        // Paths are case-sensitive: upper case there stays an error, whatever the host.
        for bad in [
            "REGISTRY.EXAMPLE.COM/Team/app",
            "registry.example.com:443/App",
            "localhost:65536/x",
            "localhost:0/x",
            // The runtime takes an upper-case first component for a host; signet refuses it
            // rather than guess (a policy could not name it).
            "MyHost/app",
            "LOCALHOST/app",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            normalize_host("Registry.Example.Com:443").unwrap(),
            "registry.example.com"
        );
        assert!(normalize_host("a b").is_err());
    }

    #[test]
    fn digest_and_tag_plus_digest() {
        let r: ImageRef = format!("registry.example.com/team/init@{D}")
            .parse()
            .unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.reference(), D);
        let r: ImageRef = format!("nginx:1.27@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("1.27"));
        assert_eq!(r.reference(), D, "the digest wins over the tag");
        assert_eq!(r.to_string(), format!("docker.io/library/nginx:1.27@{D}"));
    }

    #[test]
    fn rejects_garbage() {
        let cases = [
            "",
            " ",
            "nginx latest",
            "Nginx",
            "nginx:",
            "nginx:-bad",
            "nginx@sha256:abc",
            "nginx@md5:0123",
            "registry.example.com//x",
            "-x.com/a",
            "host:99999999/a",
            "a\nb",
            "nginx@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        for input in cases {
            assert!(input.parse::<ImageRef>().is_err(), "{input:?} should fail");
        }
    }

    #[test]
    fn digest_helpers() {
        let d: Digest = D.parse().unwrap();
        assert_eq!(d.tag_form(), format!("sha256-{}", d.hex()));
        assert_eq!(d.short(), "sha256:0123456789ab");
        let of = Digest::sha256_of(b"");
        assert_eq!(
            of.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(of.matches(b""));
        assert!(!of.matches(b"x"));
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}([_-][a-z0-9]{1,8}){0,2}"
    }

    proptest! {
        #[test]
        fn parse_display_round_trip(
            host in prop::option::of(("[a-zA-Z]{1,8}\\.(com|io)", prop::option::of(1u16..))),
            comps in prop::collection::vec(component(), 1..4),
            tag in prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        ) {
            let mut s = String::new();
            if let Some((h, port)) = &host {
                s.push_str(h);
                if let Some(p) = port { s.push_str(&format!(":{p}")); }
                s.push('/');
            }
            s.push_str(&comps.join("/"));
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            let parsed: ImageRef = s.parse().unwrap();
            let again: ImageRef = parsed.to_string().parse().unwrap();
            prop_assert_eq!(&parsed, &again, "normalising is idempotent");
            prop_assert!(parsed.tag().is_some());
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<ImageRef>();
        }
    }
}
