//! Virtual-clock tests of the whole pure stack (coordinator, session,
//! start-up, interview, ZCL) against the simulated stick, without a port:
//! days of supervision replay in milliseconds.

use std::time::Duration;

use super::coordinator::{Coordinator, CoordinatorConfig, Output};
use super::frame::Decoder;
use super::network::NetworkParams;
use super::sim_stick::{SimDeviceKind, Stick};
use crate::model::{Ingest, Kind, Time};

fn cfg() -> CoordinatorConfig {
    CoordinatorConfig {
        channel: 20,
        srsp_timeout: Duration::from_millis(500),
        stall_timeout: Duration::from_millis(50),
        wait_timeout: Duration::from_secs(5),
        interview_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_secs(30),
        vibration_is_fall: true,
    }
}

fn fresh(seed: u8) -> NetworkParams {
    NetworkParams::from_random(20, &[seed; 26])
}

struct Loop {
    c: Coordinator,
    stick: Stick,
    now: Time,
    out: Vec<Output>,
    /// Drop the stick's next N frames (lost SRSPs).
    drop_next: usize,
    silent: bool,
}

impl Loop {
    fn new(stick: Stick, stored: Option<NetworkParams>, seed: u8) -> Self {
        Self::with_library(stick, stored, seed, super::library::Library::builtin())
    }
    fn with_library(
        stick: Stick,
        stored: Option<NetworkParams>,
        seed: u8,
        lib: std::sync::Arc<super::library::Library>,
    ) -> Self {
        let mut l = Loop {
            c: Coordinator::new(cfg(), stored, fresh(seed), false).with_library(lib),
            stick,
            now: Time(1_000),
            out: vec![],
            drop_next: 0,
            silent: false,
        };
        l.c.handle_timeout(l.now);
        l.pump();
        l
    }
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut to_host = Vec::new();
            let mut any = false;
            while let Some(b) = self.c.poll_transmit() {
                any = true;
                let mut d = Decoder::new();
                d.push(&b);
                while let Some(f) = d.next_frame() {
                    if !self.silent {
                        to_host.extend(self.stick.handle(&f, self.now.0 as u64));
                    }
                }
            }
            if !self.silent {
                to_host.extend(self.stick.tick(self.now.0 as u64));
            }
            for f in to_host {
                if self.drop_next > 0 {
                    self.drop_next -= 1;
                    continue;
                }
                any = true;
                self.c.handle_bytes(&f.to_bytes(), self.now);
            }
            while let Some(o) = self.c.poll_output() {
                self.out.push(o);
            }
            if !any {
                return;
            }
        }
    }
    fn advance(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        while self.now < end {
            let next = self
                .c
                .next_deadline()
                .unwrap_or(end)
                .min(end)
                .max(self.now.saturating_add(Duration::from_millis(1)));
            self.now = next;
            self.c.handle_timeout(self.now);
            self.pump();
        }
    }
    fn saved(&self) -> Option<&NetworkParams> {
        self.out.iter().rev().find_map(|o| match o {
            Output::Save(p) => Some(p),
            _ => None,
        })
    }
    fn failed(&self) -> Option<&str> {
        self.out.iter().find_map(|o| match o {
            Output::Failed(s) => Some(s.as_str()),
            _ => None,
        })
    }
    fn readings(&self, kind: Kind) -> Vec<f64> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Ingest(Ingest::Reading(r)) if r.kind == kind => Some(r.value),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn blank_stick_is_formed_with_the_fresh_params_and_they_are_saved() {
    let l = Loop::new(Stick::new(), None, 7);
    assert!(l.c.is_running(), "{:?}", l.out);
    let p = l.saved().unwrap();
    assert!(p.same_network(&fresh(7)));
    let (pan, ext, ch, key) = l.stick.network().unwrap();
    assert_eq!(
        (pan, ext, ch, key),
        (p.pan_id, p.ext_pan_id, 20, p.network_key)
    );
    assert_eq!(l.stick.stats.formations, 1);
}

#[test]
fn stored_network_is_written_back_to_a_replaced_blank_stick() {
    let first = Loop::new(Stick::new(), None, 1);
    let stored = first.saved().unwrap().clone();
    // A new stick, and this time the random generator would give other values.
    let l = Loop::new(Stick::new(), Some(stored.clone()), 2);
    assert!(l.c.is_running());
    assert!(l.saved().unwrap().same_network(&stored));
    assert_eq!(l.stick.network().map(|n| n.0), Some(stored.pan_id));
}

