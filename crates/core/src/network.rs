//! Which local address an outgoing IMAP or SMTP connection binds to (spec §23): a per-message
//! hint, else the configured `localAddresses` that exist on this host, picked by strategy —
//! `dedicated` keeps each account on one address (rendezvous hashing), `random` spreads
//! connections, `default` leaves the choice to the OS.

use std::net::IpAddr;

/// The address chosen and why (`addressSelector` in EmailEngine's logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub address: Option<IpAddr>,
    pub selector: &'static str,
}

/// Picks the source address. `is_local` tells whether an address is assigned on this host;
/// `random` is a fresh random number (used by the `random` strategy).
pub fn select_local_address(
    hint: Option<IpAddr>,
    configured: &[IpAddr],
    strategy: &str,
    account: &str,
    is_local: impl Fn(IpAddr) -> bool,
    random: u64,
) -> Selection {
    if let Some(h) = hint.filter(|h| is_local(*h)) {
        return Selection {
            address: Some(h),
            selector: "hint",
        };
    }
    let candidates: Vec<IpAddr> = configured
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() && is_local(*a))
        .collect();
    let pick = |address: IpAddr, selector| Selection {
        address: Some(address),
        selector,
    };
    match (candidates.as_slice(), strategy) {
        ([], _) => Selection {
            address: None,
            selector: "default",
        },
        ([one], _) => pick(*one, "single"),
        (all, "random") => pick(all[(random % all.len() as u64) as usize], "random"),
        (all, "dedicated") => {
            let score = |a: &IpAddr| murmur3_32(format!("{a}\0{account}").as_bytes(), 0);
            let best = all.iter().max_by_key(|a| score(a)).copied();
            match best {
                Some(b) => pick(b, "dedicated"),
                None => Selection {
                    address: None,
                    selector: "default",
                },
            }
        }
        _ => Selection {
            address: None,
            selector: "unknown",
        },
    }
}

/// True when `ip` is assigned to this host (a socket can bind to it).
pub fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// MurmurHash3, x86 32-bit variant.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Addresses outgoing requests may not reach (webhooks, mail server discovery). The default keeps link-local addresses (cloud
/// metadata services) out of reach; `Private` also refuses loopback and private networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EgressPolicy {
    #[default]
    LinkLocal,
    Private,
    Off,
}

impl EgressPolicy {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "link-local" => Some(Self::LinkLocal),
            "private" => Some(Self::Private),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    pub fn allows(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        let private = match ip {
            IpAddr::V4(v4) => {
                v4.is_private() || v4.is_loopback() || v4.is_unspecified() || v4.is_broadcast()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
            }
        };
        match self {
            Self::Off => true,
            Self::LinkLocal => !link_local,
            Self::Private => !link_local && !private,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn murmur_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"hello", 0), 613_153_351);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn strategies() {
        let local = |a: IpAddr| a.to_string().starts_with("127.");
        let two = [ip("127.0.0.2"), ip("127.0.0.3"), ip("10.9.9.9")];
        let s = select_local_address(None, &two[..1], "default", "a", local, 0);
        assert_eq!((s.address, s.selector), (Some(ip("127.0.0.2")), "single"));
        let s = select_local_address(None, &two, "default", "a", local, 0);
        assert_eq!((s.address, s.selector), (None, "unknown"));
        let s = select_local_address(None, &two[2..], "dedicated", "a", local, 0);
        assert_eq!(
            (s.address, s.selector),
            (None, "default"),
            "not on this host"
        );
        let s = select_local_address(Some(ip("127.0.0.9")), &two, "default", "a", local, 0);
        assert_eq!((s.address, s.selector), (Some(ip("127.0.0.9")), "hint"));
        let first = select_local_address(None, &two, "dedicated", "acct", local, 0).address;
        for r in 0..20 {
            assert_eq!(
                select_local_address(None, &two, "dedicated", "acct", local, r).address,
                first
            );
        }
        let picked: std::collections::HashSet<_> = (0..20)
            .map(|r| select_local_address(None, &two, "random", "acct", local, r).address)
            .collect();
        assert_eq!(picked.len(), 2);
        assert!(is_local_address(ip("127.0.0.2")));
    }
}
