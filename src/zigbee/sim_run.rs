//! The coordinator simulator as something to run: [`SimStick`] (a simulator
//! with devices and an optional periodic reporter, used in-process by
//! `carebridge demo`) and [`main`], the `carebridge sim-stick` command that
//! runs one as its own process on a pseudo-terminal, driven by stdin. A
//! separate process is what lets tests kill the "stick" for real (the pty
//! closes as when a USB stick is pulled) and start a new one.
//!
//! # The stdin protocol of `carebridge sim-stick`
//!
//! One command per line; devices are numbered from 1 in the order added.
//!
//! ```text
//! add <kind>              a device that joins when permit join opens: motion,
//!                         contact, temperature, panic, or a real-looking one:
//!                         aqara-door, tuya-presence, frient-panic
//! pair                    every waiting device is in the network without joining
//! panic <n>               press device n's panic button (IAS alarm1)
//! alarm <n> <on|off>      set an IAS device's alarm1 (motion, door open)
//! temp <n> <°C> <%RH>     a temperature + humidity report
//! devices                 list: <n>:<kind>:<ieee>:<nwk|->:<enrolled|->
//! silent <on|off>         the stick stops answering (fault)
//! vanish | reappear       the pty closes / a new pty behind the same link
//! quit                    stop (the link is removed)
//! ```
//!
//! Each command is answered by exactly one line, `ok[ …]` or `error: …`, so a
//! driver reads one line per command. After start-up the process prints
//! `ready <link> <pty>` once. End of input does not stop the stick (it may
//! run with stdin closed); `quit`, SIGTERM or SIGKILL do.
//!
//! Invariants: the command parser is pure and a bad line never ends the
//! process; dropping a [`SimStick`] stops its reporter and its simulator.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::sim::{SimDeviceKind, SimHandle, Simulator};
use crate::config::Dur;

/// What to run: where, which devices, whether they are already paired,
/// and how often joined devices report on their own.
#[derive(Debug, Clone, clap::Args)]
pub struct SimStickArgs {
    /// The path the gateway opens (`[zigbee] port`): a symlink to the pty.
    #[arg(long)]
    pub link: PathBuf,
    /// Devices to add, comma separated: motion, contact, temperature, panic,
    /// aqara-door, tuya-presence, frient-panic.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<SimDeviceKind>,
    /// The devices are already paired: they are in the network as soon as
    /// the stick runs one (a replaced stick whose gateway restores the
    /// network from its backup), instead of waiting for permit join.
    #[arg(long)]
    pub paired: bool,
    /// Joined devices report on their own this often (e.g. `30s`); off when absent.
    #[arg(long, value_parser = Dur::parse)]
    pub report_every: Option<Dur>,
}

/// A running simulator with its devices and optional reporter.
#[derive(Debug)]
pub struct SimStick {
    handle: Arc<SimHandle>,
    stop: Arc<AtomicBool>,
    reporter: Option<JoinHandle<()>>,
}

impl SimStick {
    /// Starts the simulator behind a new pty at `args.link`.
    pub fn start(args: &SimStickArgs) -> std::io::Result<SimStick> {
        let handle = Arc::new(Simulator::start(&args.link)?);
        for k in &args.devices {
            handle.add_device(*k);
        }
        handle.set_auto_pair(args.paired);
        let stop = Arc::new(AtomicBool::new(false));
        let reporter = match args.report_every {
            Some(every) if !every.0.is_zero() => {
                let (h, s) = (handle.clone(), stop.clone());
                Some(
                    std::thread::Builder::new()
                        .name("zigbee-sim-reports".into())
                        .spawn(move || report_loop(&h, every.0, &s))?,
                )
            }
            _ => None,
        };
        Ok(SimStick {
            handle,
            stop,
            reporter,
        })
    }

    pub fn handle(&self) -> &SimHandle {
        &self.handle
    }
}

impl Drop for SimStick {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reporter.take() {
            let _ = t.join();
        }
        // The last Arc of the handle goes with `self`: the simulator stops
        // and removes its link.
    }
}

