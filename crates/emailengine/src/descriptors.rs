//! The process's file-descriptor budget: raises the soft `RLIMIT_NOFILE` to the hard limit at
//! start-up, then splits the descriptors between API connections and a reserve kept for mail
//! connections (IMAP, SMTP) and the store, so HTTP clients alone can never exhaust them.

use std::io;

/// The share of descriptors kept free for everything that is not an API connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdReserve {
    /// A fixed number of descriptors.
    Count(u64),
    /// A percentage (0–99) of the descriptor limit.
    Percent(u8),
}

impl FdReserve {
    /// `25%` or `5000`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(pct) => pct
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p < 100)
                .map(FdReserve::Percent),
            None => text.parse::<u64>().ok().map(FdReserve::Count),
        }
    }

    /// The number of descriptors this reserve keeps out of `limit`.
    pub fn of(self, limit: u64) -> u64 {
        match self {
            FdReserve::Count(n) => n,
            FdReserve::Percent(p) => (u128::from(limit) * u128::from(p) / 100) as u64,
        }
    }
}

/// The descriptor limit in force after start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit now in force.
    pub soft: u64,
    pub hard: u64,
    /// The soft limit the process was started with, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. When the kernel refuses (some systems cap
/// the soft limit below an unlimited hard one), the limit stays as it was.
#[cfg(unix)]
pub fn raise_to_hard() -> io::Result<DescriptorLimit> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct passed, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (soft, hard) = (current.rlim_cur, current.rlim_max);
    if soft >= hard {
        return Ok(DescriptorLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct passed, which lives on this stack frame.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Ok(DescriptorLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    Ok(DescriptorLimit {
        soft: hard,
        hard,
        raised_from: Some(soft),
    })
}

#[cfg(not(unix))]
pub fn raise_to_hard() -> io::Result<DescriptorLimit> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// API connections allowed when the descriptor limit cannot be read.
pub const FALLBACK_CONNECTIONS: usize = 1024;

/// How the descriptors are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Concurrent API connections allowed.
    pub api_connections: usize,
    /// Descriptors kept for mail connections and the store.
    pub reserve: u64,
    /// An explicit `maxConnections` was lowered to keep the reserve.
    pub lowered: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the descriptor reserve ({reserve}) leaves no descriptors for API connections out of the limit of {limit}"
)]
pub struct NoDescriptorsLeft {
    pub limit: u64,
    pub reserve: u64,
}

/// The API connection bound: the configured one, or everything outside the reserve, whichever
/// is smaller. (Bounded to `u32::MAX`, far beyond any real descriptor limit.)
pub fn budget(
    fd_limit: Option<u64>,
    reserve: FdReserve,
    configured: Option<usize>,
) -> Result<ConnectionBudget, NoDescriptorsLeft> {
    let Some(limit) = fd_limit else {
        return Ok(ConnectionBudget {
            api_connections: configured.unwrap_or(FALLBACK_CONNECTIONS),
            reserve: 0,
            lowered: false,
        });
    };
    let kept = reserve.of(limit);
    let available = limit.saturating_sub(kept).min(u64::from(u32::MAX));
    if available == 0 {
        return Err(NoDescriptorsLeft {
            limit,
            reserve: kept,
        });
    }
    let available = usize::try_from(available).unwrap_or(u32::MAX as usize);
    Ok(match configured {
        Some(n) if n <= available => ConnectionBudget {
            api_connections: n,
            reserve: kept,
            lowered: false,
        },
        Some(_) => ConnectionBudget {
            api_connections: available,
            reserve: kept,
            lowered: true,
        },
        None => ConnectionBudget {
            api_connections: available,
            reserve: kept,
            lowered: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserve_parsing() {
        assert_eq!(FdReserve::parse("25%"), Some(FdReserve::Percent(25)));
        assert_eq!(FdReserve::parse(" 10 % "), Some(FdReserve::Percent(10)));
        assert_eq!(FdReserve::parse("0%"), Some(FdReserve::Percent(0)));
        assert_eq!(FdReserve::parse("5000"), Some(FdReserve::Count(5000)));
        assert_eq!(FdReserve::parse("100%"), None);
        assert_eq!(FdReserve::parse("-1"), None);
        assert_eq!(FdReserve::parse("a quarter"), None);
        assert_eq!(FdReserve::parse(""), None);
    }

    #[test]
    fn reserve_share() {
        assert_eq!(FdReserve::Percent(25).of(20_000), 5_000);
        assert_eq!(FdReserve::Percent(25).of(1_023), 255);
        assert_eq!(
            FdReserve::Percent(99).of(u64::MAX),
            18_262_276_632_972_456_098
        );
        assert_eq!(FdReserve::Count(300).of(20_000), 300);
    }

    #[test]
    fn derived_from_the_descriptor_limit() {
        let quarter = FdReserve::Percent(25);
        assert_eq!(
            budget(Some(20_000), quarter, None),
            Ok(ConnectionBudget {
                api_connections: 15_000,
                reserve: 5_000,
                lowered: false
            })
        );
        assert_eq!(
            budget(Some(1_048_576), FdReserve::Count(10_000), None),
            Ok(ConnectionBudget {
                api_connections: 1_038_576,
                reserve: 10_000,
                lowered: false
            })
        );
    }

    #[test]
    fn configured_bound_is_kept_or_lowered() {
        let quarter = FdReserve::Percent(25);
        assert_eq!(
            budget(Some(20_000), quarter, Some(2_000)),
            Ok(ConnectionBudget {
                api_connections: 2_000,
                reserve: 5_000,
                lowered: false
            })
        );
        assert_eq!(
            budget(Some(20_000), quarter, Some(18_000)),
            Ok(ConnectionBudget {
                api_connections: 15_000,
                reserve: 5_000,
                lowered: true
            })
        );
        assert_eq!(
            budget(None, quarter, Some(50)),
            Ok(ConnectionBudget {
                api_connections: 50,
                reserve: 0,
                lowered: false
            })
        );
        assert_eq!(
            budget(None, quarter, None).map(|b| b.api_connections),
            Ok(FALLBACK_CONNECTIONS)
        );
    }

    #[test]
    fn a_reserve_that_takes_everything_is_an_error() {
        assert_eq!(
            budget(Some(1_000), FdReserve::Count(1_000), None),
            Err(NoDescriptorsLeft {
                limit: 1_000,
                reserve: 1_000
            })
        );
        assert_eq!(
            budget(Some(u64::MAX), FdReserve::Percent(0), None).map(|b| b.api_connections),
            Ok(u32::MAX as usize)
        );
    }

    #[cfg(unix)]
    #[test]
    fn raising_reaches_the_hard_limit() {
        let limit = raise_to_hard().unwrap();
        assert_eq!(limit.soft, limit.hard);
        assert_eq!(raise_to_hard().unwrap().raised_from, None);
    }

    proptest! {
        #[test]
        fn the_reserve_always_stays_free(
            limit in 1u64..10_000_000,
            pct in 0u8..100,
            configured in proptest::option::of(1usize..20_000_000),
        ) {
            if let Ok(b) = budget(Some(limit), FdReserve::Percent(pct), configured) {
                prop_assert!(b.api_connections as u64 + b.reserve <= limit);
                prop_assert!(b.api_connections >= 1);
                if let Some(n) = configured {
                    prop_assert!(b.api_connections <= n);
                    prop_assert_eq!(b.lowered, b.api_connections < n);
                }
            }
        }
    }
}
