//! ZCL IAS WD (Warning Device, cluster 0x0502, ZCL §8.4): the commands the
//! gateway sends a siren to warn locally before an automatic alert goes
//! out (a pre-alarm, `rules/prealarm.rs`) — Start Warning (0x00) and
//! Squawk (0x01) — as pure encoders and decoders over the ZCL frame
//! (header + payload), client → server.
//!
//! Start Warning payload: warning info (bits 7-4 warning mode, 3-2
//! strobe, 1-0 siren level), warning duration (u16 LE, seconds), strobe
//! duty cycle (u8, 0-100 in steps of 10), strobe level (u8). Squawk
//! payload: squawk info (bits 7-4 squawk mode, 3 strobe, 1-0 level).
//! Warning mode 0 (stop) ends a warning.

use super::zcl::Header;

/// The IAS WD cluster id.
pub const CLUSTER: u16 = 0x0502;
/// Start Warning command id.
pub const START_WARNING: u8 = 0x00;
/// Squawk command id.
pub const SQUAWK: u8 = 0x01;

/// Warning modes (bits 7-4 of the warning info).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WarningMode {
    Stop = 0,
    Burglar = 1,
    Fire = 2,
    Emergency = 3,
    PolicePanic = 4,
    FirePanic = 5,
    EmergencyPanic = 6,
}

impl WarningMode {
    fn from_u8(v: u8) -> Option<WarningMode> {
        Some(match v {
            0 => WarningMode::Stop,
            1 => WarningMode::Burglar,
            2 => WarningMode::Fire,
            3 => WarningMode::Emergency,
            4 => WarningMode::PolicePanic,
            5 => WarningMode::FirePanic,
            6 => WarningMode::EmergencyPanic,
            _ => return None,
        })
    }
}

/// Siren / squawk level (bits 1-0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    Low = 0,
    Medium = 1,
    High = 2,
    VeryHigh = 3,
}

impl Level {
    fn from_bits(v: u8) -> Level {
        match v & 0x03 {
            0 => Level::Low,
            1 => Level::Medium,
            2 => Level::High,
            _ => Level::VeryHigh,
        }
    }
}

/// A Start Warning command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartWarning {
    pub mode: WarningMode,
    pub strobe: bool,
    pub level: Level,
    /// Seconds.
    pub duration: u16,
    /// 0-100, in steps of 10.
    pub duty_cycle: u8,
    pub strobe_level: Level,
}

impl StartWarning {
    /// The pre-alarm warning: emergency, strobe on, medium level (a
    /// person at home, not a burglar), for `secs`.
    pub fn prealarm(secs: u16) -> StartWarning {
        StartWarning {
            mode: WarningMode::Emergency,
            strobe: true,
            level: Level::Medium,
            duration: secs,
            duty_cycle: 50,
            strobe_level: Level::Medium,
        }
    }

    /// Stop any warning.
    pub fn stop() -> StartWarning {
        StartWarning {
            mode: WarningMode::Stop,
            strobe: false,
            level: Level::Low,
            duration: 0,
            duty_cycle: 0,
            strobe_level: Level::Low,
        }
    }
}

/// Squawk modes (bits 7-4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SquawkMode {
    /// "System armed" sound.
    Armed = 0,
    /// "System disarmed" sound: used to confirm a cancelled pre-alarm.
    Disarmed = 1,
}

/// A Squawk command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Squawk {
    pub mode: SquawkMode,
    pub strobe: bool,
    pub level: Level,
}

/// An IAS WD command (client → server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    StartWarning(StartWarning),
    Squawk(Squawk),
}

/// Why bytes are not an IAS WD command; names the byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IasWdError {
    #[error("ias_wd: frame too short: {field} missing at byte {at}")]
    Short { field: &'static str, at: usize },
    #[error(
        "ias_wd: byte 0: not a client-to-server cluster-specific command (frame control {0:#04x})"
    )]
    NotClusterCommand(u8),
    #[error("ias_wd: byte {at}: unknown command {command:#04x}")]
    UnknownCommand { command: u8, at: usize },
    #[error("ias_wd: byte {at}: warning mode {mode} is reserved")]
    ReservedMode { mode: u8, at: usize },
    #[error("ias_wd: byte {at}: strobe duty cycle {value} is above 100")]
    DutyCycle { value: u8, at: usize },
}

