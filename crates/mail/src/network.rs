//! The source address of a new IMAP or SMTP connection, from the `localAddresses` setting and
//! the `imapStrategy` / `smtpStrategy` setting (spec §23); the choice itself is
//! [`emailengine_core::network::select_local_address`].

use std::net::IpAddr;

use emailengine_core::network::{Selection, is_local_address, select_local_address};
use emailengine_store::SettingsStore;

/// Which protocol a connection speaks; each has its own strategy setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Smtp,
}

impl Protocol {
    /// The settings [`choose`] reads, in its order.
    pub fn address_settings(self) -> [&'static str; 2] {
        match self {
            Protocol::Imap => ["localAddresses", "imapStrategy"],
            Protocol::Smtp => ["localAddresses", "smtpStrategy"],
        }
    }
}

/// Chooses the local address for one connection of `account`. A store that cannot be read
/// leaves the choice to the OS.
pub async fn local_address(
    settings: &dyn SettingsStore,
    account: &str,
    protocol: Protocol,
    hint: Option<IpAddr>,
) -> Selection {
    let raw = settings
        .raw_settings(&protocol.address_settings())
        .await
        .unwrap_or_default();
    choose(&raw, account, hint)
}

/// [`local_address`] from the raw values of [`Protocol::address_settings`] (missing ones are
/// unset).
pub fn choose(raw: &[Option<String>], account: &str, hint: Option<IpAddr>) -> Selection {
    let json = |i: usize| {
        raw.get(i)
            .and_then(|v| v.as_deref())
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
    };
    let configured: Vec<IpAddr> = json(0)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    let strategy = json(1)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "default".into());
    let mut r = [0u8; 8];
    rand::fill(&mut r);
    select_local_address(
        hint,
        &configured,
        &strategy,
        account,
        is_local_address,
        u64::from_le_bytes(r),
    )
}
