//! `carebridge demo`: a simulated home on loopback (its configuration, the
//! simulated Zigbee stick and LoRaWAN modem, the "where to look" banner).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, MqttUplinkConfig};
use crate::ingest::sim::SimConfig;

use super::Exit;

/// Prints where to look, in one write (a reader never sees half of it) and
/// without panicking when stdout is closed (`carebridge demo | head`).
pub(super) fn print_banner(cfg: &Config, broker: Option<SocketAddr>, web: Option<SocketAddr>) {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "carebridge demo: a simulated home is running (Ctrl-C to stop)"
    );
    let _ = writeln!(out, "  data dir     {}", cfg.gateway.data_dir.display());
    if let Some(b) = broker {
        let _ = writeln!(
            out,
            "  MQTT broker  mqtt://{b}  (devices publish to carebridge/in/<device_id>)"
        );
        if let Some(m) = &cfg.uplink.mqtt {
            let _ = writeln!(
                out,
                "  upstream     mosquitto_sub -h {} -p {} -v -t '{}/#'",
                b.ip(),
                b.port(),
                m.topic_prefix
            );
        }
        let _ = writeln!(
            out,
            "  try a panic  mosquitto_pub -h {} -p {} -t carebridge/in/pendant -m '{{\"kind\":\"panic\",\"value\":true}}'",
            b.ip(),
            b.port()
        );
    }
    if let Some(z) = &cfg.zigbee {
        // zigbee: the demo's simulated stick and its devices waiting to pair.
        let _ = writeln!(
            out,
            "  zigbee       {} (simulated stick; pair its {} devices from Devices → permit join)",
            z.port,
            crate::zigbee::sim::SimDeviceKind::ALL.len()
        );
    }
    if let (Some(w), Some(addr)) = (&cfg.web, web) {
        let scheme = if w.tls { "https" } else { "http" };
        let _ = writeln!(out, "  web UI       {scheme}://{addr}/");
        let code_file = cfg.gateway.data_dir.join("setup-code");
        if let Ok(code) = std::fs::read_to_string(&code_file) {
            let _ = writeln!(
                out,
                "  setup code   {}  (first visit only: creates the installer account; also in {})",
                code.trim(),
                code_file.display()
            );
        }
    }
    // What to try next, in order: watch, look, press, pair.
    let _ = writeln!(out, "  try next:");
    if let (Some(b), Some(m)) = (broker, &cfg.uplink.mqtt) {
        let _ = writeln!(
            out,
            "    1. watch the home upstream: mosquitto_sub -h {} -p {} -v -t '{}/#'",
            b.ip(),
            b.port(),
            m.topic_prefix
        );
    }
    if let (Some(w), Some(addr)) = (&cfg.web, web) {
        let scheme = if w.tls { "https" } else { "http" };
        let _ = writeln!(
            out,
            "    2. open the UI at {scheme}://{addr}/ (setup code above), then Live and Alerts"
        );
    }
    if let Some(b) = broker {
        let _ = writeln!(
            out,
            "    3. press the panic button: mosquitto_pub -h {} -p {} -t carebridge/in/pendant -m '{{\"kind\":\"panic\",\"value\":true}}'",
            b.ip(),
            b.port()
        );
    }
    if cfg.zigbee.is_some() {
        let _ = writeln!(
            out,
            "    4. pair the simulated Zigbee stick: Devices → Permit join, then Identify and name each device"
        );
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

/// Arguments of `carebridge demo`.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    pub data: Option<PathBuf>,
    pub web: Option<String>,
    pub mqtt: Option<String>,
    pub speed: f64,
}

/// The demo's configuration: a simulated home, the embedded broker, and an
/// uplink to that same broker under `uplink/` (no outside server needed).
pub fn demo_config(args: &DemoArgs) -> Result<Config, Exit> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join("carebridge-demo"),
    };
    let data = std::path::absolute(&data).map_err(Exit::input)?;
    let listen = match &args.mqtt {
        Some(a) => a.clone(),
        None => free_or_default("127.0.0.1:1883"),
    };
    // Resolve port 0 now so the uplink knows where the broker is.
    let listen = if listen.ends_with(":0") {
        let probe = std::net::TcpListener::bind(&listen)
            .map_err(|e| Exit::input(anyhow::anyhow!("--mqtt {listen}: {e}")))?;
        probe.local_addr().map_err(Exit::runtime)?.to_string()
    } else {
        listen
    };
    let mut cfg = Config::default();
    cfg.gateway.id = "demo-home".into();
    cfg.gateway.data_dir = data;
    cfg.local_broker = Some(crate::config::LocalBrokerConfig {
        listen: listen.clone(),
        ..Default::default()
    });
    cfg.uplink.mqtt = Some(MqttUplinkConfig {
        url: format!("mqtt://{listen}").into(),
        topic_prefix: "uplink/carebridge".into(),
        heartbeat: crate::config::Dur::secs(60),
        ..Default::default()
    });
    cfg.simulator = Some(SimConfig {
        speed: args.speed,
        ..Default::default()
    });
    let web = match &args.web {
        Some(w) => w.clone(),
        None => free_or_default("127.0.0.1:8080"),
    };
    {
        cfg.web = Some(crate::web::WebConfig::demo(web));
    }
    let problems = cfg.validate();
    if let Some(p) = problems.first() {
        return Err(Exit::input(anyhow::anyhow!(
            "demo: {}: {}",
            p.key,
            p.reason
        )));
    }
    Ok(cfg)
}

