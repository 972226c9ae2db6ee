//! `/metrics` of a running gateway, on the web server and on its own
//! listener, parsed by the reference Python parser (`prometheus-client`
//! from PyPI, installed in a venv under the target dir), with the expected
//! series present and counting what happened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

/// `GET path` over plain HTTP/1.1; (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (head.lines().next().unwrap_or("").to_string(), body)
}

fn dechunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = b.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        b = &rest[n + 2..];
    }
    out
}

/// A Python with `prometheus_client`, or why there is none.
fn python() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-metrics");
    let py = venv.join("bin/python");
    let ok = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import prometheus_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return Ok(py);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3: {e}"))?;
    if !made.success() {
        return Err("python3 -m venv failed".into());
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "prometheus-client"])
        .status()
        .map_err(|e| format!("pip: {e}"))?;
    if pip.success() && ok(&py) {
        Ok(py)
    } else {
        Err("pip install prometheus-client failed".into())
    }
}

/// Parses exposition text with prometheus_client: sample name → value,
/// labels folded into the name as `name{k=v,…}` (sorted).
fn parse(py: &PathBuf, text: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"families": {}, "samples": {}}
for f in text_string_to_metric_families(sys.stdin.read()):
    out["families"][f.name] = f.type
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out["samples"][s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metrics_parse_with_the_reference_parser_and_count_what_happened() {
    if !have("mosquitto") {
        assert!(!strict(), "mosquitto is required");
        return;
    }
    let py = match python() {
        Ok(p) => p,
        Err(why) => {
            assert!(!strict(), "prometheus-client is required: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let (web, own) = (free_port(), free_port());
    let extra = format!(
        "\n[web]\nlisten = \"127.0.0.1:{web}\"\ntls = false\n\n[metrics]\nlisten = \"127.0.0.1:{own}\"\n"
    );
    let gw = Gateway::start(dir.path(), "gw-metrics", up.port, &extra);
    assert!(wait_port(own, Duration::from_secs(10)) && wait_port(web, Duration::from_secs(10)));
    assert_eq!(publish(gw.broker_port, &temperatures("lounge", 5)), 5);
    assert_eq!(publish(gw.broker_port, &panics("pendant", 1)), 1);
    assert!(eventually(Duration::from_secs(30), || col.count("alert") >= 1));

    let (status, body) = get(own, "/metrics");
    assert!(status.contains("200"), "{status}");
    let m = parse(&py, &body);
    let fam = &m["families"];
    assert_eq!(fam["carebridge_readings"], "counter", "{fam}");
    assert_eq!(fam["carebridge_store_commit_seconds"], "histogram", "{fam}");
    for f in [
        "carebridge_alerts",
        "carebridge_outbox_rows",
        "carebridge_outbox_oldest_age_seconds",
        "carebridge_uplink_up",
        "carebridge_uplink_reconnects",
        "carebridge_config_version",
        "process_resident_memory_bytes",
    ] {
        assert!(fam.get(f).is_some(), "no family {f}: {fam}");
    }
    let s = &m["samples"];
    assert!(
        eventually(Duration::from_secs(30), || {
            let m = parse(&py, &get(own, "/metrics").1);
            m["samples"]["carebridge_readings_total{kind=temperature}"] == 5.0
        }),
        "{s}"
    );
    let m = parse(&py, &get(own, "/metrics").1);
    let s = &m["samples"];
    assert!(
        s["carebridge_alerts_total{rule=panic,severity=urgent,state=raised}"].as_f64() >= Some(1.0),
        "{s}"
    );
    assert!(
        s["carebridge_store_commit_seconds_count"].as_f64() > Some(0.0),
        "{s}"
    );
    assert_eq!(s["carebridge_uplink_up{uplink=mqtt}"], 1.0, "{s}");
    // Counted while connected, not only when a session ends.
    assert!(
        eventually(Duration::from_secs(10), || {
            let m = parse(&py, &get(own, "/metrics").1);
            m["samples"]["carebridge_uplink_delivered_total{uplink=mqtt}"].as_f64() >= Some(1.0)
        }),
        "{s}"
    );
    assert!(
        s["process_resident_memory_bytes"].as_f64() > Some(1e6),
        "{s}"
    );

    // The same on the web server, free for a loopback peer.
    let (status, body) = get(web, "/metrics");
    assert!(status.contains("200"), "{status}");
    let m = parse(&py, &body);
    assert!(m["families"].get("carebridge_outbox_rows").is_some());
}