/// Joined devices report like real ones do: thermometers on a period,
/// motion sensors seeing someone now and then (alarm on, then off).
/// Panic buttons and contacts never act on their own.
fn report_loop(h: &SimHandle, every: Duration, stop: &AtomicBool) {
    let mut round: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let end = std::time::Instant::now() + every;
        while std::time::Instant::now() < end {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50).min(every));
        }
        round += 1;
        for (ieee, kind, nwk, _) in h.devices() {
            if nwk.is_none() {
                continue;
            }
            match kind {
                SimDeviceKind::Temperature => {
                    // A gentle daily-ish wave around 20.5 °C, different per device.
                    let phase = (round + ieee % 7) % 12;
                    let c = 19.5 + (phase.min(12 - phase) as f64) * 0.35;
                    h.report_temperature(ieee, c, 45.0 + phase as f64);
                }
                SimDeviceKind::Motion | SimDeviceKind::TuyaPresence => {
                    h.zone_alarm(ieee, round % 2 == 1)
                }
                // Its hourly keep-alive, sooner: the battery and the door.
                SimDeviceKind::AqaraDoor => h.xiaomi_keepalive(ieee),
                SimDeviceKind::Contact
                | SimDeviceKind::PanicButton
                | SimDeviceKind::FrientPanic
                | SimDeviceKind::Siren => {}
            }
        }
    }
}

/// One line of the stdin protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum SimCommand {
    Add(SimDeviceKind),
    Pair,
    Panic(usize),
    Alarm(usize, bool),
    Temp(usize, f64, f64),
    Devices,
    Silent(bool),
    Vanish,
    Reappear,
    Quit,
}

fn on_off(word: Option<&str>, what: &str) -> Result<bool, String> {
    match word {
        Some("on" | "1" | "true") => Ok(true),
        Some("off" | "0" | "false") => Ok(false),
        other => Err(format!("{what}: expected on or off, got {other:?}")),
    }
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("{what}: missing"))?;
    w.parse()
        .map_err(|_| format!("{what}: {w:?} is not a number"))
}

fn device_no(word: Option<&str>) -> Result<usize, String> {
    match number::<usize>(word, "device number")? {
        0 => Err("device number: devices are numbered from 1".into()),
        n => Ok(n),
    }
}

/// Parses one line; `Ok(None)` for a blank line or a `#` comment.
pub fn parse_command(line: &str) -> Result<Option<SimCommand>, String> {
    let mut w = line.split_whitespace();
    let Some(verb) = w.next().filter(|v| !v.starts_with('#')) else {
        return Ok(None);
    };
    let cmd = match verb {
        "add" => SimCommand::Add(w.next().ok_or("add: which kind?")?.parse()?),
        "pair" => SimCommand::Pair,
        "panic" => SimCommand::Panic(device_no(w.next())?),
        "alarm" => SimCommand::Alarm(device_no(w.next())?, on_off(w.next(), "alarm")?),
        "temp" => {
            let n = device_no(w.next())?;
            let c: f64 = number(w.next(), "temperature")?;
            let rh: f64 = number(w.next(), "humidity")?;
            if !(-50.0..=100.0).contains(&c) || !(0.0..=100.0).contains(&rh) {
                return Err("temp: °C in -50..100 and %RH in 0..100".into());
            }
            SimCommand::Temp(n, c, rh)
        }
        "devices" => SimCommand::Devices,
        "silent" => SimCommand::Silent(on_off(w.next(), "silent")?),
        "vanish" => SimCommand::Vanish,
        "reappear" => SimCommand::Reappear,
        "quit" => SimCommand::Quit,
        other => return Err(format!("unknown command {other:?}")),
    };
    match w.next() {
        Some(extra) => Err(format!("{verb}: unexpected {extra:?}")),
        None => Ok(Some(cmd)),
    }
}

/// Carries out one command; the answer line without `ok`/`error:`.
pub fn execute(h: &SimHandle, cmd: &SimCommand) -> Result<String, String> {
    let ieee = |n: usize| {
        h.devices()
            .get(n - 1)
            .map(|d| d.0)
            .ok_or_else(|| format!("no device {n}"))
    };
    match cmd {
        SimCommand::Add(k) => {
            let ieee = h.add_device(*k);
            Ok(format!("{} {ieee:016x}", h.devices().len()))
        }
        SimCommand::Pair => {
            h.pair_all();
            Ok(String::new())
        }
        SimCommand::Panic(n) => {
            h.press_panic(ieee(*n)?);
            Ok(String::new())
        }
        SimCommand::Alarm(n, on) => {
            h.zone_alarm(ieee(*n)?, *on);
            Ok(String::new())
        }
        SimCommand::Temp(n, c, rh) => {
            h.report_temperature(ieee(*n)?, *c, *rh);
            Ok(String::new())
        }
        SimCommand::Devices => Ok(h
            .devices()
            .iter()
            .enumerate()
            .map(|(i, (ieee, kind, nwk, enrolled))| {
                format!(
                    "{}:{}:{ieee:016x}:{}:{}",
                    i + 1,
                    kind.as_str(),
                    nwk.map_or("-".to_string(), |n| format!("{n:04x}")),
                    if *enrolled { "enrolled" } else { "-" }
                )
            })
            .collect::<Vec<_>>()
            .join(" ")),
        SimCommand::Silent(on) => {
            h.set_silent(*on);
            Ok(String::new())
        }
        SimCommand::Vanish => {
            h.vanish();
            Ok(String::new())
        }
        SimCommand::Reappear => h
            .reappear()
            .map(|()| String::new())
            .map_err(|e| e.to_string()),
        SimCommand::Quit => Ok(String::new()),
    }
}

