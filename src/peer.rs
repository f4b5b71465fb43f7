//! The client's address, for the session log lines: the TCP peer, or, when that peer is a proxy the
//! operator named in `TRUSTED_PROXIES`, the address the proxy forwarded.

use std::net::IpAddr;

use actix_web::HttpRequest;

use crate::config::IpRange;

/// The address to log for a request. `X-Forwarded-For` is read right to left, skipping
/// trusted proxies, because only the entries our own proxies appended can be believed: a
/// client may put anything at the left.
pub fn client_addr(req: &HttpRequest, trusted: &[IpRange]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return Some(ip),
            // Garbage where an address should be: stop at the proxy that passed it.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(peer: &str, xff: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(x) = xff {
            r = r.insert_header(("X-Forwarded-For", x));
        }
        r.to_http_request()
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let proxy = IpRange::parse("10.0.0.2").unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not told to trust anyone: the header is ignored.
        assert_eq!(
            client_addr(&req("10.0.0.2:5000", Some("1.2.3.4")), &[]),
            ip("10.0.0.2")
        );
        // From the trusted proxy: the last hop it appended.
        assert_eq!(
            client_addr(&req("10.0.0.2:5000", Some("6.6.6.6, 1.2.3.4")), &[proxy]),
            ip("1.2.3.4")
        );
        // From anyone else, the header is the client's own claim.
        assert_eq!(
            client_addr(&req("5.5.5.5:5000", Some("1.2.3.4")), &[proxy]),
            ip("5.5.5.5")
        );
        assert_eq!(
            client_addr(&req("10.0.0.2:5000", Some("junk")), &[proxy]),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_addr(&req("10.0.0.2:5000", None), &[proxy]),
            ip("10.0.0.2")
        );
    }
}
