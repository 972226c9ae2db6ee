//! Commissioning: the installer's walk-through of every device, its result
//! kept in the gateway, and the signed-off report sent upstream.
//!
//! Each device gets one test from what it senses ([`test_for`]): a door is
//! opened, a PIR walked past, a leak sensor wetted, a thermometer breathed on
//! (its temperature must *rise*, so a routine report does not pass it). Only
//! readings at or after the start of the walk-through count ([`evaluate`]):
//! the result is computed here from the stored history, never taken from the
//! browser. A sign-off (installer name, time, per-device results) is kept
//! under [`Record::Commissioning`] (the newest [`KEEP`]) and sent upstream as
//! a status document carrying `commissioning` (the outbox delivers it like
//! any status: retried until the broker acknowledges it).
//!
//! With `[arc]` running, [`arc_test`] sends one alarm receiving centre test
//! per device (Contact ID 601 with the device's zone, see ARC.md): whether
//! the ARC acknowledged it, when, and which receiver is kept in memory
//! ([`App::arc_tests`], the newest per device) and goes on the device's row
//! of the signed-off report when it was sent at or after the start
//! ([`arc_since`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use warp::http::StatusCode;

use super::http::{App, Fail, Req, Resp, Result, Who, installer, json_resp};
use super::roles::Record;
use super::validate::{self, Obj};
use crate::model::{DeviceInfo, Kind, Reading, Time};

/// Reports kept in the gateway (older ones are dropped).
pub const KEEP: usize = 20;
/// A walk-through older than this cannot be signed off (start again).
const MAX_RUN_MS: i64 = 12 * 3_600_000;

/// What makes a device pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "pass")]
pub enum Pass {
    /// A reading of `kind` with value 1 (pressed, open, wet, seen).
    Active,
    /// A reading of `kind` at least `by` above the one before the start.
    Rise { by: f64 },
}

/// One device's test: the kind to watch, what to tell the installer, how it passes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceTest {
    pub kind: Kind,
    pub instruction: String,
    #[serde(flatten)]
    pub pass: Pass,
}

/// Every testable kind, the most telling first, with what the installer
/// is told to do.
const ORDER: &[(Kind, &str)] = &[
    (Kind::Panic, "Press the button"),
    (
        Kind::Fall,
        "Press and hold its test button (or simulate a fall)",
    ),
    (
        Kind::WaterLeak,
        "Wet the leak sensor (a damp cloth across its contacts)",
    ),
    (Kind::Smoke, "Press the smoke alarm's test button"),
    (Kind::CarbonMonoxide, "Press the CO alarm's test button"),
    (Kind::Contact, "Open the door or window, then close it"),
    (Kind::Motion, "Walk past the sensor"),
    (Kind::Occupancy, "Walk into the room"),
    (Kind::Bed, "Sit or lie on the bed mat"),
    (Kind::Chair, "Sit in the chair"),
    (Kind::Vibration, "Tap the sensor"),
    (Kind::Switch, "Switch it on"),
    (
        Kind::Power,
        "Switch the appliance on (power must rise by 5 W)",
    ),
    (
        Kind::Temperature,
        "Breathe on the thermometer (it must rise by 0.5 °C)",
    ),
    (
        Kind::Humidity,
        "Breathe on the sensor (humidity must rise by 3 %)",
    ),
];

fn test_of(kind: Kind, text: &str) -> DeviceTest {
    let pass = match kind {
        Kind::Temperature => Pass::Rise { by: 0.5 },
        Kind::Humidity => Pass::Rise { by: 3.0 },
        Kind::Power => Pass::Rise { by: 5.0 },
        _ => Pass::Active,
    };
    DeviceTest {
        kind,
        instruction: text.to_string(),
        pass,
    }
}

/// The test for a device that reports `kinds` (the most telling kind wins:
/// a door contact that also reports temperature is tested as a door).
/// `None` when it has reported nothing testable yet.
pub fn test_for(kinds: &[Kind]) -> Option<DeviceTest> {
    let (kind, text) = ORDER.iter().find(|(k, _)| kinds.contains(k))?;
    Some(test_of(*kind, text))
}

/// Every test, the most telling first: the page picks a device's test from
/// it when the device's first readings arrive during the walk-through (the
/// same choice [`test_for`] makes at sign-off).
pub fn all_tests() -> Vec<DeviceTest> {
    ORDER.iter().map(|(k, t)| test_of(*k, t)).collect()
}

