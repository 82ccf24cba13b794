//! Which webhook callback URLs may be called: `http(s)` only, and never an address on the
//! deployment's own side (loopback, private, link-local incl. cloud metadata, unique-local,
//! unspecified, multicast), a special-purpose one (benchmarking, reserved, documentation), or
//! one that embeds an IPv4 address a translator or tunnel would reach (NAT64, 6to4, Teredo,
//! IPv4-compatible) unless configuration allows that network explicitly. Checked when a
//! subscription is created and again before each delivery, since DNS answers can change.

use std::net::IpAddr;

/// A network in the allow-list: an address with a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedNet {
    addr: IpAddr,
    prefix: u8,
}

impl AllowedNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}' has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip {
                IpAddr::V4(v) => (u32::from(v) as u128, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, w1), (x, w2)) = (bits(self.addr), bits(ip));
        if w1 != w2 {
            return false;
        }
        let shift = u32::from(w1 - self.prefix);
        shift >= 128 || (net >> shift) == (x >> shift)
    }
}

/// Whether `ip` is on the deployment's own side of the network.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || o[0] == 0
                // Shared address space (carrier-grade NAT).
                || (o[0] == 100 && (64..128).contains(&o[1]))
                // IETF protocol assignments, and the three documentation networks.
                || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
                // Benchmarking (198.18.0.0/15) and reserved (240.0.0.0/4).
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                // Unique-local, link-local and the deprecated site-local.
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and the local 64:ff9b:1::/48).
                || seg[..6] == [0; 6]
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
                // Discard-only (100::/64), Teredo (2001::/32), documentation (2001:db8::/32),
                // 6to4 (2002::/16).
                || (seg[0] == 0x100 && seg[1..4] == [0; 3])
                || (seg[0] == 0x2001 && (seg[1] == 0 || seg[1] == 0xdb8))
                || seg[0] == 0x2002
        }
    }
}

/// Whether a callback may reach `ip`: an external address, or one in the allow-list.
pub fn allowed(ip: IpAddr, allow: &[AllowedNet]) -> bool {
    !is_internal(ip) || allow.iter().any(|n| n.contains(ip))
}

/// Checks a callback URL: scheme, and every address its host resolves to.
pub async fn check(url: &str, allow: &[AllowedNet]) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("'{url}' must use http or https"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("'{url}' has no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve '{host}': {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("'{host}' has no address"));
    }
    for ip in addrs {
        if !allowed(ip, allow) {
            return Err(format!(
                "'{url}' resolves to {ip}, an internal address; callbacks there must be allowed in notify.callback_allow"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            // Special-purpose IPv4 networks.
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "203.0.113.9",
            // IPv6 forms that reach an IPv4 address through a translator or tunnel.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
            "2001:db8::1",
            "fec0::1",
            "100::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "151.101.1.69",
            "198.20.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allowed_networks() {
        let n = AllowedNet::parse("127.0.0.0/8").unwrap();
        assert!(n.contains("127.9.9.9".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        assert!(
            AllowedNet::parse("::1")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            AllowedNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(AllowedNet::parse("10.0.0.0/33").is_err());
        assert!(AllowedNet::parse("localhost").is_err());
    }

    #[tokio::test]
    async fn callback_urls() {
        assert!(check("https://8.8.8.8/hook", &[]).await.is_ok());
        assert!(check("ftp://8.8.8.8/hook", &[]).await.is_err());
        assert!(check("http://127.0.0.1:9/hook", &[]).await.is_err());
        assert!(check("http://[::1]:9/hook", &[]).await.is_err());
        assert!(check("http://localhost:9/hook", &[]).await.is_err());
        assert!(
            check("http://169.254.169.254/latest/meta-data", &[])
                .await
                .is_err()
        );
        let allow = [AllowedNet::parse("127.0.0.1").unwrap()];
        assert!(check("http://127.0.0.1:9/hook", &allow).await.is_ok());
        assert!(check("not a url", &[]).await.is_err());
    }
}
