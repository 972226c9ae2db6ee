//! One simulated home of the fleet: the demo's simulated household, the
//! rule engine, an in-memory outbox (alerts before telemetry, a row leaves
//! only on PUBACK) and its own MQTT client — the gateway's wire behaviour
//! (persistent session, client id = gateway id, `cmd/+` at QoS 1, retained
//! status with a last will, back-off with jitter) in a few kilobytes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Plan, Stats};
use crate::model::{Alert, Reading, Time};
use crate::uplink::backoff::Backoff;

/// One outbox row: its topic leaf, payload and when it was made.
struct Row {
    alert: bool,
    seq: u64,
    payload: Vec<u8>,
    /// Handed to the client on this connection.
    sent: bool,
}

/// Runs home `n` until `stop`.
pub async fn run(
    n: usize,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
    mut down: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let gw = format!("{}-{n:05}", plan.id_prefix);
    let topic = |leaf: &str| format!("{}/{gw}/{leaf}", plan.prefix);
    let sim_cfg = crate::config::SimConfig {
        seed: u64::try_from(n).unwrap_or(0) + 1,
        panic_per_day: plan.panic_per_day,
        ..Default::default()
    };
    let start = crate::wall::now();
    let mut home = crate::ingest::sim::Home::new(&sim_cfg, jiff::tz::TimeZone::UTC, start);
    let mut engine = crate::rules::Engine::minimal();
    let mut seq = 0u64;
    let mut outbox: VecDeque<Row> = VecDeque::new();
    let mut done_ids: HashSet<String> = HashSet::new();
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        plan.jitter.max(Duration::from_millis(400)),
    );
    let began = Instant::now();
    let mut readings = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut first = true;
    let mut node = crate::uplink::mqtt::nodes::spread(&gw, plan.nodes.len());
    'outer: loop {
        // Start-up and reconnect storms spread by jitter, like the gateway.
        let wait = if first {
            plan.jitter.mul_f64(crate::wall::jitter_unit())
        } else {
            backoff.next_delay(crate::wall::jitter_unit())
        };
        first = false;
        tokio::select! {
            _ = stop.cancelled() => break 'outer,
            _ = tokio::time::sleep(wait) => {}
        }
        while *down.borrow() {
            tokio::select! {
                _ = stop.cancelled() => break 'outer,
                r = down.changed() => if r.is_err() { break 'outer },
            }
        }
        let Some((host, port)) = plan.nodes.get(node % plan.nodes.len().max(1)).cloned() else {
            break 'outer;
        };
        let mut o = MqttOptions::new(gw.clone(), host.clone(), port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(false);
        o.set_inflight(plan.window + 8);
        o.set_last_will(LastWill::new(
            topic("status"),
            json!({"state": "offline", "gateway": gw}).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut ev) = AsyncClient::new(o, usize::from(plan.window) + 16);
        let mut awaiting: VecDeque<Option<(u64, Instant)>> = VecDeque::new();
        let mut in_flight: HashMap<u16, (u64, Instant)> = HashMap::new();
        // A new connection sends again everything not acknowledged.
        for r in outbox.iter_mut() {
            r.sent = false;
        }
        let mut connected = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let connected_at = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    if connected { stats.connected.fetch_sub(1, Relaxed); }
                    break 'outer;
                }
                r = down.changed() => {
                    if r.is_err() || *down.borrow() {
                        // The broadband drops: no goodbye, the will fires.
                        if connected { stats.connected.fetch_sub(1, Relaxed); }
                        break;
                    }
                }
                _ = tick.tick(), if !stats.draining.load(Relaxed) => {
                    let now = Time(start.0 + i64::try_from(began.elapsed().as_millis()).unwrap_or(0).saturating_mul(i64::from(plan.speed)));
                    home.advance(now, &mut readings);
                    for r in readings.drain(..) {
                        engine.on_reading(now, &r, &mut alerts);
                        if plan.telemetry {
                            seq += 1;
                            outbox.push_back(telemetry(&gw, seq, &r));
                            stats.telemetry.fetch_add(1, Relaxed);
                        }
                    }
                    engine.on_tick(now, &mut alerts);
                    for a in alerts.drain(..) {
                        seq += 1;
                        let row = alert(&gw, seq, &a);
                        stats.alerts.fetch_add(1, Relaxed);
                        // Alerts go before telemetry that is not in flight.
                        let at = outbox.iter().position(|r| !r.alert && !r.sent).unwrap_or(outbox.len());
                        outbox.insert(at, row);
                    }
                }
                e = ev.poll() => match e {
                    Err(_) => {
                        if connected { stats.connected.fetch_sub(1, Relaxed); }
                        backoff.connected_for(connected_at.elapsed());
                        node += 1; // the next node, as the gateway does
                        break;
                    }
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        connected = true;
                        stats.connected.fetch_add(1, Relaxed);
                        stats.connects.fetch_add(1, Relaxed);
                        let _ = client.try_subscribe(topic("cmd/+"), QoS::AtLeastOnce);
                        let birth = json!({"state": "online", "gateway": gw, "node": format!("{host}:{port}")});
                        if client.try_publish(topic("status"), QoS::AtLeastOnce, true, birth.to_string()).is_ok() {
                            awaiting.push_back(None);
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(row)) = awaiting.pop_front() {
                            in_flight.insert(pkid, row);
                        }
                    }
                    Ok(Event::Incoming(Incoming::PubAck(a))) => {
                        if let Some((s, at)) = in_flight.remove(&a.pkid) {
                            outbox.retain(|r| r.seq != s);
                            stats.acked.fetch_add(1, Relaxed);
                            stats.latency(at.elapsed());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let Some(name) = p.topic.rsplit('/').next().map(str::to_string) else { continue };
                        let result = command(&name, &p.payload, &mut done_ids);
                        stats.commands.fetch_add(1, Relaxed);
                        if client.try_publish(topic(&format!("cmd/{name}/result")), QoS::AtLeastOnce, false, result.to_string()).is_ok() {
                            awaiting.push_back(None);
                        }
                    }
                    Ok(_) => {}
                }
            }
            if connected {
                // Fill the window from the outbox head (alerts first).
                let mut free =
                    usize::from(plan.window).saturating_sub(in_flight.len() + awaiting.len());
                for row in outbox.iter_mut().filter(|r| !r.sent) {
                    if free == 0 {
                        break;
                    }
                    let leaf = if row.alert { "alert" } else { "telemetry" };
                    if client
                        .try_publish(topic(leaf), QoS::AtLeastOnce, false, row.payload.clone())
                        .is_err()
                    {
                        break;
                    }
                    awaiting.push_back(Some((row.seq, Instant::now())));
                    stats.published.fetch_add(1, Relaxed);
                    row.sent = true;
                    free -= 1;
                }
            }
        }
    }
    stats
        .unsent
        .fetch_add(u64::try_from(outbox.len()).unwrap_or(0), Relaxed);
    stats.unsent_alerts.fetch_add(
        u64::try_from(outbox.iter().filter(|r| r.alert).count()).unwrap_or(0),
        Relaxed,
    );
}

