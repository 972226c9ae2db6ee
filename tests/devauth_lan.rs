//! The local broker on a home network, met by a rogue device with the
//! stock Mosquitto clients (`mosquitto_pub`/`mosquitto_sub`) connecting to
//! the gateway's LAN address: anonymous refused, a device publishing as
//! another refused (its reading not stored), `#` refused, wrong passwords
//! throttled and alerted upstream, TLS verified with the unit's own
//! certificate, credentials pushed by `cmd/config`. Every refusal is
//! checked in `/metrics` by cause.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use carebridge::devauth::CredentialStore;
use carebridge::devauth::record::Holder;
use carebridge::model::{DeviceId, Time};
use common::*;

/// This machine's first non-loopback IPv4 address: connections to it come
/// from a LAN address, as a device's would (loopback if there is none).
fn lan_ip() -> IpAddr {
    let out = Command::new("hostname").arg("-I").output().ok();
    out.and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    })
    .unwrap_or_else(|| {
        eprintln!("NOTE: no LAN address; connecting over loopback");
        IpAddr::from([127, 0, 0, 1])
    })
}

/// A credential made the way the web UI makes it (same store, same file).
fn credential(data: &Path, device: &str) -> String {
    CredentialStore::open(data)
        .create(
            Holder::Device(DeviceId::new(device).unwrap()),
            "test",
            Time(0),
        )
        .unwrap()
}

struct Lan {
    gw: Gateway,
    port: u16,
    metrics: u16,
    ip: IpAddr,
}

/// A gateway whose broker listens on every address with device
/// credentials, metrics on loopback, `extra` appended to `[local_broker]`
/// (and `tail` after it).
fn start(dir: &Path, creds: &[&str], extra: &str, tail: &str) -> (Lan, Vec<String>) {
    let data = dir.join("data");
    let secrets = creds.iter().map(|d| credential(&data, d)).collect();
    let (port, metrics) = (free_port(), free_port());
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-lan\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"0.0.0.0:{port}\"\n\
             device_credentials = true\n{extra}\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{tail}\n",
            data.display()
        ),
    )
    .unwrap();
    let gw = Gateway::from_config(dir, config, port);
    assert!(wait_port(metrics, Duration::from_secs(10)));
    (
        Lan {
            gw,
            port,
            metrics,
            ip: lan_ip(),
        },
        secrets,
    )
}

fn run(bin: &str, args: &[&str]) -> Output {
    let mut c = Command::new("timeout")
        .arg("15")
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    c.stdout.extend_from_slice(&c.stderr);
    c
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

impl Lan {
    fn publish(&self, user: Option<(&str, &str)>, topic: &str, payload: &str) -> Output {
        let (host, port) = (self.ip.to_string(), self.port.to_string());
        let mut a = vec![
            "-h", &host, "-p", &port, "-q", "1", "-t", topic, "-m", payload,
        ];
        if let Some((u, p)) = user {
            a.extend(["-u", u, "-P", p]);
        }
        run("mosquitto_pub", &a)
    }

    /// A metric's value (0 when absent).
    fn metric(&self, series: &str) -> u64 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    fn stored(&self, device: &str) -> i64 {
        let Ok(c) = rusqlite::Connection::open_with_flags(
            self.gw.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return 0;
        };
        c.query_row(
            "SELECT count(*) FROM history WHERE device = ?1",
            [device],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }
}

fn refused(cause: &str) -> String {
    format!("carebridge_local_broker_refused_total{{cause=\"{cause}\"}}")
}

const PANIC: &str = r#"{"kind":"panic","value":true}"#;

#[test]
fn an_unauthenticated_lan_listener_is_refused_by_config_check_and_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"0.0.0.0:{}\"\n",
            dir.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    for args in [vec!["config", "check"], vec!["run", "--config"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_carebridge"))
            .args(&args)
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("local_broker.listen"), "{args:?}: {err}");
        assert!(err.contains("allow_anonymous"), "{err}");
    }
    // Saying so explicitly passes (and the status will warn).
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap() + "allow_anonymous = true\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: local_broker.allow_anonymous"),
        "{err}"
    );
}

#[test]
fn an_explicitly_anonymous_lan_listener_runs_and_the_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics) = (free_port(), free_port());
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"0.0.0.0:{port}\"\n\
             allow_anonymous = true\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let gw = Gateway::from_config(dir.path(), config, port);
    assert!(wait_port(metrics, Duration::from_secs(10)));
    let lan = Lan {
        gw,
        port,
        metrics,
        ip: lan_ip(),
    };
    assert_eq!(
        lan.metric("carebridge_local_broker_anonymous_on_network"),
        1
    );
    if have("mosquitto_pub") {
        let o = lan.publish(None, "carebridge/in/pendant", PANIC);
        assert!(o.status.success(), "{}", text(&o));
        assert!(eventually(Duration::from_secs(10), || lan
            .stored("pendant")
            == 1));
    }
}

