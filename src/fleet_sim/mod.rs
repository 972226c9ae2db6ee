//! `carebridge fleet-sim`: N simulated homes in one process against a
//! broker, for a care organisation's cloud team to size and soak-test their
//! side. Each home ([`home`]) runs the demo's simulated household through
//! the rule engine into an in-memory outbox and its own MQTT client, with
//! its own gateway id, persistent session, retained status and last will.
//!
//! In the same process a cloud-side checker subscribes to
//! `<prefix>/+/alert`, `<prefix>/+/telemetry` and `<prefix>/+/cmd/+/result`
//! (QoS 1, persistent session), sends `ping` commands with ids to random
//! homes, and at the end reports what was lost: alerts raised by a home
//! that never reached the checker. `--outage 20s+10s` drops every home's
//! link at 20 s for 10 s (the will fires; the homes redial with back-off
//! and jitter: a reconnect storm). A progress line each second on stderr;
//! the summary on stdout (`--json`: one JSON object).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerUrl, Dur};

mod home;

/// `carebridge fleet-sim` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetSimArgs {
    /// The cloud broker (`mqtt://host:port`), or its nodes comma-separated:
    /// homes spread over them by gateway id and move on when one fails.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub url: String,
    /// Number of simulated homes.
    #[arg(long, default_value_t = 20)]
    pub homes: usize,
    /// How long to run (then the checker waits up to `--drain` for the rest).
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    pub duration: Dur,
    /// Simulated seconds per real second in every home.
    #[arg(long, default_value_t = 60)]
    pub speed: u32,
    /// Panic-button presses per simulated day per home (alerts).
    #[arg(long, default_value_t = 24.0)]
    pub panic_per_day: f64,
    /// Topic prefix.
    #[arg(long, default_value = "carebridge")]
    pub prefix: String,
    /// Gateway ids are `<id-prefix>-00001` …
    #[arg(long, default_value = "sim")]
    pub id_prefix: String,
    /// Outages of every home's link: `START+LENGTH`, comma-separated
    /// (`20s+10s,60s+5s`).
    #[arg(long, default_value = "")]
    pub outage: String,
    /// Start-up and redial spread (homes wait a random part of it).
    #[arg(long, default_value = "5s", value_parser = parse_dur)]
    pub jitter: Dur,
    /// `ping` commands per second sent to random homes by the checker.
    #[arg(long, default_value_t = 2.0)]
    pub commands_per_s: f64,
    /// QoS 1 messages in flight per home.
    #[arg(long, default_value_t = 32)]
    pub window: u16,
    /// Longest wait after `--duration` for undelivered alerts.
    #[arg(long, default_value = "20s", value_parser = parse_dur)]
    pub drain: Dur,
    /// No telemetry (alerts and status only).
    #[arg(long)]
    pub no_telemetry: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_dur(s: &str) -> Result<Dur, String> {
    Dur::parse(s)
}

/// What every home shares (one copy for the fleet).
#[derive(Debug)]
pub struct Plan {
    /// Broker nodes (host, port).
    pub nodes: Vec<(String, u16)>,
    pub prefix: String,
    pub id_prefix: String,
    pub speed: u32,
    pub panic_per_day: f64,
    pub telemetry: bool,
    pub window: u16,
    pub jitter: Duration,
}

/// Counters of the whole fleet.
#[derive(Debug, Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub connected_peak: AtomicU64,
    pub connects: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub alerts: AtomicU64,
    pub telemetry: AtomicU64,
    pub commands: AtomicU64,
    pub unsent: AtomicU64,
    pub unsent_alerts: AtomicU64,
    /// Set when the run ends: the homes stop making readings and alerts and
    /// only deliver what they hold (the drain).
    pub draining: std::sync::atomic::AtomicBool,
    /// PUBACK latencies, µs (a sample: at most 1 M).
    lat: Mutex<Vec<u32>>,
}

