//! A fleet on a real clustered broker: RabbitMQ 3.10 with its MQTT plugin,
//! two nodes on loopback ports joined into one cluster (queues mirrored to
//! both). One node is killed (`kill -9`): the gateways on it move to the
//! other, nothing they had accepted is lost, and a command queued for a
//! gateway that was offline arrives when it comes back.
//!
//! Needs `rabbitmq-server` (tests/peers.sh installs it); skipped with a
//! message where it is missing, a failure under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// One RabbitMQ node of the test cluster.
struct Node {
    name: String,
    mqtt: u16,
    child: Option<Child>,
    home: PathBuf,
}

impl Node {
    fn start(home: &Path, short: &str) -> Node {
        let name = format!("{short}{}@localhost", std::process::id());
        let dir = home.join(short);
        std::fs::create_dir_all(&dir).unwrap();
        let (amqp, dist, mqtt) = (free_port(), free_port(), free_port());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.local = 127.0.0.1:{amqp}\n\
                 mqtt.listeners.tcp.local = 127.0.0.1:{mqtt}\n\
                 mqtt.allow_anonymous = true\nloopback_users = none\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n").unwrap();
        let child = Command::new(SERVER)
            .env("HOME", home)
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", amqp.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rabbitmq-server");
        let node = Node {
            name,
            mqtt,
            child: Some(child),
            home: home.to_path_buf(),
        };
        assert!(
            wait_port(mqtt, Duration::from_secs(90)),
            "RabbitMQ node {} did not open its MQTT port (logs in {})",
            node.name,
            dir.join("log").display()
        );
        node
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(CTL)
            .env("HOME", &self.home)
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// The Erlang VM's pid (the server script is only its parent).
    fn beam_pid(&self) -> u32 {
        let out = self.ctl(&["eval", "list_to_integer(os:getpid())."]);
        out.trim().parse().expect("pid")
    }

    fn kill9(&mut self) {
        let pid = self.beam_pid();
        signal(pid, "KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        assert!(
            eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                self.mqtt
            ))
            .is_err()),
            "node still answers"
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new(CTL)
                .env("HOME", &self.home)
                .args(["-n", &self.name, "eval", "erlang:halt()."])
                .output();
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Two nodes joined into one cluster, every queue mirrored on both.
fn cluster(home: &Path) -> (Node, Node) {
    use std::os::unix::fs::PermissionsExt as _;
    let cookie = home.join(".erlang.cookie");
    std::fs::write(&cookie, format!("FLEETTEST{}", free_port())).unwrap();
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();
    let a = Node::start(home, "fleeta");
    let b = Node::start(home, "fleetb");
    b.ctl(&["stop_app"]);
    b.ctl(&["join_cluster", &a.name]);
    b.ctl(&["start_app"]);
    assert!(
        wait_port(b.mqtt, Duration::from_secs(60)),
        "node b after join"
    );
    a.ctl(&[
        "set_policy",
        "ha-all",
        ".*",
        r#"{"ha-mode":"all","ha-sync-mode":"automatic"}"#,
    ]);
    let status = a.ctl(&["cluster_status"]);
    assert!(status.contains(&b.name), "{status}");
    (a, b)
}

fn rabbit_present() -> bool {
    if Path::new(SERVER).exists() {
        return true;
    }
    if strict() {
        panic!("rabbitmq-server is not installed (tests/peers.sh installs it)");
    }
    eprintln!("SKIP: rabbitmq-server is not installed; run tests/peers.sh to install it");
    false
}

/// Gateway ids whose first choice (spread by id) is the first URL, node a.
fn ids_starting_on_first(n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("gw-r{i}"))
        .filter(|id| carebridge::uplink::mqtt::nodes::spread(id, 2) == 0)
        .take(n)
        .collect()
}

