//! Connection states of an account (spec §13.1) as one enum: what the engine records in
//! `iad:<account>.state`, what `/v1/stats` counts and what the API shows. Unknown stored text
//! reads as `Disconnected`, so a value written by a newer server never breaks a listing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionState {
    Init,
    Connecting,
    Syncing,
    Connected,
    AuthenticationError,
    ConnectError,
    Unset,
    Disconnected,
    Paused,
}

impl ConnectionState {
    pub const ALL: [ConnectionState; 9] = [
        Self::Init,
        Self::Connecting,
        Self::Syncing,
        Self::Connected,
        Self::AuthenticationError,
        Self::ConnectError,
        Self::Unset,
        Self::Disconnected,
        Self::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Connecting => "connecting",
            Self::Syncing => "syncing",
            Self::Connected => "connected",
            Self::AuthenticationError => "authenticationError",
            Self::ConnectError => "connectError",
            Self::Unset => "unset",
            Self::Disconnected => "disconnected",
            Self::Paused => "paused",
        }
    }

    pub fn parse(text: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .unwrap_or(Self::Disconnected)
    }

    /// Mailbox and message operations are served in these states; others answer 503.
    pub fn is_usable(self) -> bool {
        matches!(self, Self::Connected | Self::Connecting | Self::Syncing)
    }

    /// The `code` of the 503 answered for an account in this state (spec §4).
    pub fn unavailable_code(self) -> &'static str {
        match self {
            Self::AuthenticationError => "AuthenticationFails",
            Self::ConnectError => "ConnectionError",
            _ => "NotYetConnected",
        }
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ConnectionState::ALL {
            assert_eq!(ConnectionState::parse(s.as_str()), s);
        }
        assert_eq!(
            ConnectionState::parse("whatever"),
            ConnectionState::Disconnected
        );
        assert_eq!(
            ConnectionState::AuthenticationError.unavailable_code(),
            "AuthenticationFails"
        );
        assert!(ConnectionState::Syncing.is_usable());
        assert!(!ConnectionState::Unset.is_usable());
    }
}