impl Stats {
    fn latency(&self, d: Duration) {
        if let Ok(mut l) = self.lat.lock()
            && l.len() < 1_000_000
        {
            l.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }
}

/// The cloud side's view.
#[derive(Debug, Default)]
struct Seen {
    alerts: HashSet<(String, u64)>,
    telemetry: u64,
    results: u64,
    /// Command id → when it was sent.
    pending: std::collections::HashMap<String, Instant>,
    rtt_us: Vec<u32>,
}

/// Runs the fleet; returns the summary (printed by the caller).
pub fn main(args: &FleetSimArgs) -> anyhow::Result<()> {
    let urls = args
        .url
        .split(',')
        .map(|u| BrokerUrl::parse(u.trim()).map_err(|e| anyhow::anyhow!("--url: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if urls.iter().any(|u| u.tls) {
        anyhow::bail!(
            "--url: fleet-sim speaks plain mqtt:// (put a TLS terminator in front if needed)"
        );
    }
    let outages = parse_outages(&args.outage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = rt.block_on(run(args, urls, outages))?;
    if args.json {
        println!("{summary}");
    } else {
        for (k, v) in summary.as_object().into_iter().flatten() {
            println!("{k:>24}: {v}");
        }
    }
    Ok(())
}

/// `START+LENGTH,…` into (start, length) pairs.
pub fn parse_outages(s: &str) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('+')
            .ok_or_else(|| anyhow::anyhow!("--outage {part:?}: START+LENGTH, e.g. 20s+10s"))?;
        let a = Dur::parse(a).map_err(|e| anyhow::anyhow!("--outage {part:?}: {e}"))?;
        let b = Dur::parse(b).map_err(|e| anyhow::anyhow!("--outage {part:?}: {e}"))?;
        out.push((a.0, b.0));
    }
    Ok(out)
}

async fn run(
    args: &FleetSimArgs,
    urls: Vec<BrokerUrl>,
    outages: Vec<(Duration, Duration)>,
) -> anyhow::Result<serde_json::Value> {
    let url = urls
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("--url: no broker"))?;
    let rss_before = rss_bytes();
    let plan = Arc::new(Plan {
        nodes: urls.iter().map(|u| (u.host.clone(), u.port)).collect(),
        prefix: args.prefix.clone(),
        id_prefix: args.id_prefix.clone(),
        speed: args.speed.max(1),
        panic_per_day: args.panic_per_day,
        telemetry: !args.no_telemetry,
        window: args.window.max(1),
        jitter: args.jitter.0,
    });
    let stats = Arc::new(Stats::default());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = CancellationToken::new();
    let (down_tx, down_rx) = watch::channel(false);
    let checker = checker(&url, args, seen.clone(), stop.clone()).await?;
    let mut homes = tokio::task::JoinSet::new();
    for n in 1..=args.homes {
        homes.spawn(home::run(
            n,
            plan.clone(),
            stats.clone(),
            down_rx.clone(),
            stop.clone(),
        ));
    }
    let began = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_acked = 0u64;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut cmd_credit = 0.0f64;
    let mut peak_rss = 0u64;
    let mut cmds_sent = 0u64;
    while began.elapsed() < args.duration.0 {
        tick.tick().await;
        let t = began.elapsed();
        let down = outages.iter().any(|(a, l)| t >= *a && t < *a + *l);
        down_tx.send_if_modified(|d| std::mem::replace(d, down) != down);
        // Commands to random homes.
        cmd_credit += args.commands_per_s;
        while cmd_credit >= 1.0 && args.homes > 0 {
            cmd_credit -= 1.0;
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            let n = usize::try_from(rng_state % u64::try_from(args.homes).unwrap_or(1))
                .unwrap_or(0)
                + 1;
            cmds_sent += 1;
            let id = format!("fs-{cmds_sent}");
            let topic = format!("{}/{}-{n:05}/cmd/ping", args.prefix, args.id_prefix);
            if let Ok(mut s) = seen.lock() {
                s.pending.insert(id.clone(), Instant::now());
            }
            let _ = checker.try_publish(
                topic,
                QoS::AtLeastOnce,
                false,
                json!({"id": id}).to_string(),
            );
        }
        let acked = stats.acked.load(Relaxed);
        stats
            .connected_peak
            .fetch_max(stats.connected.load(Relaxed), Relaxed);
        peak_rss = peak_rss.max(rss_bytes());
        eprintln!(
            "t={:>4}s homes={} connected={} msg/s={} acked={} alerts={} cmds={}{}",
            t.as_secs(),
            args.homes,
            stats.connected.load(Relaxed),
            acked - last_acked,
            acked,
            stats.alerts.load(Relaxed),
            stats.commands.load(Relaxed),
            if down { " OUTAGE" } else { "" }
        );
        last_acked = acked;
    }
    let ran = began.elapsed();
    // Let the homes deliver what they hold, then stop them.
    down_tx.send_if_modified(|d| std::mem::replace(d, false));
    stats.draining.store(true, Relaxed);
    // A tick already under way may still add a row.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let drain_until = Instant::now() + args.drain.0;
    let (raised_now, made_now) = (stats.alerts.load(Relaxed), stats.telemetry.load(Relaxed));
    while Instant::now() < drain_until {
        let (got, tele) = seen
            .lock()
            .map(|s| (s.alerts.len() as u64, s.telemetry))
            .unwrap_or((0, 0));
        if got >= raised_now && tele >= made_now {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    while homes.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = checker.try_disconnect();
    let s = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("checker state poisoned"))?;
    let mut lat = stats.lat.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let mut rtt = s.rtt_us.clone();
    rtt.sort_unstable();
    let raised = stats.alerts.load(Relaxed);
    let acked = stats.acked.load(Relaxed);
    let homes_n = args.homes.max(1) as f64;
    Ok(json!({
        "homes": args.homes,
        "seconds": (ran.as_secs_f64() * 10.0).round() / 10.0,
        "connects": stats.connects.load(Relaxed),
        "published": stats.published.load(Relaxed),
        "acked": acked,
        "acked_per_s": (acked as f64 / ran.as_secs_f64()).round(),
        "puback_p50_ms": pct(&lat, 0.50),
        "puback_p99_ms": pct(&lat, 0.99),
        "alerts_raised": raised,
        "alerts_received": s.alerts.len(),
        // Lost: acknowledged by the broker (left the home's outbox) and
        // never received. Still in a home's outbox at the stop is not lost
        // (a gateway keeps it on disk), only late: reported apart.
        "alerts_lost": raised
            .saturating_sub(stats.unsent_alerts.load(Relaxed))
            .saturating_sub(s.alerts.len() as u64),
        "alerts_unsent_at_stop": stats.unsent_alerts.load(Relaxed),
        "connected_peak": stats.connected_peak.load(Relaxed),
        "telemetry_made": stats.telemetry.load(Relaxed),
        "telemetry_received": s.telemetry,
        "rows_unsent_at_stop": stats.unsent.load(Relaxed),
        "commands_sent": cmds_sent,
        "commands_answered": s.results,
        "command_rtt_p50_ms": pct(&rtt, 0.50),
        "command_rtt_p99_ms": pct(&rtt, 0.99),
        "rss_mb": (peak_rss as f64 / 1e6 * 10.0).round() / 10.0,
        "rss_per_home_kb": ((peak_rss.saturating_sub(rss_before)) as f64 / homes_n / 1e3).round(),
    }))
}

fn pct(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    (f64::from(sorted_us[i.min(sorted_us.len() - 1)]) / 100.0).round() / 10.0
}

/// The cloud side: a persistent QoS 1 subscriber that records alerts,
/// telemetry and command results, and publishes the commands.
async fn checker(
    url: &BrokerUrl,
    args: &FleetSimArgs,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
) -> anyhow::Result<AsyncClient> {
    let mut o = MqttOptions::new(
        format!("{}-checker", args.id_prefix),
        url.host.clone(),
        url.port,
    );
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 4096);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let sub = client.clone();
    let p = args.prefix.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            let e = tokio::select! {
                _ = stop.cancelled() => return,
                e = ev.poll() => e,
            };
            match e {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    for leaf in ["alert", "telemetry", "cmd/+/result"] {
                        let _ = sub.try_subscribe(format!("{p}/+/{leaf}"), QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(t) = ready.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(m))) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&m.payload).unwrap_or_default();
                    let Ok(mut s) = seen.lock() else { return };
                    let gw = m.topic.split('/').nth(1).unwrap_or("").to_string();
                    if m.topic.ends_with("/alert") {
                        s.alerts.insert((gw, v["seq"].as_u64().unwrap_or(0)));
                    } else if m.topic.ends_with("/telemetry") {
                        s.telemetry += 1;
                    } else if m.topic.ends_with("/result") {
                        s.results += 1;
                        if let Some(at) = v["id"].as_str().and_then(|id| s.pending.remove(id)) {
                            let us = u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX);
                            s.rtt_us.push(us);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(15), ready_rx)
        .await
        .map_err(|_| anyhow::anyhow!("{}: the checker could not subscribe within 15 s", args.url))?
        .map_err(|_| anyhow::anyhow!("{}: the checker stopped", args.url))?;
    Ok(client)
}

/// This process's resident memory (Linux), bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_outage_schedule_is_read_and_a_bad_one_names_the_part() {
        let o = parse_outages("20s+10s, 1m+5s").unwrap();
        assert_eq!(
            o,
            vec![
                (Duration::from_secs(20), Duration::from_secs(10)),
                (Duration::from_secs(60), Duration::from_secs(5))
            ]
        );
        assert!(parse_outages("").unwrap().is_empty());
        let e = parse_outages("20s").unwrap_err().to_string();
        assert!(e.contains("\"20s\""), "{e}");
    }
}