#[test]
fn a_rogue_device_is_refused_anonymous_impersonation_and_the_whole_tree() {
    if !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (lan, s) = start(dir.path(), &["pendant", "door"], "", "");
    let pendant = ("pendant", s[0].as_str());

    // Anonymous on the LAN listener: refused at CONNECT, nothing stored.
    let o = lan.publish(None, "carebridge/in/pendant", PANIC);
    assert!(!o.status.success(), "anonymous accepted: {}", text(&o));
    assert_eq!(lan.metric(&refused("anonymous")), 1);

    // The pendant publishing as the door: acknowledged (so the device does
    // not retry forever) but dropped and counted.
    let o = lan.publish(Some(pendant), "carebridge/in/door", PANIC);
    assert!(o.status.success(), "{}", text(&o));
    // Its own reading goes through: once that is stored, the other would be too.
    let o = lan.publish(
        Some(pendant),
        "carebridge/in/pendant",
        r#"{"kind":"temperature","value":21.5}"#,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(eventually(Duration::from_secs(10), || lan
        .stored("pendant")
        == 1));
    assert_eq!(lan.stored("door"), 0, "the impersonated reading was stored");
    assert_eq!(lan.metric(&refused("publish")), 1);

    // A subscription to everything is denied; its own command topics are not.
    let (host, port) = (lan.ip.to_string(), lan.port.to_string());
    let sub = |filter: &str| {
        run(
            "mosquitto_sub",
            &[
                "-h", &host, "-p", &port, "-u", "pendant", "-P", pendant.1, "-t", filter, "-W",
                "2", "-v",
            ],
        )
    };
    let o = sub("#");
    assert!(text(&o).contains("denied"), "{:?} {}", o.status, text(&o));
    assert_eq!(lan.metric(&refused("subscribe")), 1);
    let o = sub("carebridge/cmd/pendant/#");
    assert!(!text(&o).contains("denied"), "{}", text(&o));
    assert_eq!(lan.metric(&refused("subscribe")), 1);
    assert_eq!(lan.metric("carebridge_local_broker_credentials"), 2);
}

#[test]
fn wrong_passwords_are_throttled_and_raise_a_warning_upstream() {
    if !have("mosquitto_pub") || !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let tail = format!(
        "[uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"cb\"\nkeepalive = \"5s\"\n\
         backoff_min = \"100ms\"\nbackoff_max = \"1s\"\n",
        up.port
    );
    let (lan, s) = start(
        dir.path(),
        &["pendant"],
        "failures_before_backoff = 3\nalert_after_failures = 5\n",
        &tail,
    );
    for _ in 0..3 {
        let o = lan.publish(Some(("pendant", "guess")), "carebridge/in/pendant", PANIC);
        assert!(!o.status.success());
    }
    assert_eq!(lan.metric(&refused("bad_password")), 3);
    // Backing off: even the right password is refused for now.
    let o = lan.publish(Some(("pendant", &s[0])), "carebridge/in/pendant", PANIC);
    assert!(!o.status.success(), "not throttled: {}", text(&o));
    assert!(lan.metric(&refused("throttled")) >= 1);
    assert_eq!(lan.stored("pendant"), 0);
    // Two more guesses (after their waits) reach the alert threshold.
    for wait in [1, 2] {
        std::thread::sleep(Duration::from_millis(wait * 1000 + 300));
        let o = lan.publish(Some(("nobody", "guess")), "carebridge/in/pendant", PANIC);
        assert!(!o.status.success());
    }
    assert!(
        eventually(Duration::from_secs(30), || col.snapshot().iter().any(|m| {
            m.topic == "cb/gw-lan/alert"
                && m.json["rule"] == "local-broker-auth-failures"
                && m.json["severity"] == "warning"
                && m.json["state"] == "raised"
        })),
        "no warning alert upstream; {}",
        lan.gw.diagnose()
    );
    // After the back-off the device gets in.
    std::thread::sleep(Duration::from_millis(4300));
    let o = lan.publish(Some(("pendant", &s[0])), "carebridge/in/pendant", PANIC);
    assert!(o.status.success(), "{}", text(&o));
    assert!(eventually(Duration::from_secs(10), || lan
        .stored("pendant")
        == 1));
}

#[test]
fn tls_is_verified_with_the_units_certificate_and_refused_with_another() {
    if !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = free_port();
    let (lan, s) = start(
        dir.path(),
        &["pendant"],
        &format!("tls_listen = \"0.0.0.0:{tls}\"\n"),
        "",
    );
    assert!(wait_port(tls, Duration::from_secs(10)));
    let cert = dir.path().join("data/web/cert.pem");
    let tls = tls.to_string();
    let pub_tls = |ca: &[&str]| {
        let mut a = vec!["-h", "localhost", "-p", &tls, "-u", "pendant", "-P", &s[0]];
        a.extend_from_slice(ca);
        a.extend(["-q", "1", "-t", "carebridge/in/pendant", "-m", PANIC]);
        run("mosquitto_pub", &a)
    };
    let c = cert.to_string_lossy().into_owned();
    let o = pub_tls(&["--cafile", &c]);
    assert!(
        o.status.success(),
        "TLS with the unit's certificate: {}",
        text(&o)
    );
    assert!(eventually(Duration::from_secs(10), || lan
        .stored("pendant")
        == 1));
    // Another unit's certificate as the CA: the client refuses this gateway.
    let other = dir.path().join("other");
    carebridge::web::tls::generate(&other.join("cert.pem"), &other.join("key.pem")).unwrap();
    let oc = other.join("cert.pem").to_string_lossy().into_owned();
    let o = pub_tls(&["--cafile", &oc]);
    assert!(text(&o).contains("TLS error"), "{}", text(&o));
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(lan.stored("pendant"), 1);
    // The fingerprint a device can pin is the certificate's.
    let fp = std::fs::read_to_string(dir.path().join("data/web/cert.sha256")).unwrap();
    assert_eq!(fp.trim().len(), 95);
}

