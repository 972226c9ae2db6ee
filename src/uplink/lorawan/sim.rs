//! A LoRaWAN modem simulator on a pseudo-terminal, for the demo and tests.
//!
//! Owns: one thread playing a RAK3172 (RUI3) or Wio-E5 modem on the master
//! side of a pty pair; the uplink code opens [`ModemSim::path`] like a real
//! port. It joins (optionally failing the first joins), enforces airtime and
//! the 1 % duty cycle with the same [`Budget`] rule as the gateway (answering
//! busy / duty-cycle errors), drops a configurable share of uplinks (with a
//! seeded generator, so tests are repeatable), acknowledges confirmed
//! uplinks that arrive, delivers queued downlinks, and can go silent until
//! it is reset.
//!
//! Faults a real module shows, each a [`SimConfig`] knob: left in LoRa P2P
//! work mode (RUI3 `AT+NWM=0`: LoRaWAN commands fail until `AT+NWM=1`,
//! which restarts it), refusing its set-up, a retransmit setting of its own
//! (`AT+RETY`: a lost confirmed uplink goes on air again, airtime the
//! gateway must book), damaged replies (a share of lines written without
//! their line ending), duty-cycle refusals of sends, and a session kept
//! across a reset (RUI3 restores it; `AT+NJS=?` tells). The session is kept
//! while the simulator runs, so a gateway restart finds the modem joined.
//! With ADR on, the simulated network moves the data rate after the first
//! uplink (`network_dr`), and `AT+DR=?` reports it.
//!
//! Not a LoRaWAN stack: no MAC commands, no crypto; it speaks the AT side.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::airtime::{Budget, BudgetLimits, DEFAULT_UPLINK_HZ, eu868_data_rate, uplink_airtime};
use super::at::{Framed, LineFramer};
use crate::model::{Class, Time};

/// Which firmware the simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimDialect {
    Rak3172,
    WioE5,
}

/// Simulator knobs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub dialect: SimDialect,
    /// Percent of uplinks lost on air (0–100).
    pub loss_percent: u8,
    pub seed: u64,
    /// The first N join attempts fail.
    pub join_failures: u32,
    /// Answer too-early sends with duty-cycle errors.
    pub enforce_duty_cycle: bool,
    /// RUI3 starts in LoRa P2P work mode.
    pub p2p_mode: bool,
    /// Refuse the work-mode command (RUI3 `AT+NWM`, Wio-E5 `AT+MODE`).
    pub refuse_setup: bool,
    /// The modem's own retransmissions of a confirmed uplink (until the
    /// gateway sets `AT+RETY`/`AT+RETRY`).
    pub retransmissions: u8,
    /// Percent of output lines written without their line ending.
    pub damaged_percent: u8,
    /// The next N sends are refused for the duty cycle (RUI3
    /// `AT_DUTYCYCLE_RESTRICTED`, Wio-E5 `No band in …ms`).
    pub duty_cycle_refusals: u32,
    /// A reset keeps the join (RUI3 restores its session).
    pub keep_session_on_reset: bool,
    /// With ADR on, the data rate the network moves the modem to.
    pub network_dr: Option<u8>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            dialect: SimDialect::Rak3172,
            loss_percent: 0,
            seed: 1,
            join_failures: 0,
            enforce_duty_cycle: true,
            p2p_mode: false,
            refuse_setup: false,
            retransmissions: 0,
            damaged_percent: 0,
            duty_cycle_refusals: 0,
            keep_session_on_reset: false,
            network_dr: None,
        }
    }
}

/// One uplink the simulated network saw (or lost).
#[derive(Debug, Clone, PartialEq)]
pub struct SimUplink {
    pub port: u8,
    pub data: Vec<u8>,
    pub confirmed: bool,
    pub lost: bool,
    /// When the send command reached the modem.
    pub at: Instant,
    /// The data rate it went out at.
    pub dr: u8,
    /// A retransmission the modem made on its own (no new send command).
    pub retransmission: bool,
}

/// What happened so far.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    pub uplinks: Vec<SimUplink>,
    pub joins: u32,
    pub resets: u32,
    /// Sends refused for busy / duty cycle.
    pub refusals: u32,
    /// Airtime of all transmissions.
    pub airtime: Duration,
    /// Every command line received, in order.
    pub commands: Vec<String>,
    /// Lines written without their line ending.
    pub damaged: u32,
}

