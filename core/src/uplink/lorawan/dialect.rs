//! What the modem driver needs from a modem family, and its settings.
//!
//! Owns: the [`Dialect`] trait (spelling of commands, parsing of lines,
//! splitting of glued replies), the OTAA identity and radio settings given
//! to the modem ([`ModemSettings`]) and the conversation's time-outs
//! ([`Timeouts`]). Implemented by `rak3172.rs` (RUI3) and `wio_e5.rs`.
//! `modem.rs` re-exports all of it, so `modem::Dialect` stays the path.

use std::time::Duration;

use super::at::AtLine;

/// OTAA identity and radio settings given to the modem at setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemSettings {
    /// Region name as configured (`EU868`).
    pub region: String,
    pub dev_eui: [u8; 8],
    pub join_eui: [u8; 8],
    pub app_key: [u8; 16],
    /// Uplink data rate (EU868 DR0–DR5): fixed without ADR, the starting
    /// rate with it.
    pub data_rate: u8,
    /// Adaptive data rate: the network moves the data rate (TTN's advice
    /// for devices that do not move); the driver reads back the rate used.
    pub adr: bool,
    /// Retransmissions of a confirmed uplink the modem itself makes when no
    /// ack comes (RUI3 `AT+RETY`, Wio-E5 `AT+RETRY`); 0: our retries only,
    /// each booked in the airtime budget.
    pub retransmissions: u8,
}

/// How one modem family spells commands and formats output.
pub trait Dialect: Send {
    fn name(&self) -> &'static str;
    fn parse(&self, line: &str) -> AtLine;
    /// One framed line as the replies it holds (replies glued together by
    /// a lost line ending come apart; a clean line comes back whole).
    fn split<'a>(&self, line: &'a str) -> Vec<&'a str> {
        vec![line]
    }
    /// A command that any live modem answers at once.
    fn probe(&self) -> String;
    /// Restarts the modem (answer not awaited).
    fn reset(&self) -> String;
    /// A query whose `Value` answer says whether the modem holds a session
    /// (`None`: the firmware has none).
    fn session_query(&self) -> Option<String> {
        None
    }
    /// Whether the `Value` answer `key`=`value` to [`Dialect::session_query`] says joined.
    fn session_joined(&self, _key: &str, _value: &str) -> bool {
        false
    }
    /// Whether a `Value` line ends a command (Wio-E5: `+PORT: 5` is the
    /// whole answer) or an `OK` follows it (RUI3: `AT+NJS=1`, then `OK`).
    fn value_ends_command(&self) -> bool;
    /// Full configuration, each answered by an `Ok` or a `Value`.
    fn setup(&self, s: &ModemSettings) -> Vec<String>;
    /// Configuration when the modem kept its session: only what does not
    /// touch the session (no mode, band or keys).
    fn resume(&self, s: &ModemSettings) -> Vec<String>;
    fn join(&self) -> String;
    /// Commands to send one uplink: preparation commands (each answered by
    /// `Ok`/`Value`) and last the transmission itself.
    fn send(&self, port: u8, data: &[u8], confirmed: bool) -> Vec<String>;
    /// A query of the data rate in use, answered by a `Value`.
    fn data_rate_query(&self) -> String;
    /// Whether an `Acked` line ends a confirmed send (RUI3) or a `Done` follows (Wio-E5).
    fn ack_ends_send(&self) -> bool;
}

/// Reads a data rate from a `Value`: `3` (RUI3 `AT+DR=3`) or text holding
/// `DR3` (Wio-E5 `+DR: DR3`, `+DR: EU868 DR3 SF9 BW125K`).
pub fn data_rate_of(value: &str) -> Option<u8> {
    if let Ok(n) = value.trim().parse::<u8>() {
        return (n <= 15).then_some(n);
    }
    let i = value.find("DR")?;
    let digits: String = value[i + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|n| *n <= 15)
}

/// Time-outs of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub command: Duration,
    pub join: Duration,
    pub send: Duration,
    pub confirmed_send: Duration,
    /// Wait after a reset before talking again.
    pub boot: Duration,
    /// Wait before retrying a command refused as busy (duty cycle waits come from the modem when it says).
    pub busy_retry: Duration,
    /// Transient refusals (or damaged answers) retried before giving up.
    pub max_retries: u8,
    /// After a damaged line, how long a good answer may still take before
    /// the one command is sent again.
    pub settle: Duration,
    /// First wait after the modem refused its setup (doubling up to the max).
    pub setup_backoff_min: Duration,
    pub setup_backoff_max: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(3),
            join: Duration::from_secs(30),
            send: Duration::from_secs(15),
            confirmed_send: Duration::from_secs(40),
            boot: Duration::from_millis(1500),
            busy_retry: Duration::from_secs(2),
            max_retries: 3,
            settle: Duration::from_millis(300),
            setup_backoff_min: Duration::from_secs(5),
            setup_backoff_max: Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rate_is_read_from_either_dialects_answer() {
        assert_eq!(data_rate_of("3"), Some(3));
        assert_eq!(data_rate_of("DR5"), Some(5));
        assert_eq!(data_rate_of("EU868 DR0 SF12 BW125K"), Some(0));
        assert_eq!(data_rate_of("EU868"), None);
        assert_eq!(data_rate_of("99"), None);
    }
}