/// What a siren must be sent for a pre-alarm's local warning
/// (`rules::prealarm::WarningAct`): its start, a Start Warning for the
/// pre-alarm's length ([`StartWarning::prealarm`], capped at u16 seconds);
/// its cancel by a press, Stop then a "disarmed" Squawk (she hears it was
/// cancelled); the alert going out, Stop.
pub fn prealarm_commands(act: crate::rules::prealarm::WarningAct) -> Vec<Command> {
    use crate::rules::prealarm::WarningAct;
    let stop = Command::StartWarning(StartWarning::stop());
    match act {
        WarningAct::Start { secs } => vec![Command::StartWarning(StartWarning::prealarm(
            u16::try_from(secs).unwrap_or(u16::MAX),
        ))],
        WarningAct::Cancelled => vec![
            stop,
            Command::Squawk(Squawk {
                mode: SquawkMode::Disarmed,
                strobe: false,
                level: Level::Medium,
            }),
        ],
        WarningAct::Sent => vec![stop],
    }
}

/// Encodes `cmd` as a ZCL frame with sequence number `seq`.
pub fn encode(seq: u8, cmd: &Command, out: &mut Vec<u8>) {
    let command = match cmd {
        Command::StartWarning(_) => START_WARNING,
        Command::Squawk(_) => SQUAWK,
    };
    Header {
        cluster_specific: true,
        server_to_client: false,
        disable_default_rsp: false,
        manufacturer: None,
        seq,
        command,
    }
    .encode(out);
    match cmd {
        Command::StartWarning(w) => {
            out.push((w.mode as u8) << 4 | u8::from(w.strobe) << 2 | w.level as u8);
            out.extend_from_slice(&w.duration.to_le_bytes());
            out.push(w.duty_cycle);
            out.push(w.strobe_level as u8);
        }
        Command::Squawk(s) => {
            out.push((s.mode as u8) << 4 | u8::from(s.strobe) << 3 | s.level as u8);
        }
    }
}

