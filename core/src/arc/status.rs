//! The ARC path's counters and state, as the status document, the
//! metrics and the UI show them (filled by the shell's client task).

use serde::Serialize;

use crate::model::Time;

/// The ARC path's counters and state (status, metrics, UI).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ArcStatus {
    /// `"connected"` (the last exchange got an answer), `"down"`, `"refused"`.
    pub state: &'static str,
    /// `"primary"` or `"secondary"`: who answered last.
    pub receiver: Option<&'static str>,
    pub queued: u64,
    pub delivered: u64,
    pub naks: u64,
    /// NAKs that were the timestamp: clock corrected and resent.
    pub nak_resyncs: u64,
    pub duh: u64,
    pub timeouts: u64,
    pub failovers: u64,
    pub supervision_sent: u64,
    pub tests_sent: u64,
    /// Receiver clock − ours, from the last timestamp NAK.
    pub clock_offset_ms: i64,
    pub last_ack_at: Option<Time>,
    pub last_error: Option<String>,
}