/// Where the demo's simulated stick appears, inside the demo's data dir.
const DEMO_STICK: &str = "zigbee-stick";

/// Starts the demo's simulated Zigbee stick on a pseudo-terminal, with a
/// motion sensor, a door contact, a thermometer and a panic pendant waiting
/// to be paired from the UI (Devices → permit join), and points `[zigbee]`
/// at it. The stick runs until the returned guard is dropped. Costs a pty
/// and two threads; if no pty can be opened the demo runs without Zigbee.
pub fn demo_zigbee(cfg: &mut Config) -> Option<crate::zigbee::sim_run::SimStick> {
    use crate::zigbee::sim_run::{SimStick, SimStickArgs};
    let args = SimStickArgs {
        link: cfg.gateway.data_dir.join(DEMO_STICK),
        devices: crate::zigbee::sim::SimDeviceKind::ALL.to_vec(),
        paired: false,
        report_every: Some(crate::config::Dur::secs(20)),
    };
    if let Err(e) = std::fs::create_dir_all(&cfg.gateway.data_dir) {
        eprintln!("carebridge demo: no data dir for the simulated Zigbee stick ({e})");
        return None;
    }
    match SimStick::start(&args) {
        Ok(stick) => {
            cfg.zigbee = Some(crate::zigbee::ZigbeeConfig {
                port: args.link.display().to_string(),
                // A simulated stick answers at once; come back quickly.
                backoff_max: crate::config::Dur::secs(5),
                ..Default::default()
            });
            Some(stick)
        }
        Err(e) => {
            eprintln!("carebridge demo: no simulated Zigbee stick ({e}); running without Zigbee");
            None
        }
    }
}

/// The default port when it is free, else any free port (a demo should
/// start even when a Mosquitto already runs on 1883).
fn free_or_default(default: &str) -> String {
    match std::net::TcpListener::bind(default) {
        Ok(_) => default.to_string(),
        Err(_) => "127.0.0.1:0".to_string(),
    }
}

/// `carebridge demo --lorawan-sim`: starts the modem simulator on a
/// pseudo-terminal, points `[lorawan]` at it (with a demo AppKey file in the
/// data dir) and prints every uplink the simulated network decodes. Keep
/// the returned handle alive while the gateway runs.
pub fn demo_lorawan_sim(
    cfg: &mut Config,
) -> Result<Arc<crate::uplink::lorawan::sim::ModemSim>, Exit> {
    use std::os::unix::fs::PermissionsExt;
    let sim = crate::uplink::lorawan::sim::ModemSim::start(Default::default())
        .map_err(|e| Exit::runtime(anyhow::anyhow!("LoRaWAN simulator: {e}")))?;
    std::fs::create_dir_all(&cfg.gateway.data_dir).map_err(Exit::runtime)?;
    let key = cfg.gateway.data_dir.join("demo-lorawan-appkey");
    std::fs::write(&key, "2B7E151628AED2A6ABF7158809CF4F3C\n")
        .and_then(|()| std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)))
        .map_err(Exit::runtime)?;
    cfg.lorawan = Some(crate::uplink::lorawan::LorawanConfig {
        port: sim.path().to_string(),
        dev_eui: "AC1F09FFFE000001".into(),
        app_key_file: key.display().to_string(),
        // Both paths at once, so the demo shows the radio side too.
        mqtt_grace: crate::config::Dur::secs(0),
        ..Default::default()
    });
    println!(
        "  LoRaWAN      modem simulator on {} (radio uplinks below)",
        sim.path()
    );
    let sim = Arc::new(sim);
    let watch = sim.clone();
    let _ = std::thread::Builder::new()
        .name("demo-lorawan".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let ups = watch.stats().uplinks;
                for u in ups.iter().skip(seen) {
                    let data = crate::uplink::lorawan::codec::decode(&u.data)
                        .map(|(m, _)| m.to_json().to_string())
                        .unwrap_or_else(|e| format!("undecodable: {e}"));
                    let lost = if u.lost { " (lost on air)" } else { "" };
                    println!("  lorawan ↑ port {} {}{lost}", u.port, data);
                }
                seen = ups.len();
            }
        });
    Ok(sim)
}
