//! A RAK3172 (RUI3) modem and the LoRaWAN network behind it, in virtual
//! time: answers the driver's AT lines, joins, sends (losing uplinks or
//! their acks as the faults say), hangs until reset, reboots on its own.

use super::rng::Rng;

#[derive(Debug, Default)]
pub struct Modem {
    joined: bool,
    confirm: bool,
    hung: bool,
    /// Lines the modem will write, at true times.
    due: Vec<(i64, String)>,
    /// Uplinks the network received (port, payload), for the world to take.
    pub received: Vec<(u8, Vec<u8>)>,
    /// Probability an uplink is lost on air / its ack is lost.
    pub loss: f64,
    pub ack_loss: f64,
    /// The network is unreachable (gateway down): joins fail, uplinks are lost.
    pub network_down: bool,
}

impl Modem {
    pub fn new(loss: f64, ack_loss: f64) -> Modem {
        Modem {
            loss,
            ack_loss,
            ..Modem::default()
        }
    }

    pub fn next_due(&self) -> Option<i64> {
        self.due.iter().map(|d| d.0).min()
    }

    /// Lines due by `t`, in time order.
    pub fn take_due(&mut self, t: i64) -> Vec<String> {
        self.due.sort_by_key(|d| d.0);
        let n = self.due.iter().take_while(|d| d.0 <= t).count();
        self.due.drain(..n).map(|d| d.1).collect()
    }

    fn later(&mut self, t: i64, line: &str) {
        self.due.push((t, line.to_string()));
    }

    /// The modem stops answering until it is reset.
    pub fn hang(&mut self) {
        self.hung = true;
        self.due.clear();
    }

    /// The modem reboots by itself (brown-out, watchdog).
    pub fn reboot(&mut self, t: i64) {
        self.joined = false;
        self.hung = false;
        self.due.clear();
        self.later(t + 200, "RAKwireless RAK3172-E Example");
    }

    /// One command line from the driver at true time `t`.
    pub fn command(&mut self, cmd: &str, t: i64, rng: &mut Rng) {
        if cmd == "ATZ" {
            self.reboot(t);
            return;
        }
        if self.hung {
            return;
        }
        let ok = t + 5;
        if cmd == "AT" {
            self.later(ok, "OK");
        } else if cmd.starts_with("AT+JOIN") {
            self.later(ok, "OK");
            if self.network_down || rng.chance(0.05) {
                self.later(t + 6_000, "+EVT:JOIN_FAILED_RX_TIMEOUT");
            } else {
                self.joined = true;
                self.later(t + 6_000, "+EVT:JOINED");
            }
        } else if let Some(v) = cmd.strip_prefix("AT+CFM=") {
            self.confirm = v == "1";
            self.later(ok, "OK");
        } else if let Some(v) = cmd.strip_prefix("AT+SEND=") {
            let parsed = v
                .split_once(':')
                .and_then(|(p, h)| Some((p.parse::<u8>().ok()?, hex::decode(h).ok()?)));
            let Some((port, data)) = parsed else {
                self.later(ok, "AT_PARAM_ERROR");
                return;
            };
            if !self.joined {
                self.later(ok, "AT_NO_NETWORK_JOINED");
                return;
            }
            self.later(ok, "OK");
            let lost = self.network_down || rng.chance(self.loss);
            if !lost {
                self.received.push((port, data));
            }
            let end = match (self.confirm, lost || rng.chance(self.ack_loss)) {
                (false, _) => "+EVT:TX_DONE",
                (true, false) => "+EVT:SEND_CONFIRMED_OK",
                (true, true) => "+EVT:SEND_CONFIRMED_FAILED(4)",
            };
            self.later(t + 1_500 + rng.range(0, 1_500), end);
        } else if cmd.starts_with("AT+") && cmd.contains('=') {
            self.later(ok, "OK");
        } else {
            self.later(ok, "AT_COMMAND_NOT_FOUND");
        }
    }
}