fn gateway(dir: &Path, id: &str, a: &Node, b: &Node) -> Gateway {
    let broker_port = free_port();
    let config = dir.join("carebridge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"{id}\"\ndata_dir = \"{data}\"\n\n\
             [local_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n\n\
             [uplink.mqtt]\nurl = [\"mqtt://127.0.0.1:{pa}\", \"mqtt://127.0.0.1:{pb}\"]\n\
             topic_prefix = \"cb\"\nkeepalive = \"5s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n",
            data = dir.join("data").display(),
            pa = a.mqtt,
            pb = b.mqtt,
        ),
    )
    .unwrap();
    Gateway::from_config(dir, config, broker_port)
}

/// Distinct temperatures of the test's devices that arrived.
fn temps(col: &Collector) -> usize {
    col.unique("telemetry")
        .iter()
        .filter(|t| t["device"] == "before" || t["device"] == "during")
        .count()
}

fn statuses(col: &Collector, gw: &str) -> Vec<serde_json::Value> {
    col.snapshot()
        .into_iter()
        .filter(|m| m.topic == format!("cb/{gw}/status") && m.json["state"] == "online")
        .map(|m| m.json)
        .collect()
}

#[test]
fn killing_a_cluster_node_moves_gateways_loses_nothing_and_queued_commands_arrive() {
    if !rabbit_present() || !have("mosquitto_pub") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let (mut a, b) = cluster(home.path());
    // The care organisation's consumer, on the node that survives.
    let col = Collector::start(b.mqtt, "cb/#");
    let ids = ids_starting_on_first(2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let g1 = gateway(d1.path(), &ids[0], &a, &b);
    let mut g2 = gateway(d2.path(), &ids[1], &a, &b);
    let node_a = format!("127.0.0.1:{}", a.mqtt);
    for id in &ids {
        assert!(
            eventually(Duration::from_secs(30), || statuses(&col, id)
                .iter()
                .any(|s| s["uplinks"]["mqtt"]["node"] == node_a.as_str())),
            "{id} never online on node a: {:?}",
            col.snapshot()
        );
    }
    // Accepted before the failure.
    assert_eq!(publish(g1.broker_port, &temperatures("before", 10)), 10);
    assert!(eventually(Duration::from_secs(30), || col
        .count("telemetry")
        >= 10));
    // g2 goes offline (its session and cmd/+ subscription stay in the
    // cluster), then node a dies.
    assert_eq!(g2.stop(), Some(0));
    a.kill9();

    // Accepted while the gateway moves: nothing lost.
    let mut readings = temperatures("during", 30);
    readings.extend(panics("pendant", 1));
    assert_eq!(publish(g1.broker_port, &readings), 31);
    assert!(
        eventually(Duration::from_secs(60), || temps(&col) == 40
            && col.count("alert") >= 1),
        "after the node died: {} temperatures of 40, {} alerts; {}",
        temps(&col),
        col.count("alert"),
        g1.diagnose()
    );
    let node_b = format!("127.0.0.1:{}", b.mqtt);
    let moved = statuses(&col, &ids[0]);
    let last = moved.last().unwrap();
    assert_eq!(last["uplinks"]["mqtt"]["node"], node_b.as_str(), "{last}");
    assert!(
        last["uplinks"]["mqtt"]["failovers"].as_u64().unwrap() >= 1,
        "{last}"
    );

    // A command for the offline gateway, queued by the cluster.
    let sent = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &b.mqtt.to_string(), "-q", "1"])
        .args(["-i", "cloud-cmd", "-t", &format!("cb/{}/cmd/ping", ids[1])])
        .args(["-m", r#"{"id":"queued-1"}"#])
        .status()
        .expect("mosquitto_pub");
    assert!(sent.success());
    g2.restart();
    let leaf = format!("cb/{}/cmd/ping/result", ids[1]);
    assert!(
        eventually(Duration::from_secs(60), || col.snapshot().iter().any(|m| m
            .topic
            == leaf
            && m.json["id"] == "queued-1"
            && m.json["ok"] == true)),
        "the queued command never ran: {:?}",
        col.snapshot()
    );
    drop(g1);
}
