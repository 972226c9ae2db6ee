//! Node-RED 4 as the comparison: installed with npm (`node-red@4`) into a
//! cache directory once, started headless with a flow that does what
//! carebridge does on the same stream, minus durability: an `mqtt in` node
//! on Mosquitto, a function node that turns a panic press into an alert
//! document (and, for telemetry, every reading into a telemetry document),
//! an `mqtt out` node publishing at QoS 1 to the same Mosquitto.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Node-RED is installed: `VERSUS_NODE_RED_DIR`, else
/// `$XDG_CACHE_HOME/carebridge-bench/node-red` (`~/.cache/…`).
fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("VERSUS_NODE_RED_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache")
        });
    base.join("carebridge-bench").join("node-red")
}

/// The path of Node-RED's `red.js`, installing `node-red@4` with npm first
/// if needed. `Err` says why it cannot run here.
pub fn install() -> Result<PathBuf, String> {
    let dir = cache_dir();
    let red = dir.join("node_modules/node-red/red.js");
    if red.exists() {
        return Ok(red);
    }
    for (bin, arg) in [("node", "--version"), ("npm", "--version")] {
        if !super::peers::have(bin, arg) {
            return Err(format!("{bin} is not installed"));
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("versus: npm install node-red@4 into {} …", dir.display());
    let out = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "node-red@4",
        ])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !out.status.success() || !red.exists() {
        return Err(format!(
            "npm install node-red@4 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(red)
}

/// The flow: `nrin/<device>` in, `<prefix>/nr/alert` and
/// `<prefix>/nr/telemetry` out (QoS 1).
fn flow(mqtt_port: u16, prefix: &str, telemetry: bool) -> String {
    let func = format!(
        r#"
const device = msg.topic.substring(5);
const r = msg.payload;
if (typeof r !== 'object' || r === null) {{ return null; }}
const seq = (context.get('seq') || 0) + 1;
context.set('seq', seq);
const id = Math.random().toString(16).slice(2) + Date.now().toString(16);
if (r.kind === 'panic' || r.kind === 'fall') {{
  const a = {{ id, seq, rule: 'panic', severity: 'critical', state: 'raised', device,
    room: null, at: r.at, message: 'Panic button pressed', kind: r.kind, value: Number(r.value) }};
  return [{{ topic: '{prefix}/nr/alert', payload: JSON.stringify(a) }}, null];
}}
if ({telemetry}) {{
  const t = {{ id, seq, device, kind: r.kind, value: Number(r.value), at: r.at }};
  return [null, {{ topic: '{prefix}/nr/telemetry', payload: JSON.stringify(t) }}];
}}
return null;
"#
    );
    serde_json::json!([
        {"id": "tab", "type": "tab", "label": "panic"},
        {"id": "broker", "type": "mqtt-broker", "name": "mosquitto", "broker": "127.0.0.1",
         "port": mqtt_port.to_string(), "clientid": "", "autoConnect": true, "usetls": false,
         "protocolVersion": "4", "keepalive": "60", "cleansession": true},
        {"id": "in", "type": "mqtt in", "z": "tab", "topic": "nrin/#", "qos": "0",
         "datatype": "json", "broker": "broker", "nl": false, "rap": false, "inputs": 0,
         "wires": [["rule"]]},
        {"id": "rule", "type": "function", "z": "tab", "func": func, "outputs": 2,
         "wires": [["out"], ["out"]]},
        {"id": "out", "type": "mqtt out", "z": "tab", "topic": "", "qos": "1",
         "retain": "false", "broker": "broker", "wires": []}
    ])
    .to_string()
}

/// Starts Node-RED (pinned with `taskset -c 0` when `pin`) on `dir`.
pub fn start(
    red: &Path,
    dir: &Path,
    mqtt_port: u16,
    prefix: &str,
    telemetry: bool,
    pin: bool,
) -> Child {
    let user = dir.join("nr");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("flows.json"), flow(mqtt_port, prefix, telemetry)).unwrap();
    let http = super::peers::free_port();
    let settings = format!(
        "module.exports = {{ uiPort: {http}, uiHost: '127.0.0.1', flowFile: 'flows.json', \
         credentialSecret: false, editorTheme: {{ tours: false }}, \
         logging: {{ console: {{ level: 'warn', metrics: false, audit: false }} }} }};\n"
    );
    std::fs::write(user.join("settings.js"), settings).unwrap();
    super::system::pinned("node", pin)
        .arg(red)
        .arg("--settings")
        .arg(user.join("settings.js"))
        .arg("--userDir")
        .arg(&user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
