//! Who may connect from where: the browser origins allowed to open sockets and call the API
//! (`ALLOWED_ORIGINS`), and the proxies whose forwarded client address is believed
//! (`TRUSTED_PROXIES`).

use super::ConfigError;

/// `ALLOWED_ORIGINS`: `*`, or origins as browsers send them (`scheme://host[:port]`), so a
/// typo is refused at start rather than silently refusing every browser.
pub(super) fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    let hint =
        "put comma-separated origins such as https://app.example.com,http://localhost:3000 (or *)";
    let mut out = Vec::new();
    for o in raw.split(',').map(|o| o.trim().trim_end_matches('/')) {
        if o.is_empty() {
            continue;
        }
        if o == "*" {
            out.push(o.to_string());
            continue;
        }
        // Stored as browsers send it (lowercase host, no default port), since the check
        // compares strings.
        let origin = url::Url::parse(o).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.username().is_empty()
                && !o.ends_with(':')
        });
        let Some(origin) = origin else {
            return Err(ConfigError {
                var: "ALLOWED_ORIGINS",
                problem: format!("{o:?} is not an origin"),
                hint,
            });
        };
        out.push(origin.origin().ascii_serialization());
    }
    Ok(out)
}

/// `TRUSTED_PROXIES`: addresses or CIDR ranges, comma-separated.
pub(super) fn parse_ips(raw: &str) -> Result<Vec<IpRange>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            IpRange::parse(s).ok_or_else(|| ConfigError {
                var: "TRUSTED_PROXIES",
                problem: format!("{s:?} is not an IP address or CIDR range"),
                hint: "put the proxies' addresses or ranges, comma-separated, e.g. 127.0.0.1,10.0.0.0/8",
            })
        })
        .collect()
}

/// An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`): proxies in a container network
/// have addresses that change, their subnet does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    base: std::net::IpAddr,
    prefix: u8,
}

impl IpRange {
    /// `a.b.c.d`, `a.b.c.d/n`, or the same for IPv6.
    pub fn parse(s: &str) -> Option<IpRange> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let base: std::net::IpAddr = addr.parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpRange { base, prefix })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        let bits = |a: u128, b: u128, width: u32| {
            let shift = width - u32::from(self.prefix);
            shift >= width || (a >> shift) == (b >> shift)
        };
        match (self.base, ip) {
            (V4(b), V4(i)) => bits(u128::from(u32::from(b)), u128::from(u32::from(i)), 32),
            (V6(b), V6(i)) => bits(u128::from(b), u128::from(i), 128),
            _ => false,
        }
    }
}