#[test]
fn a_stick_holding_another_network_is_reformed_with_the_stored_one() {
    let other = Loop::new(Stick::new(), None, 3).stick;
    let stored = fresh(4);
    let l = Loop::new(other, Some(stored.clone()), 5);
    assert!(l.c.is_running());
    assert_eq!(l.stick.network().map(|n| n.0), Some(stored.pan_id));
    assert_eq!(l.stick.stats.formations, 2);
}

#[test]
fn a_formed_stick_is_started_not_reformed() {
    let first = Loop::new(Stick::new(), None, 1);
    let stored = first.saved().unwrap().clone();
    let mut stick = first.stick;
    stick.power_cycle();
    let l = Loop::new(stick, Some(stored), 9);
    assert!(l.c.is_running());
    assert_eq!(l.stick.stats.formations, 1);
}

#[test]
fn silent_coordinator_fails_the_link_within_the_request_timeout() {
    let mut l = Loop::new(Stick::new(), None, 1);
    l.silent = true;
    l.advance(Duration::from_secs(32));
    assert!(
        l.failed().unwrap().contains("stopped answering"),
        "{:?}",
        l.out
    );
}

#[test]
fn one_lost_srsp_does_not_drop_the_link_but_a_day_of_pings_keeps_it_up() {
    let mut l = Loop::new(Stick::new(), None, 1);
    l.advance(Duration::from_secs(29));
    l.drop_next = 1; // the next ping's SRSP is corrupted on the line
    l.advance(Duration::from_secs(24 * 3600));
    assert_eq!(l.failed(), None);
    assert!(l.stick.stats.requests > 2800, "a ping every 30 s");
}

#[test]
fn repeated_rpc_errors_fail_the_link() {
    let mut l = Loop::new(Stick::new(), None, 1);
    l.stick.rpc_errors = true;
    l.c.permit_join(10, l.now);
    l.pump();
    l.c.permit_join(10, l.now);
    l.pump();
    l.c.permit_join(10, l.now);
    l.pump();
    assert!(l.failed().unwrap().contains("RPC"));
}

#[test]
fn pairing_interviews_enrolls_and_maps_zone_alarms() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let pir = l.stick.add_device(SimDeviceKind::Motion);
    let door = l.stick.add_device(SimDeviceKind::Contact);
    l.c.permit_join(60, l.now);
    l.pump();
    l.advance(Duration::from_secs(1));
    let devices = l
        .out
        .iter()
        .filter(|o| matches!(o, Output::Ingest(Ingest::Device(_))))
        .count();
    assert_eq!(devices, 2);
    for ieee in [pir, door] {
        let f = l.stick.zone_alarm(ieee, true, true).unwrap();
        l.c.handle_bytes(&f.to_bytes(), l.now);
        l.pump();
    }
    assert_eq!(l.readings(Kind::Motion), vec![1.0]);
    assert_eq!(l.readings(Kind::Contact), vec![1.0]);
    assert_eq!(l.readings(Kind::Tamper), vec![1.0, 1.0]);
    assert!(l.stick.devices.iter().all(|d| d.enrolled));
    let saved = l.saved().unwrap();
    assert_eq!(saved.devices.len(), 2);
    assert!(saved.devices.iter().all(|d| d.zone_type.is_some()));
}

#[test]
fn identify_reaches_the_paired_device_which_acknowledges_and_an_unknown_one_is_refused() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let pir = l.stick.add_device(SimDeviceKind::Motion);
    let th = l.stick.add_device(SimDeviceKind::Temperature);
    // Before pairing the coordinator does not know the device.
    assert!(!l.c.identify(pir, 10, l.now));
    l.c.permit_join(60, l.now);
    l.pump();
    l.advance(Duration::from_secs(1));
    let before = l.out.len();
    assert!(l.c.identify(pir, 10, l.now));
    assert!(l.c.identify(th, 1000, l.now));
    l.pump();
    let find = |ieee: u64| {
        l.stick
            .devices
            .iter()
            .find(|d| d.ieee == ieee)
            .unwrap()
            .identify_secs
    };
    assert_eq!(find(pir), Some(10));
    assert_eq!(find(th), Some(300), "capped at five minutes");
    assert_eq!(l.stick.stats.identifies, 2);
    // The default responses are not readings, and the link stays up.
    assert!(
        l.out[before..]
            .iter()
            .all(|o| !matches!(o, Output::Ingest(Ingest::Reading(_)) | Output::Failed(_)))
    );
    assert!(!l.c.identify(0x1234, 10, l.now), "unknown IEEE");
}

