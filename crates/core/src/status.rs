//! Connection status: where a connection's runtime stands, and why.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The six states a connection can be in. Every transition is published as a
/// `connection.status` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// Not running: disabled, or never started.
    Disconnected,
    /// Starting or reconnecting.
    Connecting,
    /// Running and able to run actions.
    Connected,
    /// Running, but something is wrong (for example events stopped arriving).
    Degraded,
    /// The service rejected the credentials; the user must reconnect. Jobs wait.
    NeedsReauth,
    /// Failed; the reason says whether it retries by itself or needs a fix.
    Error,
}

impl StatusKind {
    pub const ALL: [StatusKind; 6] = [
        StatusKind::Disconnected,
        StatusKind::Connecting,
        StatusKind::Connected,
        StatusKind::Degraded,
        StatusKind::NeedsReauth,
        StatusKind::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Disconnected => "disconnected",
            StatusKind::Connecting => "connecting",
            StatusKind::Connected => "connected",
            StatusKind::Degraded => "degraded",
            StatusKind::NeedsReauth => "needs_reauth",
            StatusKind::Error => "error",
        }
    }

    /// Whether a runtime in this state can run actions now.
    pub fn can_run_actions(self) -> bool {
        matches!(self, StatusKind::Connected | StatusKind::Degraded)
    }
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StatusKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatusKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// A status with its reason and the moment it was entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub kind: StatusKind,
    pub reason: Option<String>,
    /// Epoch milliseconds when this status was entered.
    pub since: i64,
}

impl ConnectionStatus {
    pub fn new(kind: StatusKind, reason: Option<String>) -> Self {
        Self {
            kind,
            reason,
            since: crate::time::now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for kind in StatusKind::ALL {
            assert_eq!(kind.as_str().parse::<StatusKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("online".parse::<StatusKind>().is_err());
    }
}