/// The reading that passed `test`, if any: among `after` (this device's
/// readings at or after `started`, oldest first), compared with `before`
/// (its newest reading of the kind before the start). A rise needs a
/// baseline: without one, the first reading after the start is it.
pub fn evaluate<'a>(
    test: &DeviceTest,
    started: Time,
    before: Option<f64>,
    after: impl IntoIterator<Item = &'a Reading>,
) -> Option<&'a Reading> {
    let mut base = before;
    for r in after {
        if r.kind != test.kind || r.at < started {
            continue;
        }
        match test.pass {
            Pass::Active if r.value >= 0.5 => return Some(r),
            Pass::Active => {}
            Pass::Rise { by } => match base {
                Some(b) if r.value - b >= by - 1e-9 => return Some(r),
                Some(b) => base = Some(b.min(r.value)),
                None => base = Some(r.value),
            },
        }
    }
    None
}

/// One device on the signed-off report.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub id: String,
    pub name: Option<String>,
    pub room: Option<String>,
    pub test: Option<DeviceTest>,
    pub passed: bool,
    /// The reading that passed it.
    pub event: Option<Reading>,
    /// Its alarm receiving centre test during this walk-through (`null`:
    /// none sent).
    pub arc: Option<ArcCheck>,
}

/// One device's test event to the alarm receiving centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArcCheck {
    /// The ARC acknowledged it.
    pub acknowledged: bool,
    /// `"primary"` or `"secondary"` (when acknowledged).
    pub receiver: Option<&'static str>,
    /// The zone it carried (when acknowledged).
    pub zone: Option<u16>,
    /// When the answer came (the gateway's clock).
    pub at: Time,
    /// Why it was not acknowledged.
    pub error: Option<String>,
}

/// The device's ARC test to report for a walk-through started at
/// `started`: the newest, if sent at or after the start.
pub fn arc_since(
    tests: &BTreeMap<String, ArcCheck>,
    device: &str,
    started: Time,
) -> Option<ArcCheck> {
    tests.get(device).filter(|c| c.at >= started).cloned()
}

fn kinds_of(app: &App, d: &DeviceInfo) -> Vec<Kind> {
    let Some(id) = &d.id else { return Vec::new() };
    app.kinds
        .lock()
        .ok()
        .and_then(|k| k.get(id).map(|s| s.iter().copied().collect()))
        .unwrap_or_default()
}

/// `POST /api/v1/commissioning/start`: the walk-through starts now (the
/// gateway's clock); readings before this time never count.
pub async fn start(app: &App, who: &Who) -> Result<Resp> {
    installer(who)?;
    let now = app.roles.settings.now();
    app.audit(&who.session.user, "commissioning.start", String::new())
        .await?;
    Ok(json_resp(StatusCode::OK, &json!({ "started": now })))
}