/// The AF data requests the coordinator has queued for the stick, taken
/// off the line (then handed to the stick as `pump` would).
fn data_requests(l: &mut Loop) -> Vec<super::af::DataRequest> {
    use super::wire::Msg;
    let mut seen = Vec::new();
    let mut to_host = Vec::new();
    while let Some(b) = l.c.poll_transmit() {
        let mut d = Decoder::new();
        d.push(&b);
        while let Some(f) = d.next_frame() {
            if let Ok(r) = super::af::DataRequest::from_frame(&f) {
                seen.push(r);
            }
            to_host.extend(l.stick.handle(&f, l.now.0 as u64));
        }
    }
    for f in to_host {
        l.c.handle_bytes(&f.to_bytes(), l.now);
    }
    l.pump();
    seen
}

#[test]
fn a_siren_warning_reaches_the_simulated_siren_as_ias_wd_bytes_and_is_acknowledged() {
    use super::ias_wd::{self, Command, StartWarning, WarningMode};
    let mut l = Loop::new(Stick::new(), None, 1);
    let siren = l.stick.add_device(SimDeviceKind::Siren);
    let start = Command::StartWarning(StartWarning::prealarm(60));
    assert!(!l.c.warn(siren, &start, l.now), "not paired yet");
    let [siren2] = paired(&mut l, &[SimDeviceKind::Motion])[..] else {
        panic!()
    };
    assert!(
        l.stick.devices.iter().all(|d| d.enrolled),
        "the siren (IAS zone 0x0225) is interviewed and enrolled like any zone"
    );
    let before = l.out.len();
    // Start: emergency, strobe, medium, 60 s, duty 50 %, strobe medium.
    assert!(l.c.warn(siren, &start, l.now));
    let sent = data_requests(&mut l);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let nwk = l
        .stick
        .devices
        .iter()
        .find(|d| d.ieee == siren)
        .unwrap()
        .nwk;
    assert_eq!(Some(sent[0].dst), nwk);
    assert_eq!(sent[0].cluster, 0x0502);
    assert_eq!(sent[0].data[0], 0x01, "cluster-specific, client to server");
    assert_eq!(sent[0].data[2..], [0x00, 0x35, 0x3c, 0x00, 0x32, 0x01]);
    let log = |l: &Loop| {
        l.stick
            .devices
            .iter()
            .find(|d| d.ieee == siren)
            .unwrap()
            .siren
            .clone()
    };
    assert_eq!(log(&l).warnings, 1);
    assert_eq!(log(&l).last, Some(StartWarning::prealarm(60)));
    // Stop (Start Warning mode 0), then the squawk of a cancel.
    for c in ias_wd::prealarm_commands(crate::rules::prealarm::WarningAct::Cancelled) {
        assert!(l.c.warn(siren, &c, l.now));
        l.pump();
    }
    let got = log(&l);
    assert_eq!((got.warnings, got.squawks), (2, 1));
    assert_eq!(got.last.map(|w| w.mode), Some(WarningMode::Stop));
    assert_eq!(l.stick.stats.warnings, 3);
    // The default responses are not readings, and the link stays up.
    l.advance(Duration::from_secs(2));
    assert!(
        l.out[before..]
            .iter()
            .all(|o| !matches!(o, Output::Ingest(Ingest::Reading(_)) | Output::Failed(_))),
        "{:?}",
        &l.out[before..]
    );
    // A device that is not a siren records nothing.
    assert!(l.c.warn(siren2, &start, l.now));
    l.pump();
    assert_eq!(l.stick.stats.warnings, 3);
    assert!(!l.c.warn(0x1234, &start, l.now), "unknown IEEE");
}