#[test]
fn credentials_pushed_by_cmd_config_let_a_device_in_and_revocation_shuts_it_out() {
    if !have("mosquitto_pub") || !have("mosquitto") {
        return;
    }
    let up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let tail = format!(
        "[uplink.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"cb\"\nkeepalive = \"5s\"\n\
         backoff_min = \"100ms\"\nbackoff_max = \"1s\"\n",
        up.port
    );
    let (lan, _) = start(dir.path(), &[], "failures_before_backoff = 10\n", &tail);
    let secret = "pushed-secret-0123456789abcdef";
    let cmd = |body: serde_json::Value| {
        let o = run(
            "mosquitto_pub",
            &[
                "-p",
                &up.port.to_string(),
                "-q",
                "1",
                "-t",
                "cb/gw-lan/cmd/config",
                "-m",
                &body.to_string(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    };
    let result = |n: usize| {
        eventually(Duration::from_secs(30), || {
            col.snapshot()
                .iter()
                .filter(|m| m.topic == "cb/gw-lan/cmd/config/result" && m.json["ok"] == true)
                .count()
                >= n
        })
    };
    // Wait for the uplink (the gateway subscribes to its commands on connect).
    assert!(eventually(Duration::from_secs(30), || col
        .snapshot()
        .iter()
        .any(|m| m.topic == "cb/gw-lan/status")));
    cmd(serde_json::json!({"device_credentials": {"set": [{"device": "bath", "secret": secret}]}}));
    assert!(result(1), "no result; {:?}", col.snapshot());
    let o = lan.publish(Some(("bath", secret)), "carebridge/in/bath", PANIC);
    assert!(o.status.success(), "{}", text(&o));
    assert!(eventually(Duration::from_secs(10), || lan.stored("bath") == 1));
    cmd(serde_json::json!({"device_credentials": {"revoke": ["bath"]}}));
    assert!(result(2));
    let o = lan.publish(Some(("bath", secret)), "carebridge/in/bath", PANIC);
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(lan.stored("bath"), 1);
    assert_eq!(lan.metric(&refused("unknown_user")), 1);
}

#[test]
fn home_assistant_reads_its_topics_and_nothing_else() {
    if !have("mosquitto_sub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ha_secret = CredentialStore::open(&data)
        .create(Holder::Service("homeassistant".into()), "test", Time(0))
        .unwrap();
    let (lan, s) = start(
        dir.path(),
        &["pendant"],
        "",
        "[homeassistant]\nenabled = true\n",
    );
    // A reading makes the gateway publish its retained discovery document.
    let o = lan.publish(
        Some(("pendant", &s[0])),
        "carebridge/in/pendant",
        r#"{"kind":"temperature","value":20.5}"#,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(eventually(Duration::from_secs(10), || lan
        .stored("pendant")
        == 1));
    let (host, port) = (lan.ip.to_string(), lan.port.to_string());
    let sub = |filter: &str| {
        run(
            "mosquitto_sub",
            &[
                "-h",
                &host,
                "-p",
                &port,
                "-u",
                "homeassistant",
                "-P",
                &ha_secret,
                "-t",
                filter,
                "-C",
                "1",
                "-W",
                "5",
                "-v",
            ],
        )
    };
    let o = sub("homeassistant/#");
    assert!(
        text(&o).starts_with("homeassistant/sensor/"),
        "{}",
        text(&o)
    );
    let o = sub("carebridge/ha/+/pendant/#");
    assert!(
        text(&o).contains("carebridge/ha/gw-lan/pendant/temperature 20.5"),
        "{}",
        text(&o)
    );
    for f in ["#", "carebridge/in/#", "carebridge/cmd/#"] {
        let o = sub(f);
        assert!(text(&o).contains("denied"), "{f}: {}", text(&o));
    }
    assert_eq!(lan.metric(&refused("subscribe")), 3);
    // It may not publish readings.
    let o = lan.publish(
        Some(("homeassistant", &ha_secret)),
        "carebridge/in/pendant",
        PANIC,
    );
    assert!(o.status.success());
    assert_eq!(lan.metric(&refused("publish")), 1);
    assert_eq!(lan.stored("pendant"), 1);
}
