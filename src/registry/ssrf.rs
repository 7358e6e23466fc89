//! Egress control: which addresses signet may connect to when an image reference (chosen by
//! whoever writes a pod spec) names a registry host.
//!
//! The check runs on the **resolved IP at connect time** ([`FilteringResolver`] is reqwest's DNS
//! resolver), never on the host string: a name that resolves to `169.254.169.254` is refused as
//! surely as the literal. No resolver runs for IP-literal hosts, so [`DenyList::check_url`]
//! checks those before every request, token fetch and redirect hop. IPv6 addresses that carry an
//! IPv4 address (IPv4-mapped `::ffff:169.254.169.254`, IPv4-compatible `::169.254.169.254`,
//! NAT64 `64:ff9b::a9fe:a9fe`) are checked as that IPv4 address too.
//!
//! By default only link-local and cloud-metadata addresses are denied; loopback and private
//! ranges are common homes of in-cluster registries, so denying them is a configuration choice
//! (`--registry-deny-cidr`). Imports nothing from signet.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// An address range, `addr/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a string is not an address range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an address range (want ADDR/PREFIX)")]
    NotARange(String),
    #[error("{input:?}: the prefix length must be 0..={max}")]
    Prefix { input: String, max: u8 },
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    /// `10.0.0.0/8`, `fe80::/10`, or a bare address (a /32 or /128).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| CidrError::NotARange(s.to_string()))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix {
                    input: s.to_string(),
                    max,
                })?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The IPv4 addresses an IPv6 address delivers to, besides IPv4-mapped ones (which
/// [`canonical`] already turns into IPv4):
/// - NAT64 well-known prefix `64:ff9b::/96` (RFC 6052): the last 32 bits;
/// - NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215): the operator picks a prefix length of
///   48 to 96 bits inside it, which signet cannot know, so every RFC 6052 layout for those
///   lengths is checked (any one denied refuses the address), except those reading `0.x.x.x`;
/// - IPv4-compatible `::a.b.c.d` (deprecated, still routed by Linux's `sit` automatic tunnel);
///   `::` and `::1` are the IPv6 unspecified and loopback addresses, not IPv4 ones.
fn embedded_ipv4(ip: IpAddr) -> Vec<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return Vec::new();
    };
    let bits = u128::from(v6);
    // `len` bits starting `from` bits below the top.
    let take = |from: u32, len: u32| ((bits >> (128 - from - len)) & ((1u128 << len) - 1)) as u32;
    let low32 = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return vec![low32];
    }
    if bits >> 80 == 0x0064_ff9b_0001 {
        // RFC 6052 section 2.2: the IPv4 bits skip bits 64..72 (the `u` octet).
        let layouts = [
            (take(48, 16) << 16) | take(72, 16),
            (take(56, 8) << 24) | take(72, 24),
            take(72, 32),
            take(96, 32),
        ];
        // The layouts that do not apply read zero bits: `0.x.x.x` is no NAT64 destination
        // and would trip the `0.0.0.0/8` rule for every address.
        return layouts
            .into_iter()
            .map(Ipv4Addr::from)
            .filter(|v4| v4.octets()[0] != 0)
            .collect();
    }
    if bits >> 32 == 0 && bits > 1 {
        return vec![low32];
    }
    Vec::new()
}

/// The address ranges signet never connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyList(Vec<Cidr>);

impl Default for DenyList {
    /// Link-local (where every cloud's metadata service lives: 169.254.169.254, AWS's
    /// fd00:ec2::254), the remaining well-known metadata addresses, and 0.0.0.0 (which Linux
    /// connects to loopback).
    fn default() -> Self {
        DenyList(vec![
            cidr(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
            cidr(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
            // AWS IMDS over IPv6.
            cidr(
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
                128,
            ),
            // Alibaba Cloud metadata.
            cidr(IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), 32),
            // Azure WireServer.
            cidr(IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)), 32),
            cidr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8),
            cidr(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
        ])
    }
}

const fn cidr(addr: IpAddr, prefix: u8) -> Cidr {
    Cidr { addr, prefix }
}

/// Why an address was refused; found again in reqwest's error chain by
/// [`denied_in`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("address {ip} is in the registry deny-list ({range})")]
pub struct Denied {
    pub ip: IpAddr,
    pub range: Cidr,
}

impl DenyList {
    /// The defaults plus `extra`.
    pub fn with(extra: impl IntoIterator<Item = Cidr>) -> Self {
        let mut list = DenyList::default();
        list.0.extend(extra);
        list
    }

    /// An empty list (tests of other behaviour only).
    pub fn none() -> Self {
        DenyList(Vec::new())
    }