/// Each device's result since `started`, from the stored history.
pub async fn results(app: &App, started: Time, now: Time) -> Result<Vec<Checked>> {
    let devices = app.roles.registry.devices().await?;
    let history = app
        .roles
        .history
        .history(
            Time(started.as_millis() - 3_600_000),
            // A device whose clock is a little ahead still counts.
            Time(now.as_millis() + 600_000),
            200_000,
        )
        .await?;
    let mut by_device: BTreeMap<&str, Vec<&Reading>> = BTreeMap::new();
    for r in &history {
        by_device.entry(r.device.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for d in &devices {
        let Some(id) = &d.id else { continue };
        let test = test_for(&kinds_of(app, d));
        let mine = by_device.get(id.as_str()).cloned().unwrap_or_default();
        let event = test.as_ref().and_then(|t| {
            let before = mine
                .iter()
                .rev()
                .find(|r| r.kind == t.kind && r.at < started)
                .map(|r| r.value);
            evaluate(t, started, before, mine.iter().copied()).cloned()
        });
        let arc = arc_since(
            &app.arc_tests.lock().unwrap_or_else(|p| p.into_inner()),
            id.as_str(),
            started,
        );
        out.push(Checked {
            arc,
            id: id.to_string(),
            name: d.name.clone(),
            room: d.room.clone(),
            test,
            passed: event.is_some(),
            event,
        });
    }
    Ok(out)
}

fn started_field(o: &Obj, now: Time) -> Result<Time> {
    let s = o.str("started")?;
    let t = Time::parse_rfc3339(s)
        .map_err(|e| validate::Invalid::new("started", format!("not a time ({e})")))?;
    if t.as_millis() > now.as_millis() + 60_000 || now.as_millis() - t.as_millis() > MAX_RUN_MS {
        return Err(validate::Invalid::new(
            "started",
            "must be within the last 12 hours: start the walk-through again",
        )
        .into());
    }
    Ok(t)
}

/// `POST /api/v1/commissioning/signoff` `{"installer", "started", "notes"?}`:
/// computes every device's result since `started`, keeps the report and
/// sends it upstream.
pub async fn signoff(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let now = app.roles.settings.now();
    let o = Obj::parse(&req.body, &["installer", "started", "notes"])?;
    let name = validate::text("installer", o.str("installer")?, 64)?;
    let notes = o
        .opt_str("notes")?
        .filter(|s| !s.trim().is_empty())
        .map(|s| validate::text("notes", s, 500))
        .transpose()?;
    let started = started_field(&o, now)?;
    let devices = results(app, started, now).await?;
    let passed = devices.iter().filter(|d| d.passed).count();
    let gateway = app.roles.watch.status().gateway;
    let report = json!({
        "gateway": gateway,
        "installer": name,
        "signed_by": who.session.user,
        "started": started,
        "signed_at": now,
        "notes": notes,
        "passed": passed,
        "total": devices.len(),
        "devices": devices,
    });
    let mut kept = reports(app).await?;
    kept.insert(0, report.clone());
    kept.truncate(KEEP);
    let bytes = serde_json::to_vec(&kept)
        .map_err(|e| Fail::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.roles
        .state
        .save(Record::Commissioning, Some(bytes))
        .await?;
    let mut doc = crate::uplink::mqtt::status_document(&app.roles.watch.status());
    doc.insert("commissioning".into(), report.clone());
    app.roles.state.send_upstream(doc).await?;
    app.audit(
        &who.session.user,
        "commissioning.signoff",
        format!(
            "{passed}/{} devices passed, signed by {name}",
            devices.len()
        ),
    )
    .await?;
    Ok(json_resp(StatusCode::OK, &json!({ "report": report })))
}

/// `POST /api/v1/commissioning/arc_test` `{"device"}`: one manual test
/// event (Contact ID 601, the device's zone) to the alarm receiving centre,
/// waiting at most 30 s for its ACK; the answer is kept for the report.
pub async fn arc_test(app: &App, req: &Req, who: &Who) -> Result<Resp> {
    installer(who)?;
    let Some(arc) = app.roles.settings.arc.clone() else {
        return Err(Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no alarm receiving centre is configured ([arc] is missing)",
        ));
    };
    let o = Obj::parse(&req.body, &["device"])?;
    let id = o.str("device")?;
    let known = app
        .roles
        .registry
        .devices()
        .await?
        .iter()
        .any(|d| d.id.as_ref().is_some_and(|d| d.as_str() == id));
    if !known {
        return Err(validate::Invalid::new("device", "no such device").into());
    }
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(30), arc.test_device(id)).await;
    let at = app.roles.settings.now();
    let check = match answer {
        Ok(Ok(a)) => ArcCheck {
            acknowledged: true,
            receiver: Some(a.receiver),
            zone: Some(a.zone),
            at,
            error: None,
        },
        Ok(Err(e)) => ArcCheck {
            acknowledged: false,
            receiver: None,
            zone: None,
            at,
            error: Some(e),
        },
        Err(_) => ArcCheck {
            acknowledged: false,
            receiver: None,
            zone: None,
            at,
            error: Some("no acknowledgement within 30 s".into()),
        },
    };
    app.arc_tests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.to_string(), check.clone());
    app.audit(
        &who.session.user,
        "commissioning.arc_test",
        format!(
            "{id}: {}",
            match (&check.receiver, &check.error) {
                (Some(r), _) => format!("acknowledged by the {r} receiver"),
                (None, e) => format!("not acknowledged: {}", e.as_deref().unwrap_or("")),
            }
        ),
    )
    .await?;
    Ok(json_resp(
        StatusCode::OK,
        &json!({ "device": id, "arc": check }),
    ))
}

