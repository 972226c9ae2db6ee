//! A command is acknowledged to the cloud broker only once it ran: the
//! gateway is `kill -9`ed after Mosquitto delivered a command (its log says
//! so) but while the command handler is still busy with an earlier one, so
//! the command was received and not executed. Over the persistent session
//! the broker delivers it again after the restart; it runs once, and a
//! repeat of its id is answered as a duplicate.
//!
//! What keeps the handler busy is real: `cmd/arc_test` waits for the alarm
//! receiving centre's answer, and the "ARC" here is a TCP listener that
//! takes the test signal and never answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const GW: &str = "gw-acks";

/// Mosquitto logging every packet to a file, so the test sees when it
/// delivered a command and whether the gateway acknowledged it.
struct Broker {
    port: u16,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("mosquitto.log");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n\
                 max_queued_messages 0\nmax_inflight_messages 0\n\
                 log_dest file {log}\nlog_type all\n",
                log = log.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mosquitto");
        assert!(wait_port(port, Duration::from_secs(10)), "mosquitto");
        Broker {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The message ids of `topic` as sent to the gateway, with their DUP flag.
    fn sent_to_gateway(&self, topic: &str) -> Vec<(bool, String)> {
        let quoted = format!("'{topic}'");
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("Sending PUBLISH to {GW} (")) && l.contains(&quoted))
            .filter_map(|l| {
                let flags = l.split_once(" (")?.1;
                let dup = flags.starts_with("d1");
                let mid = flags.split(", ").find(|f| f.starts_with('m'))?;
                Some((dup, mid[1..].to_string()))
            })
            .collect()
    }

    fn acked_by_gateway(&self, mid: &str) -> bool {
        self.log()
            .contains(&format!("Received PUBACK from {GW} (Mid: {mid},"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An alarm receiving centre that reads and never answers.
fn silent_arc() -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (port, got)
}

fn command(port: u16, name: &str, body: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("cb/{GW}/cmd/{name}"), "-m", body])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
}

fn results(col: &Collector, name: &str) -> Vec<serde_json::Value> {
    let leaf = format!("/cmd/{name}/result");
    col.snapshot()
        .into_iter()
        .filter(|m| m.topic.ends_with(&leaf))
        .map(|m| m.json)
        .collect()
}

/// The config without its `[arc]` section (the restart has no ARC, so the
/// redelivered `arc_test` is answered at once).
fn drop_arc(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let kept = text.split("[arc]").next().unwrap().to_string();
    std::fs::write(config, kept).unwrap();
}

#[test]
fn a_command_received_but_not_yet_run_when_the_gateway_is_killed_runs_once_after_the_restart() {
    if !have("mosquitto") || !have("mosquitto_pub") {
        if strict() {
            panic!("mosquitto is required under CI");
        }
        eprintln!("SKIP: mosquitto not installed");
        return;
    }
    let broker = Broker::start();
    let col = Collector::start(broker.port, "cb/#");
    let (arc_port, arc_got) = silent_arc();
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(
        dir.path(),
        GW,
        broker.port,
        &format!(
            "[arc]\nprimary = \"tcp://127.0.0.1:{arc_port}\"\naccount = \"1234\"\n\
             encryption = \"none\"\nack_timeout = \"20s\"\n"
        ),
    );
    let online = || {
        col.snapshot()
            .iter()
            .any(|m| m.topic == format!("cb/{GW}/status") && m.json["state"] == "online")
    };
    assert!(eventually(Duration::from_secs(20), online), "never online");
    // The subscription is in place once the broker logs it.
    assert!(
        eventually(Duration::from_secs(10), || broker
            .log()
            .contains(&format!("{GW} 1 cb/{GW}/cmd/+"))),
        "no cmd/+ subscription at QoS 1: {}",
        broker.log()
    );

    // The handler is busy: the ARC got the test signal and never answers.
    command(broker.port, "arc_test", "{}");
    assert!(
        eventually(Duration::from_secs(10), || String::from_utf8_lossy(
            &arc_got.lock().unwrap()
        )
        .contains("1601")),
        "the ARC never got the test signal"
    );
    // The next command reaches the gateway and waits behind it.
    let mode_topic = format!("cb/{GW}/cmd/mode");
    command(broker.port, "mode", r#"{"id":"m-1","mode":"away"}"#);
    assert!(
        eventually(Duration::from_secs(10), || !broker
            .sent_to_gateway(&mode_topic)
            .is_empty()),
        "the broker never delivered cmd/mode: {}",
        broker.log()
    );
    let (dup, mid) = broker.sent_to_gateway(&mode_topic)[0].clone();
    assert!(!dup);
    // Received, not run: no result and, above all, no PUBACK.
    std::thread::sleep(Duration::from_millis(500));
    assert!(results(&col, "mode").is_empty(), "{:?}", col.snapshot());
    assert!(
        !broker.acked_by_gateway(&mid),
        "cmd/mode was acknowledged before it ran: {}",
        broker.log()
    );

    gw.kill9();
    drop_arc(&gw.config);
    gw.restart();

    assert!(
        eventually(Duration::from_secs(30), || !results(&col, "mode")
            .is_empty()),
        "the command received before kill -9 never ran: {}",
        broker.log()
    );
    let again = broker.sent_to_gateway(&mode_topic);
    assert!(
        again.iter().any(|(dup, m)| *dup && *m == mid),
        "the broker did not deliver it again over the session: {again:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || broker.acked_by_gateway(&mid)),
        "acknowledged once run: {}",
        broker.log()
    );
    let r = results(&col, "mode");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["ok"], true, "{r:?}");
    assert_eq!(r[0]["id"], "m-1", "{r:?}");
    assert_eq!(r[0]["mode"]["mode"], "away", "{r:?}");
    // The arc_test that kept the handler busy came back as well, and is
    // answered: there is no ARC now.
    assert!(
        eventually(Duration::from_secs(10), || !results(&col, "arc_test")
            .is_empty()),
        "{:?}",
        col.snapshot()
    );

    // Its id is remembered: the cloud's retry does not run it again.
    command(broker.port, "mode", r#"{"id":"m-1","mode":"away"}"#);
    assert!(
        eventually(Duration::from_secs(10), || results(&col, "mode").len() >= 2),
        "{:?}",
        col.snapshot()
    );
    let r = results(&col, "mode");
    assert_eq!(r[1]["duplicate"], true, "{r:?}");
    assert_eq!(
        r.iter().filter(|v| v.get("mode").is_some()).count(),
        1,
        "ran once: {r:?}"
    );
    assert_eq!(gw.stop(), Some(0));
}