/// Answers commands from `input` on `out` until `quit`; at end of input the
/// stick keeps running until the process is killed.
pub fn serve(h: &SimHandle, input: impl BufRead, mut out: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        let answer = match parse_command(&line) {
            Ok(None) => continue,
            Ok(Some(SimCommand::Quit)) => {
                writeln!(out, "ok")?;
                out.flush()?;
                return Ok(());
            }
            Ok(Some(cmd)) => execute(h, &cmd),
            Err(e) => Err(e),
        };
        match answer {
            Ok(s) if s.is_empty() => writeln!(out, "ok")?,
            Ok(s) => writeln!(out, "ok {s}")?,
            Err(e) => writeln!(out, "error: {e}")?,
        }
        out.flush()?;
    }
    loop {
        std::thread::park();
    }
}

/// `carebridge sim-stick`: starts the stick, prints `ready`, serves stdin.
pub fn main(args: &SimStickArgs) -> anyhow::Result<()> {
    let stick = SimStick::start(args)
        .map_err(|e| anyhow::anyhow!("starting the simulator at {}: {e}", args.link.display()))?;
    let pty = std::fs::read_link(&args.link).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {} {}", args.link.display(), pty.display())?;
    out.flush()?;
    serve(stick.handle(), std::io::stdin().lock(), out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_ignores_blank_lines_and_comments() {
        assert_eq!(parse_command("  "), Ok(None));
        assert_eq!(parse_command("# note"), Ok(None));
        assert_eq!(
            parse_command("add panic"),
            Ok(Some(SimCommand::Add(SimDeviceKind::PanicButton)))
        );
        assert_eq!(parse_command("panic 2"), Ok(Some(SimCommand::Panic(2))));
        assert_eq!(
            parse_command("alarm 1 off"),
            Ok(Some(SimCommand::Alarm(1, false)))
        );
        assert_eq!(
            parse_command("temp 3 21.5 40"),
            Ok(Some(SimCommand::Temp(3, 21.5, 40.0)))
        );
        assert_eq!(
            parse_command("silent on"),
            Ok(Some(SimCommand::Silent(true)))
        );
        assert_eq!(parse_command("quit"), Ok(Some(SimCommand::Quit)));
    }

    #[test]
    fn bad_lines_name_what_is_wrong() {
        for (line, says) in [
            ("add toaster", "toaster"),
            ("panic 0", "numbered from 1"),
            ("panic x", "\"x\" is not a number"),
            ("temp 1 21.5", "humidity: missing"),
            ("temp 1 900 40", "°C"),
            ("alarm 1 maybe", "on or off"),
            ("pair now", "unexpected \"now\""),
            ("reboot", "unknown command"),
        ] {
            let e = parse_command(line).unwrap_err();
            assert!(e.contains(says), "{line:?} → {e}");
        }
    }

    #[test]
    fn serve_answers_each_command_with_one_line_and_keeps_going_after_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let args = SimStickArgs {
            link: dir.path().join("zb"),
            devices: vec![SimDeviceKind::PanicButton],
            paired: false,
            report_every: None,
        };
        let stick = SimStick::start(&args).unwrap();
        let input = b"pair\ndevices\npanic 9\n\nadd temperature\ntemp 2 20 50\ndevices\nquit\n";
        let mut out = Vec::new();
        serve(stick.handle(), &input[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "ok",
                "ok 1:panic:00158d0000000001:1a2b:-",
                "error: no device 9",
                "ok 2 00158d0000000002",
                "ok",
                "ok 1:panic:00158d0000000001:1a2b:- 2:temperature:00158d0000000002:-:-",
                "ok",
            ]
        );
        drop(stick);
        assert!(!args.link.exists(), "the link goes with the simulator");
    }
}
