//! Uplinks: deliver the outbox upstream and bring commands back.
//!
//! The outbox (the shell crate's `store`) is the truth. An uplink reads committed
//! rows by priority class then `seq`, publishes them, and asks the store to
//! delete a row only after the far end acknowledged it (MQTT PUBACK, LoRaWAN
//! confirmed ack). Whatever a client library keeps in flight is treated as
//! volatile: after any reconnect, everything not acknowledged is sent again
//! (the receiver de-duplicates by the row's `id`).
//!
//! - `mqtt` (shell crate): the care organisation's MQTT broker (rumqttc, TLS, QoS 1);
//! - [`lorawan`]: a LoRaWAN modem on a serial port;
//! - [`router`]: the dual-path decision (which alert goes by radio, when),
//!   and `dual` (shell crate), the task that carries it out between the outbox and the modem.
//!
//! This core module holds the pure parts: the router, back-off, the LoRaWAN
//! layers below the port, and the types the uplinks report with.

pub mod backoff;
pub mod lorawan;
pub mod router;

use serde::Serialize;

use crate::model::Time;

/// Connection state of one uplink, for the heartbeat and the UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UplinkState {
    /// `"connected"`, `"connecting"`, `"disconnected"` or `"off"`.
    pub state: &'static str,
    /// When the state last changed.
    pub since: Option<Time>,
    /// Successful connections since start.
    pub connects: u64,
    /// The last error, if the link is not connected.
    pub last_error: Option<String>,
    /// Rows acknowledged by the far end since start.
    pub delivered: u64,
    /// The broker node in use or being tried (`host:port`), MQTT only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Connections made to a different node than the previous one.
    pub failovers: u64,
}

impl UplinkState {
    pub fn off() -> Self {
        UplinkState {
            state: "off",
            since: None,
            connects: 0,
            last_error: None,
            delivered: 0,
            node: None,
            failovers: 0,
        }
    }
}

impl Default for UplinkState {
    fn default() -> Self {
        UplinkState::off()
    }
}

/// A command that arrived from upstream (`<prefix>/<gateway>/cmd/<name>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub payload: Vec<u8>,
    /// The transport's receipt, handed back on the result's [`Direct::settles`]
    /// (MQTT: the PUBLISH is PUBACKed only then, so a command lost to a
    /// crash before it ran is delivered again); `None`: nothing to settle.
    pub receipt: Option<u64>,
}

/// A message published directly, not through the outbox (command results):
/// it is not durable, the cloud repeats a command that got no answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Direct {
    /// Topic below `<prefix>/<gateway>/`, e.g. `cmd/ping/result`.
    pub subtopic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// A command's [`Command::receipt`]: once this result is handed to the
    /// broker, the command's delivery is acknowledged.
    pub settles: Option<u64>,
}

/// An uplink path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Mqtt,
    Lorawan,
    /// The alarm receiving centre (SIA DC-09): recorded when its ACK came
    /// first; the outbox row stays for the other paths.
    Arc,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Mqtt => "mqtt",
            Via::Lorawan => "lorawan",
            Via::Arc => "arc",
        }
    }
    /// The inverse of [`Via::as_str`].
    pub fn parse(s: &str) -> Option<Via> {
        match s {
            "mqtt" => Some(Via::Mqtt),
            "lorawan" => Some(Via::Lorawan),
            "arc" => Some(Via::Arc),
            _ => None,
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