#[derive(Debug, Default)]
struct Shared {
    stats: SimStats,
    loss_percent: u8,
    silent: bool,
    downlinks: VecDeque<(u8, Vec<u8>)>,
}

/// A running simulator. Dropping it stops the thread.
pub struct ModemSim {
    path: String,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _slave: serialport::TTYPort,
}

impl std::fmt::Debug for ModemSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModemSim")
            .field("path", &self.path)
            .finish()
    }
}

impl ModemSim {
    pub fn start(cfg: SimConfig) -> std::io::Result<ModemSim> {
        let (mut master, slave) = serialport::TTYPort::pair().map_err(std::io::Error::other)?;
        let path = serialport::SerialPort::name(&slave)
            .ok_or_else(|| std::io::Error::other("pty has no name"))?;
        serialport::SerialPort::set_timeout(&mut master, Duration::from_millis(10))
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Mutex::new(Shared {
            loss_percent: cfg.loss_percent.min(100),
            ..Shared::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut m = Machine::new(cfg, shared.clone());
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("lorawan-sim".into())
            .spawn(move || m.run(&mut master, &st))?;
        Ok(ModemSim {
            path,
            shared,
            stop,
            thread: Some(thread),
            _slave: slave,
        })
    }

    /// The port the uplink code opens.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Queues a downlink for the next uplink that reaches the network.
    pub fn queue_downlink(&self, port: u8, data: Vec<u8>) {
        self.with(|s| s.downlinks.push_back((port, data)));
    }

    /// Makes the modem ignore everything but a reset command.
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// Changes the share of uplinks lost on air.
    pub fn set_loss(&self, percent: u8) {
        self.with(|s| s.loss_percent = percent.min(100));
    }

    pub fn stats(&self) -> SimStats {
        self.with(|s| s.stats.clone())
    }
}

impl Drop for ModemSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Output scheduled for later (modems answer after airtime and RX windows).
struct Due {
    at: Instant,
    line: String,
    /// Ends the current radio transaction.
    ends_tx: bool,
}

struct Machine {
    cfg: SimConfig,
    shared: Arc<Mutex<Shared>>,
    rng: u64,
    joined: bool,
    join_failures_left: u32,
    dr: u8,
    port: u8,
    confirm: bool,
    budget: Budget,
    epoch: Instant,
    due: Vec<Due>,
    on_air: bool,
    /// RUI3 work mode: 0 P2P, 1 LoRaWAN.
    nwm: u8,
    adr: bool,
    rety: u8,
    dc_refusals_left: u32,
    /// Restarting: commands are not answered until then.
    booting_until: Option<Instant>,
}

impl Machine {
    fn new(cfg: SimConfig, shared: Arc<Mutex<Shared>>) -> Self {
        Machine {
            rng: cfg.seed | 1,
            join_failures_left: cfg.join_failures,
            shared,
            joined: false,
            dr: 5,
            port: 1,
            confirm: false,
            budget: Budget::new(BudgetLimits {
                daily_airtime: Duration::from_secs(86_400),
                daily_downlinks: u32::MAX,
                alert_reserve_percent: 0,
            }),
            epoch: Instant::now(),
            due: Vec::new(),
            on_air: false,
            nwm: if cfg.p2p_mode { 0 } else { 1 },
            adr: false,
            rety: cfg.retransmissions,
            dc_refusals_left: cfg.duty_cycle_refusals,
            booting_until: None,
            cfg,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut g = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    fn random_percent(&mut self) -> u8 {
        // xorshift64: repeatable per seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 100) as u8
    }

    fn now(&self) -> Time {
        Time(i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX))
    }

    fn run(&mut self, port: &mut serialport::TTYPort, stop: &AtomicBool) {
        let mut framer = LineFramer::new();
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::Relaxed) {
            let lines = match port.read(&mut buf) {
                Ok(n) => framer.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Vec::new(),
                // EIO until the uplink opens the slave side: wait for it.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    Vec::new()
                }
            };
            let mut out = Vec::new();
            for f in lines {
                if let Framed::Line(l) = f {
                    self.command(&l, &mut out);
                }
            }
            let now = Instant::now();
            self.due.sort_by_key(|d| d.at);
            while self.due.first().is_some_and(|d| d.at <= now) {
                let d = self.due.remove(0);
                if d.ends_tx {
                    self.on_air = false;
                }
                out.push(d.line);
            }
            let damaged = self.cfg.damaged_percent;
            for l in out {
                // Line noise: the line ending lost, the reply glued to the next.
                if damaged > 0 && self.random_percent() < damaged {
                    self.with(|s| s.stats.damaged += 1);
                    let _ = port.write_all(l.as_bytes());
                } else {
                    let _ = port.write_all(format!("{l}\r\n").as_bytes());
                }
            }
        }
    }

    fn later(&mut self, after: Duration, line: String, ends_tx: bool) {
        self.due.push(Due {
            at: Instant::now() + after,
            line,
            ends_tx,
        });
    }

    fn command(&mut self, cmd: &str, out: &mut Vec<String>) {
        let rak = self.cfg.dialect == SimDialect::Rak3172;
        let is_reset = cmd == "ATZ" || cmd == "AT+RESET";
        self.with(|s| s.stats.commands.push(cmd.to_string()));
        if self.with(|s| s.silent) && !is_reset {
            return;
        }
        if let Some(b) = self.booting_until {
            if Instant::now() < b {
                return;
            }
            self.booting_until = None;
        }
        if is_reset {
            self.with(|s| {
                s.silent = false;
                s.stats.resets += 1;
            });
            if !self.cfg.keep_session_on_reset {
                self.joined = false;
            }
            self.on_air = false;
            self.due.clear();
            if !rak {
                out.push("+RESET: OK".into());
            }
            let banner = if rak {
                "RAKwireless RAK3172-E Example"
            } else {
                "+AT: OK"
            };
            self.later(Duration::from_millis(200), banner.into(), false);
            return;
        }
        if cmd == "AT" {
            out.push(if rak { "OK".into() } else { "+AT: OK".into() });
            return;
        }
        if rak {
            self.rak(cmd, out)
        } else {
            self.wio(cmd, out)
        }
    }

    fn rak(&mut self, cmd: &str, out: &mut Vec<String>) {
        if let Some(v) = cmd.strip_prefix("AT+NWM=") {
            if self.cfg.refuse_setup {
                out.push("AT_ERROR".into());
                return;
            }
            let mode = v.parse().unwrap_or(1);
            out.push("OK".into());
            if mode != self.nwm {
                // RUI3 restarts to switch work mode.
                self.nwm = mode;
                self.joined = false;
                self.due.clear();
                self.booting_until = Some(Instant::now() + Duration::from_millis(200));
                self.later(
                    Duration::from_millis(200),
                    "Current Work Mode: LoRaWAN.".into(),
                    false,
                );
            }
            return;
        }
        if self.nwm != 1 {
            // P2P work mode: no LoRaWAN commands.
            out.push(if cmd.starts_with("AT+NJS") {
                "AT_MODE_NO_SUPPORT".into()
            } else {
                "AT_ERROR".into()
            });
            return;
        }
        if cmd == "AT+NJS=?" {
            out.push(format!("AT+NJS={}", u8::from(self.joined)));
            out.push("OK".into());
        } else if cmd == "AT+DR=?" {
            out.push(format!("AT+DR={}", self.dr));
            out.push("OK".into());
        } else if let Some(v) = cmd.strip_prefix("AT+RETY=") {
            self.rety = v.parse().unwrap_or(self.rety);
            out.push("OK".into());
        } else if let Some(v) = cmd.strip_prefix("AT+ADR=") {
            self.adr = v == "1";
            out.push("OK".into());
        } else if cmd.starts_with("AT+JOIN") {
            out.push("OK".into());
            self.join();
        } else if let Some(v) = cmd.strip_prefix("AT+CFM=") {
            self.confirm = v == "1";
            out.push("OK".into());
        } else if let Some(v) = cmd.strip_prefix("AT+SEND=") {
            let parsed = v
                .split_once(':')
                .and_then(|(p, h)| Some((p.parse::<u8>().ok()?, hex::decode(h).ok()?)));
            match parsed {
                Some((port, data)) => self.uplink(port, data, self.confirm, out),
                None => out.push("AT_PARAM_ERROR".into()),
            }
        } else if let Some(v) = cmd.strip_prefix("AT+DR=") {
            self.dr = v.parse().unwrap_or(self.dr);
            out.push("OK".into());
        } else if cmd.starts_with("AT+") && cmd.contains('=') {
            out.push("OK".into());
        } else {
            out.push("AT_COMMAND_NOT_FOUND".into());
        }
    }

    fn wio(&mut self, cmd: &str, out: &mut Vec<String>) {
        if cmd == "AT+JOIN" && self.joined {
            out.push("+JOIN: Joined already".into());
            return;
        }
        if cmd == "AT+DR" {
            out.push(format!("+DR: DR{}", self.dr));
            return;
        }
        if cmd.starts_with("AT+MODE=") && self.cfg.refuse_setup {
            out.push("+MODE: ERROR(-1)".into());
            return;
        }
        if cmd == "AT+JOIN" {
            out.push("+JOIN: Start".into());
            out.push("+JOIN: NORMAL".into());
            self.join();
            return;
        }
        let Some((name, arg)) = cmd.strip_prefix("AT+").and_then(|r| r.split_once('=')) else {
            out.push("+AT: ERROR(-1)".into());
            return;
        };
        let arg_plain = arg.trim_matches('"');
        match name {
            "MSGHEX" | "CMSGHEX" => match hex::decode(arg_plain).ok() {
                Some(data) => self.uplink(self.port, data, name == "CMSGHEX", out),
                None => out.push(format!("+{name}: ERROR(-2)")),
            },
            "RETRY" => {
                // Wio-E5 counts transmissions: n < 2 sends once.
                let n: u8 = arg.parse().unwrap_or(1);
                self.rety = n.saturating_sub(1);
                out.push(format!("+RETRY: {n}"));
            }
            "ADR" => {
                self.adr = arg_plain == "ON";
                out.push(format!("+ADR: {arg_plain}"));
            }
            "PORT" => {
                self.port = arg.parse().unwrap_or(self.port);
                out.push(format!("+PORT: {}", self.port));
            }
            "DR" => {
                if let Ok(dr) = arg.parse() {
                    self.dr = dr;
                    out.push(format!("+DR: DR{dr}"));
                } else {
                    out.push(format!("+DR: {arg}"));
                }
            }
            "ID" | "KEY" => {
                let (k, v) = arg.split_once(',').unwrap_or((arg, ""));
                let sep = if name == "ID" { ", " } else { " " };
                out.push(format!("+{name}: {k}{sep}{}", v.trim_matches('"')));
            }
            _ => out.push(format!("+{name}: {arg_plain}")),
        }
    }

    fn join(&mut self) {
        let rak = self.cfg.dialect == SimDialect::Rak3172;
        let fail = self.join_failures_left > 0;
        self.join_failures_left = self.join_failures_left.saturating_sub(1);
        if let Some(r) = eu868_data_rate(self.dr) {
            let air = super::airtime::time_on_air(r, 23);
            self.budget
                .record_uplink(Class::Alert, self.now(), air, DEFAULT_UPLINK_HZ);
            self.with(|s| s.stats.airtime += air);
        }
        let d = Duration::from_millis(150);
        if fail {
            let l = if rak {
                "+EVT:JOIN_FAILED_RX_TIMEOUT"
            } else {
                "+JOIN: Join failed"
            };
            self.later(d, l.into(), false);
        } else {
            self.joined = true;
            self.with(|s| s.stats.joins += 1);
            let l = if rak {
                "+EVT:JOINED"
            } else {
                "+JOIN: Network joined"
            };
            self.later(d, l.into(), false);
            if !rak {
                self.later(d, "+JOIN: NetID 000013 DevAddr 26:0B:00:01".into(), false);
            }
        }
        if !rak {
            self.later(d + Duration::from_millis(1), "+JOIN: Done".into(), false);
        }
    }

    fn uplink(&mut self, port: u8, data: Vec<u8>, confirmed: bool, out: &mut Vec<String>) {
        let rak = self.cfg.dialect == SimDialect::Rak3172;
        let verb = if confirmed { "CMSGHEX" } else { "MSGHEX" };
        if !self.joined {
            out.push(if rak {
                "AT_NO_NETWORK_JOINED".into()
            } else {
                format!("+{verb}: Please join network first")
            });
            return;
        }
        let Some(radio) = eu868_data_rate(self.dr) else {
            out.push(if rak {
                "AT_PARAM_ERROR".into()
            } else {
                format!("+{verb}: DR error")
            });
            return;
        };
        let air = uplink_airtime(radio, data.len());
        let now = self.now();
        if self.dc_refusals_left > 0 {
            self.dc_refusals_left -= 1;
            self.with(|s| s.stats.refusals += 1);
            out.push(if rak {
                "AT_DUTYCYCLE_RESTRICTED".into()
            } else {
                format!("+{verb}: No band in 1500ms")
            });
            return;
        }
        let wait = match self
            .budget
            .earliest(Class::Alert, air, DEFAULT_UPLINK_HZ, now)
        {
            Ok(t) => t.since(now),
            Err(_) => Duration::from_secs(3600),
        };
        if self.on_air || (self.cfg.enforce_duty_cycle && !wait.is_zero()) {
            self.with(|s| s.stats.refusals += 1);
            out.push(if rak {
                "AT_BUSY_ERROR".into()
            } else if self.on_air {
                format!("+{verb}: LoRaWAN modem is busy")
            } else {
                format!("+{verb}: No band in {}ms", wait.as_millis())
            });
            return;
        }
        self.budget
            .record_uplink(Class::Alert, now, air, DEFAULT_UPLINK_HZ);
        self.on_air = true;
        let loss = self.with(|s| s.loss_percent);
        let lost = self.random_percent() < loss;
        let downlink = if lost {
            None
        } else {
            self.with(|s| s.downlinks.pop_front())
        };
        let dr = self.dr;
        // The modem's own retransmissions of a lost confirmed uplink.
        let extra = if confirmed && lost { self.rety } else { 0 };
        self.with(|s| {
            s.stats.airtime += air * (1 + u32::from(extra));
            for i in 0..=extra {
                s.stats.uplinks.push(SimUplink {
                    port,
                    data: data.clone(),
                    confirmed,
                    lost,
                    at: Instant::now(),
                    dr,
                    retransmission: i > 0,
                });
            }
        });
        if extra > 0 {
            self.budget
                .record_uplink(Class::Alert, now, air * u32::from(extra), DEFAULT_UPLINK_HZ);
        }
        // ADR: the network moves the data rate after an uplink it heard.
        if self.adr
            && !lost
            && let Some(n) = self.cfg.network_dr
        {
            self.dr = n;
        }
        if rak {
            out.push("OK".into());
        } else {
            out.push(format!("+{verb}: Start"));
            if confirmed {
                out.push(format!("+{verb}: Wait ACK"));
            }
        }
        // The radio is busy for the airtime, then the RX windows (shortened).
        let rx = air + Duration::from_millis(100);
        if let Some((p, d)) = &downlink {
            let l = if rak {
                format!("+EVT:RX_1:-70:8:UNICAST:{p}:{}", hex::encode_upper(d))
            } else {
                format!("+{verb}: PORT: {p}; RX: \"{}\"", hex::encode_upper(d))
            };
            self.later(rx, l, false);
        }
        let end = match (rak, confirmed, lost) {
            (true, false, _) => vec!["+EVT:TX_DONE".to_string()],
            (true, true, false) => vec!["+EVT:SEND_CONFIRMED_OK".into()],
            (true, true, true) => vec!["+EVT:SEND_CONFIRMED_FAILED(4)".into()],
            (false, true, false) => {
                vec![format!("+{verb}: ACK Received"), format!("+{verb}: Done")]
            }
            (false, _, _) => vec![format!("+{verb}: Done")],
        };
        let n = end.len();
        for (i, l) in end.into_iter().enumerate() {
            let t = rx + Duration::from_millis(1 + u64::try_from(i).unwrap_or(0));
            self.later(t, l, i + 1 == n);
        }
    }
}
