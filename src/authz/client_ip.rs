//! The caller's address: Envoy's view of the peer, or, when that peer is a
//! trusted proxy, the nearest untrusted hop in `X-Forwarded-For`.

use std::net::IpAddr;

use ipnet::IpNet;

/// Walks `X-Forwarded-For` from the right while the current hop is trusted.
/// kube-oidc-proxy trusted any client's header; this trusts only `trusted`.
pub fn client_ip(peer: Option<IpAddr>, xff: Option<&str>, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut current = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if let Some(xff) = xff {
        for hop in xff.rsplit(',') {
            if !is_trusted(&current) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => current = ip,
                // A hop we cannot read ends the walk at the last known one.
                Err(_) => break,
            }
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let cases = [
            ("198.51.100.7", None, "198.51.100.7"),
            // An untrusted peer's header is ignored.
            ("198.51.100.7", Some("1.2.3.4"), "198.51.100.7"),
            // A trusted peer: the last untrusted hop wins.
            ("10.1.1.1", Some("1.2.3.4, 203.0.113.9"), "203.0.113.9"),
            ("10.1.1.1", Some("1.2.3.4, 10.2.2.2"), "1.2.3.4"),
            ("10.1.1.1", Some("garbage"), "10.1.1.1"),
        ];
        for (peer, xff, want) in cases {
            assert_eq!(
                client_ip(ip(peer), xff, &trusted),
                ip(want),
                "{peer} {xff:?}"
            );
        }
        assert_eq!(client_ip(None, Some("1.2.3.4"), &trusted), None);
    }
}