async fn reports(app: &App) -> Result<Vec<serde_json::Value>> {
    let raw = app.roles.state.load(Record::Commissioning).await?;
    // Garbage (a hand-edited database) reads as no reports, never an error.
    Ok(raw
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// `GET /api/v1/commissioning/reports`: the signed-off reports, newest first.
pub async fn list(app: &App) -> Result<Resp> {
    Ok(json_resp(
        StatusCode::OK,
        &json!({ "reports": reports(app).await? }),
    ))
}

/// The per-device test the walk-through page shows.
pub fn device_test(app: &App, d: &DeviceInfo) -> Option<DeviceTest> {
    test_for(&kinds_of(app, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceId;

    fn r(kind: Kind, value: f64, at: i64) -> Reading {
        Reading {
            device: DeviceId::new("d").unwrap(),
            kind,
            value,
            at: Time(at),
        }
    }

    #[test]
    fn the_pages_list_picks_the_same_test_as_the_sign_off() {
        // The page adopts the first test in `all_tests` whose kind a device
        // has reported; the sign-off uses `test_for` on the same kinds.
        let all = all_tests();
        for seen in [
            vec![Kind::Temperature, Kind::Motion],
            vec![Kind::Humidity, Kind::Temperature],
            vec![Kind::Contact, Kind::Temperature, Kind::Vibration],
            vec![Kind::Panic],
        ] {
            let page = all.iter().find(|t| seen.contains(&t.kind)).cloned();
            assert_eq!(page, test_for(&seen), "{seen:?}");
        }
        assert_eq!(test_for(&[Kind::Battery]), None);
    }

    #[test]
    fn each_kind_gets_its_own_instruction_and_a_door_is_tested_as_a_door() {
        let t = test_for(&[Kind::Temperature, Kind::Contact, Kind::Battery]).unwrap();
        assert_eq!(t.kind, Kind::Contact);
        assert!(t.instruction.contains("Open the door"));
        let t = test_for(&[Kind::Temperature, Kind::Humidity]).unwrap();
        assert!(t.instruction.contains("Breathe on the thermometer"));
        assert_eq!(t.pass, Pass::Rise { by: 0.5 });
        assert!(
            test_for(&[Kind::WaterLeak])
                .unwrap()
                .instruction
                .contains("Wet")
        );
        assert!(
            test_for(&[Kind::Motion])
                .unwrap()
                .instruction
                .contains("Walk past")
        );
        assert!(
            test_for(&[Kind::Panic])
                .unwrap()
                .instruction
                .contains("Press")
        );
        assert_eq!(test_for(&[Kind::Battery]), None);
    }

    fn check(at: i64, receiver: Option<&'static str>) -> ArcCheck {
        ArcCheck {
            acknowledged: receiver.is_some(),
            receiver,
            zone: receiver.map(|_| 7),
            at: Time(at),
            error: receiver.is_none().then(|| "no receiver answered".into()),
        }
    }

    #[test]
    fn a_devices_arc_test_goes_on_its_report_row_only_when_sent_during_the_walk_through() {
        let mut tests = BTreeMap::new();
        tests.insert("hall-panic".to_string(), check(900, Some("primary")));
        tests.insert("bed-mat".to_string(), check(1_200, Some("secondary")));
        tests.insert("leak".to_string(), check(1_300, None));
        assert_eq!(arc_since(&tests, "hall-panic", Time(1_000)), None);
        assert_eq!(arc_since(&tests, "nobody", Time(1_000)), None);
        let row = Checked {
            id: "bed-mat".into(),
            name: None,
            room: None,
            test: None,
            passed: false,
            event: None,
            arc: arc_since(&tests, "bed-mat", Time(1_000)),
        };
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(v["arc"]["acknowledged"], true);
        assert_eq!(v["arc"]["receiver"], "secondary");
        assert_eq!(v["arc"]["zone"], 7);
        assert_eq!(v["arc"]["at"], serde_json::to_value(Time(1_200)).unwrap());
        let v = serde_json::to_value(arc_since(&tests, "leak", Time(1_000))).unwrap();
        assert_eq!(v["acknowledged"], false);
        assert_eq!(v["receiver"], serde_json::Value::Null);
        assert_eq!(v["error"], "no receiver answered");
    }

    #[test]
    fn an_event_before_the_start_never_counts() {
        let t = test_for(&[Kind::Motion]).unwrap();
        let rs = [r(Kind::Motion, 1.0, 900), r(Kind::Motion, 0.0, 1_100)];
        assert_eq!(evaluate(&t, Time(1_000), None, &rs), None);
        let rs = [r(Kind::Motion, 1.0, 900), r(Kind::Motion, 1.0, 1_200)];
        assert_eq!(
            evaluate(&t, Time(1_000), None, &rs).unwrap().at,
            Time(1_200)
        );
    }

    #[test]
    fn a_routine_temperature_report_does_not_pass_a_thermometer_but_breath_does() {
        let t = test_for(&[Kind::Temperature]).unwrap();
        // Routine reports after the start, within 0.2 °C of the baseline.
        let routine = [
            r(Kind::Temperature, 20.1, 1_100),
            r(Kind::Temperature, 19.9, 1_200),
        ];
        assert_eq!(evaluate(&t, Time(1_000), Some(20.0), &routine), None);
        let breath = [
            r(Kind::Temperature, 20.1, 1_100),
            r(Kind::Temperature, 20.6, 1_300),
        ];
        assert_eq!(
            evaluate(&t, Time(1_000), Some(20.0), &breath).unwrap().at,
            Time(1_300)
        );
        // No baseline before the start: the first report after it is one.
        let first = [
            r(Kind::Temperature, 20.0, 1_100),
            r(Kind::Temperature, 20.2, 1_200),
        ];
        assert_eq!(evaluate(&t, Time(1_000), None, &first), None);
        // A battery report is not the test's kind.
        let other = [r(Kind::Battery, 100.0, 1_100)];
        assert_eq!(evaluate(&t, Time(1_000), Some(20.0), &other), None);
    }
}