#[test]
fn report_from_an_unknown_device_triggers_an_ieee_lookup_then_readings() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let th = l.stick.add_device(SimDeviceKind::Temperature);
    l.c.permit_join(60, l.now);
    l.pump();
    l.advance(Duration::from_secs(1));
    // A gateway restarted without stored devices: it does not know the nwk.
    let mut l2 = Loop::new(std::mem::take(&mut l.stick), None, 1);
    let reports = l2.stick.temperature(th, 19.0, 50.0);
    for f in &reports {
        l2.c.handle_bytes(&f.to_bytes(), l2.now);
    }
    l2.pump();
    assert!(
        l2.readings(Kind::Temperature).is_empty(),
        "unknown device: no reading yet"
    );
    for f in l2.stick.temperature(th, 19.5, 50.0) {
        l2.c.handle_bytes(&f.to_bytes(), l2.now);
    }
    l2.pump();
    l2.advance(Duration::from_secs(1));
    for f in l2.stick.temperature(th, 20.0, 50.0) {
        l2.c.handle_bytes(&f.to_bytes(), l2.now);
    }
    l2.pump();
    assert!(
        l2.readings(Kind::Temperature).contains(&20.0),
        "{:?}",
        l2.out
    );
}

/// Pairs `kinds` through permit join; their IEEE addresses.
fn paired(l: &mut Loop, kinds: &[SimDeviceKind]) -> Vec<u64> {
    let ieees = kinds.iter().map(|k| l.stick.add_device(*k)).collect();
    l.c.permit_join(60, l.now);
    l.pump();
    l.advance(Duration::from_secs(1));
    ieees
}

#[allow(clippy::expect_used)]
fn feed(l: &mut Loop, send: impl FnOnce(&mut Stick) -> Option<super::frame::Frame>) {
    let f = send(&mut l.stick).expect("the device is paired");
    l.c.handle_bytes(&f.to_bytes(), l.now);
    l.pump();
}

#[test]
fn an_aqara_door_is_identified_and_its_genonoff_and_keepalive_become_contact_and_battery() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let [door] = paired(&mut l, &[SimDeviceKind::AqaraDoor])[..] else {
        panic!()
    };
    let info = l.out.iter().find_map(|o| match o {
        Output::Ingest(Ingest::Device(d)) => Some(d.clone()),
        _ => None,
    });
    let info = info.unwrap();
    assert_eq!(info.manufacturer.as_deref(), Some("LUMI"));
    assert_eq!(info.model.as_deref(), Some("lumi.sensor_magnet.aq2"));
    // Its keep-alive period goes to the rules (the silence rule's floor).
    assert_eq!(info.checkin_s, Some(3600));
    // Xiaomi devices refuse reporting configuration: the library skips it.
    let d = &l.stick.devices[0];
    assert!(d.configured.is_empty() && d.bound.is_empty(), "{d:?}");
    feed(&mut l, |s| s.aqara_door(door, true));
    feed(&mut l, |s| s.aqara_door(door, false));
    assert_eq!(l.readings(Kind::Contact), vec![1.0, 0.0]);
    assert!(
        l.readings(Kind::Switch).is_empty(),
        "not the generic on/off"
    );
    feed(&mut l, |s| s.xiaomi_keepalive(door, 2955, false));
    assert_eq!(l.readings(Kind::Voltage), vec![2.96]);
    assert_eq!(l.readings(Kind::Battery), vec![70.0]);
    assert_eq!(l.readings(Kind::Contact), vec![1.0, 0.0, 0.0]);
    // Its identity is kept with the network (a restart still knows it).
    let saved = l.saved().unwrap();
    assert_eq!(
        saved.devices[0].model.as_deref(),
        Some("lumi.sensor_magnet.aq2")
    );
    assert_eq!(
        saved.devices[0].clusters,
        vec![0x0000, 0x0003, 0x0006, 0xFFFF]
    );
}

#[test]
fn a_tuya_radar_gets_the_time_and_its_data_points_become_occupancy_and_light() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let [radar] = paired(&mut l, &[SimDeviceKind::TuyaPresence])[..] else {
        panic!()
    };
    // It asked for the time right after the Basic read; the answer echoes
    // its request number and carries the (virtual) clock's seconds.
    let answers = &l.stick.stats.time_sync_answers;
    assert_eq!(answers.len(), 1, "{:?}", l.stick.stats);
    let a = &answers[0];
    assert_eq!(a.len(), 10);
    assert_eq!(a[0], 0);
    let utc = u32::from_be_bytes([a[2], a[3], a[4], a[5]]);
    // Answered during the interview, between the start (1 s) and now.
    assert!((1..=l.now.0 / 1000).contains(&i64::from(utc)), "{utc}");
    feed(&mut l, |s| s.tuya_presence(radar, true, 250));
    feed(&mut l, |s| s.tuya_presence(radar, false, 240));
    assert_eq!(l.readings(Kind::Occupancy), vec![1.0, 0.0]);
    assert_eq!(l.readings(Kind::Illuminance), vec![250.0, 240.0]);
}