fn telemetry(gw: &str, seq: u64, r: &Reading) -> Row {
    let p = json!({"id": format!("{gw}-{seq}"), "seq": seq, "device": r.device.as_str(),
        "kind": r.kind, "value": r.value, "at": r.at});
    Row {
        alert: false,
        seq,
        payload: p.to_string().into_bytes(),
        sent: false,
    }
}

fn alert(gw: &str, seq: u64, a: &Alert) -> Row {
    let mut p = serde_json::to_value(a).unwrap_or_else(|_| json!({}));
    if let Some(m) = p.as_object_mut() {
        m.insert("id".into(), format!("{gw}-{seq}").into());
        m.insert("seq".into(), seq.into());
    }
    Row {
        alert: true,
        seq,
        payload: p.to_string().into_bytes(),
        sent: false,
    }
}

/// A command as the gateway answers it: envelope first (a repeated id is
/// not run again, an expired one is refused), then `ping`.
fn command(name: &str, payload: &[u8], done: &mut HashSet<String>) -> serde_json::Value {
    let (env, _) = match crate::commands::once::split(payload) {
        Ok(x) => x,
        Err(e) => return json!({"ok": false, "error": e}),
    };
    if let Some(id) = &env.id
        && !done.insert(id.clone())
    {
        return json!({"ok": true, "id": id, "duplicate": true});
    }
    if let Some(exp) = env.expires
        && crate::wall::now() > exp
    {
        return json!({"ok": false, "id": env.id, "error": format!("expired at {exp}: not executed")});
    }
    match name {
        "ping" => json!({"ok": true, "id": env.id, "pong": crate::wall::now().to_rfc3339()}),
        other => json!({"ok": false, "id": env.id, "error": format!("unknown command {other:?}")}),
    }
}