    /// Refuses `ip` when it, or an IPv4 address it carries to (NAT64, IPv4-compatible), lies
    /// in a denied range.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        let candidates = std::iter::once(ip).chain(embedded_ipv4(ip).into_iter().map(IpAddr::V4));
        for candidate in candidates {
            if let Some(range) = self.0.iter().find(|c| c.contains(candidate)) {
                return Err(Denied {
                    ip: canonical(ip),
                    range: *range,
                });
            }
        }
        Ok(())
    }

    /// Checks the host of `url` when it is an IP literal (names are checked when resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Denied> {
        // The URL parser has already normalised decimal, octal and hex IPv4 forms.
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }
}

/// The [`Denied`] somewhere in an error's source chain, if any.
pub fn denied_in(e: &(dyn std::error::Error + 'static)) -> Option<Denied> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<Denied>() {
            return Some(d.clone());
        }
        cur = err.source();
    }
    None
}

/// reqwest's DNS resolver: the system resolver, then the deny-list on every answer. A name
/// with any denied address is refused whole (a mixed answer is a rebinding attempt or a
/// misconfiguration, and trying the allowed half would make the outcome depend on luck).
#[derive(Clone, Debug)]
pub struct FilteringResolver {
    deny: Arc<DenyList>,
}

impl FilteringResolver {
    pub fn new(deny: Arc<DenyList>) -> Self {
        FilteringResolver { deny }
    }
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let deny = self.deny.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                deny.check(a.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_list_denies_metadata_and_link_local() {
        let d = DenyList::default();
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "168.63.129.16",
            "0.0.0.0",
            "::",
        ] {
            assert!(d.check(ip(bad)).is_err(), "{bad} must be denied");
        }
        for good in ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "8.8.8.8"] {
            assert!(d.check(ip(good)).is_ok(), "{good} is allowed by default");
        }
    }

    /// NAT64 (well-known `64:ff9b::/96` and local-use `64:ff9b:1::/48`) and IPv4-compatible
    /// (`::a.b.c.d`) addresses reach the IPv4 address inside them: they get its answer.
    #[test]
    fn embedded_ipv4_addresses_are_checked_as_ipv4() {
        let d = DenyList::with([
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        for bad in [
            "64:ff9b::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.1.2.3",
            "64:ff9b::100.100.100.200",
            "64:ff9b:1::169.254.169.254",
            "64:ff9b:1:a9fe:a9:fe00::",
            "::169.254.169.254",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(d.check(ip(bad)).is_err(), "{bad} must be denied");
        }
        for good in [
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::8.8.8.8",
            "::8.8.8.8",
            "::1",
            "2001:db8::a9fe:a9fe",
        ] {
            assert!(d.check(ip(good)).is_ok(), "{good} is allowed");
        }
        let defaults = DenyList::default();
        assert!(defaults.check(ip("64:ff9b::169.254.169.254")).is_err());
        assert!(
            defaults.check(ip("::1")).is_ok(),
            "IPv6 loopback is not ::0.0.0.1"
        );
        let u = reqwest::Url::parse("http://[64:ff9b::a9fe:a9fe]/v2/").unwrap();
        assert!(defaults.check_url(&u).is_err());
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let c: Cidr = "127.0.0.2/32".parse().unwrap();
        assert!(c.contains(ip("127.0.0.2")));
        assert!(!c.contains(ip("127.0.0.1")));
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "mapped IPv6 is IPv4");
        assert!(!c.contains(ip("11.0.0.0")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(!all.contains(ip("::2")));
        assert_eq!(
            "fe80::/10".parse::<Cidr>().unwrap().to_string(),
            "fe80::/10"
        );
        assert_eq!("1.2.3.4".parse::<Cidr>().unwrap().to_string(), "1.2.3.4/32");
        for bad in ["", "x/8", "10.0.0.0/33", "::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Any IPv4 address, and its IPv4-mapped IPv6 form, get the same answer.
        #[test]
        fn mapped_addresses_are_checked_as_ipv4(a: u32) {
            let d = DenyList::with(["10.0.0.0/8".parse().unwrap()]);
            let v4 = Ipv4Addr::from(a);
            proptest::prop_assert_eq!(
                d.check(IpAddr::V4(v4)).is_ok(),
                d.check(IpAddr::V6(v4.to_ipv6_mapped())).is_ok()
            );
        }

        #[test]
        fn cidr_parser_takes_any_input(s in "[0-9a-f:./]{0,45}") {
            let _ = s.parse::<Cidr>();
        }
    }

    #[test]
    fn literal_urls_are_checked() {
        let d = DenyList::with(["127.0.0.2/32".parse().unwrap()]);
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(d.check_url(&u("http://127.0.0.2:5000/v2/")).is_err());
        assert!(d.check_url(&u("http://[::ffff:169.254.169.254]/")).is_err());
        assert!(d.check_url(&u("http://[fe80::1]/")).is_err());
        assert!(
            d.check_url(&u("http://2852039166/")).is_err(),
            "decimal 169.254.169.254"
        );
        assert!(
            d.check_url(&u("http://0xa9.254.169.254/")).is_err(),
            "hex octet"
        );
        assert!(d.check_url(&u("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(d.check_url(&u("https://registry.example.com/")).is_ok());
    }
}