#[test]
fn a_frient_panic_button_raises_panic_on_alarm2() {
    let mut l = Loop::new(Stick::new(), None, 1);
    let [sos] = paired(&mut l, &[SimDeviceKind::FrientPanic])[..] else {
        panic!()
    };
    assert!(l.stick.devices[0].enrolled);
    feed(&mut l, |s| s.zone_alarm(sos, true, false));
    feed(&mut l, |s| s.zone_alarm(sos, false, false));
    // The press (alarm2) is panic; the release adds no "panic 0".
    assert_eq!(l.readings(Kind::Panic), vec![1.0]);
    assert_eq!(l.readings(Kind::Tamper), vec![0.0, 0.0]);
}

#[test]
fn an_aqara_motion_that_never_clears_is_cleared_after_its_timeout() {
    // The coordinator's own timer: a definition's clear_after (a local
    // definition turning the door's genOnOff into such a motion sensor).
    let lib = super::library::Library::with_local(
        r#"
[[device]]
id = "pir"
vendor = "Aqara"
model = "RTCGQ11LM"
description = "test"
match = [{ model = "lumi.sensor_magnet.aq2" }]
senses = ["motion"]
commissioning = "walk"
reporting = []
[[device.map]]
cluster = 6
attr = 0
kind = "motion"
clear_after = "90s"
"#,
        "test",
    )
    .unwrap();
    let mut l = Loop::with_library(Stick::new(), None, 1, std::sync::Arc::new(lib));
    let [door] = paired(&mut l, &[SimDeviceKind::AqaraDoor])[..] else {
        panic!()
    };
    feed(&mut l, |s| s.aqara_door(door, true));
    l.advance(Duration::from_secs(60));
    feed(&mut l, |s| s.aqara_door(door, true));
    l.advance(Duration::from_secs(89));
    assert_eq!(
        l.readings(Kind::Motion),
        vec![1.0, 1.0],
        "re-armed by the second"
    );
    l.advance(Duration::from_secs(2));
    assert_eq!(l.readings(Kind::Motion), vec![1.0, 1.0, 0.0]);
    l.advance(Duration::from_secs(600));
    assert_eq!(
        l.readings(Kind::Motion),
        vec![1.0, 1.0, 0.0],
        "cleared once"
    );
}

proptest::proptest! {
    #[test]
    fn running_coordinator_never_panics_on_arbitrary_stick_frames_and_bytes(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..40)
    ) {
        // A running coordinator with a known device, fed random but
        // well-framed callbacks and responses on the subsystems it handles.
        let mut l = Loop::new(Stick::new(), None, 1);
        l.stick.add_device(SimDeviceKind::PanicButton);
        l.c.permit_join(10, l.now);
        l.pump();
        let mut c = l.c;
        let mut now = l.now;
        for ch in chunks {
            let (sub, cmd) = (*ch.first().unwrap_or(&0), *ch.get(1).unwrap_or(&0));
            let sub = [1u8, 4, 5, 7, 15][usize::from(sub % 5)];
            let ty = if cmd & 1 == 0 { super::frame::CmdType::Areq } else { super::frame::CmdType::Srsp };
            let mut data = ch.get(2..).unwrap_or(&[]).to_vec();
            if sub == 4 && data.len() > 2 {
                // Steer some AF frames at the known device's address.
                let i = 4.min(data.len() - 1);
                data[i] = 0x2B;
            }
            c.handle_bytes(&super::frame::Frame::new(ty, sub, cmd, data).to_bytes(), now);
            c.handle_bytes(&ch, now);
            now = Time(now.0 + 37);
            c.handle_timeout(now);
            while c.poll_transmit().is_some() {}
            while c.poll_output().is_some() {}
        }
    }
}

#[test]
fn after_a_restart_known_devices_check_in_periods_are_announced_again() {
    let mut first = Loop::new(Stick::new(), None, 1);
    paired(&mut first, &[SimDeviceKind::AqaraDoor]);
    let stored = first.saved().unwrap().clone();
    assert_eq!(stored.devices.len(), 1, "{stored:?}");
    let mut stick = first.stick;
    stick.power_cycle();
    let l = Loop::new(stick, Some(stored.clone()), 9);
    let again: Vec<_> = l
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Ingest(Ingest::Device(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].checkin_s, Some(3600));
    assert_eq!(
        again[0].id,
        Some(super::zcl_map::device_id(stored.devices[0].ieee))
    );
}