/// Decodes a ZCL frame into `(seq, command)` (what a siren receives).
pub fn decode(b: &[u8]) -> Result<(u8, Command), IasWdError> {
    let byte =
        |at: usize, field: &'static str| b.get(at).copied().ok_or(IasWdError::Short { field, at });
    let fc = byte(0, "frame_control")?;
    if fc & 0x03 != 0x01 || fc & 0x08 != 0 {
        return Err(IasWdError::NotClusterCommand(fc));
    }
    // A manufacturer-specific frame carries two more header bytes.
    let h = if fc & 0x04 != 0 { 3 } else { 1 };
    let seq = byte(h, "seq")?;
    let command = byte(h + 1, "command")?;
    let p = h + 2;
    match command {
        START_WARNING => {
            let info = byte(p, "warning_info")?;
            let mode = WarningMode::from_u8(info >> 4).ok_or(IasWdError::ReservedMode {
                mode: info >> 4,
                at: p,
            })?;
            let lo = byte(p + 1, "warning_duration")?;
            let hi = byte(p + 2, "warning_duration")?;
            let duty_cycle = byte(p + 3, "strobe_duty_cycle")?;
            if duty_cycle > 100 {
                return Err(IasWdError::DutyCycle {
                    value: duty_cycle,
                    at: p + 3,
                });
            }
            let strobe_level = Level::from_bits(byte(p + 4, "strobe_level")?);
            Ok((
                seq,
                Command::StartWarning(StartWarning {
                    mode,
                    strobe: info & 0x0C != 0,
                    level: Level::from_bits(info),
                    duration: u16::from_le_bytes([lo, hi]),
                    duty_cycle,
                    strobe_level,
                }),
            ))
        }
        SQUAWK => {
            let info = byte(p, "squawk_info")?;
            let mode = match info >> 4 {
                0 => SquawkMode::Armed,
                1 => SquawkMode::Disarmed,
                m => return Err(IasWdError::ReservedMode { mode: m, at: p }),
            };
            Ok((
                seq,
                Command::Squawk(Squawk {
                    mode,
                    strobe: info & 0x08 != 0,
                    level: Level::from_bits(info),
                }),
            ))
        }
        command => Err(IasWdError::UnknownCommand { command, at: h + 1 }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prealarm_start_warning_encodes_to_the_zcl_bytes() {
        let mut out = Vec::new();
        encode(
            7,
            &Command::StartWarning(StartWarning::prealarm(60)),
            &mut out,
        );
        // fc 0x01 (cluster-specific, client→server), seq, cmd 0x00,
        // info 0x35 (emergency 3<<4, strobe 1<<2, medium 1), 60 s LE, 50 %, medium.
        assert_eq!(out, [0x01, 0x07, 0x00, 0x35, 0x3c, 0x00, 0x32, 0x01]);
        assert_eq!(
            decode(&out).unwrap(),
            (7, Command::StartWarning(StartWarning::prealarm(60)))
        );
    }

    #[test]
    fn stop_and_a_disarmed_squawk_encode_to_the_zcl_bytes() {
        let mut out = Vec::new();
        encode(1, &Command::StartWarning(StartWarning::stop()), &mut out);
        assert_eq!(out, [0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
        out.clear();
        let sq = Squawk {
            mode: SquawkMode::Disarmed,
            strobe: true,
            level: Level::High,
        };
        encode(2, &Command::Squawk(sq), &mut out);
        assert_eq!(out, [0x01, 0x02, 0x01, 0x1a]);
        assert_eq!(decode(&out).unwrap(), (2, Command::Squawk(sq)));
    }

    #[test]
    fn bad_frames_are_refused_naming_the_byte() {
        let e = decode(&[0x01, 0x07, 0x00, 0x35, 0x3c]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ias_wd: frame too short: warning_duration missing at byte 5"
        );
        let e = decode(&[0x01, 0x07, 0x00, 0x75, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.to_string(), "ias_wd: byte 3: warning mode 7 is reserved");
        let e = decode(&[0x01, 0x07, 0x05]).unwrap_err();
        assert_eq!(e.to_string(), "ias_wd: byte 2: unknown command 0x05");
        let e = decode(&[0x09, 0x07, 0x00]).unwrap_err();
        assert!(matches!(e, IasWdError::NotClusterCommand(0x09)), "{e}");
        let e = decode(&[0x01, 0x07, 0x00, 0x35, 0x3c, 0x00, 0x65, 0x01]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ias_wd: byte 6: strobe duty cycle 101 is above 100"
        );
    }

    #[test]
    fn a_prealarm_starts_for_its_length_and_its_cancel_or_send_stops_the_siren() {
        use crate::rules::prealarm::WarningAct;
        assert_eq!(
            prealarm_commands(WarningAct::Start { secs: 60 }),
            [Command::StartWarning(StartWarning::prealarm(60))]
        );
        assert_eq!(
            prealarm_commands(WarningAct::Start { secs: 100_000 }),
            [Command::StartWarning(StartWarning::prealarm(u16::MAX))]
        );
        let stop = Command::StartWarning(StartWarning::stop());
        assert_eq!(prealarm_commands(WarningAct::Sent), [stop]);
        let c = prealarm_commands(WarningAct::Cancelled);
        assert_eq!(c[0], stop);
        assert!(
            matches!(
                c[1],
                Command::Squawk(Squawk {
                    mode: SquawkMode::Disarmed,
                    ..
                })
            ),
            "{c:?}"
        );
    }

    fn level() -> impl Strategy<Value = Level> {
        prop_oneof![
            Just(Level::Low),
            Just(Level::Medium),
            Just(Level::High),
            Just(Level::VeryHigh)
        ]
    }

    proptest! {
        #[test]
        fn every_start_warning_round_trips(
            mode in 0u8..7, strobe: bool, lv in level(), duration: u16,
            duty in 0u8..=100, sl in level(), seq: u8,
        ) {
            let w = StartWarning {
                mode: WarningMode::from_u8(mode).unwrap(),
                strobe, level: lv, duration, duty_cycle: duty, strobe_level: sl,
            };
            let mut out = Vec::new();
            encode(seq, &Command::StartWarning(w), &mut out);
            prop_assert_eq!(decode(&out).unwrap(), (seq, Command::StartWarning(w)));
        }

        #[test]
        fn every_squawk_round_trips(disarmed: bool, strobe: bool, lv in level(), seq: u8) {
            let s = Squawk {
                mode: if disarmed { SquawkMode::Disarmed } else { SquawkMode::Armed },
                strobe, level: lv,
            };
            let mut out = Vec::new();
            encode(seq, &Command::Squawk(s), &mut out);
            prop_assert_eq!(decode(&out).unwrap(), (seq, Command::Squawk(s)));
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode(&b);
        }
    }
}
