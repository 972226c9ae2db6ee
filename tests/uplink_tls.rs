//! The uplink over TLS to a real Mosquitto that demands a client
//! certificate and a password: the way a care organisation's broker is run.
//! Certificates are made by `openssl` for the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn sh(dir: &Path, cmd: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "{cmd}");
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate.
fn make_pki(dir: &Path) {
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem",
    );
    for (name, san) in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ("client", "subjectAltName=DNS:gw-tls"),
    ] {
        sh(
            dir,
            &format!(
                "openssl req -newkey rsa:2048 -nodes -subj /CN={name} -keyout {name}.key -out {name}.csr"
            ),
        );
        std::fs::write(dir.join(format!("{name}.ext")), san).unwrap();
        sh(
            dir,
            &format!(
                "openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile {name}.ext -out {name}.pem"
            ),
        );
    }
    // A second, unrelated CA the gateway must not trust the server with.
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem",
    );
}

struct TlsBroker {
    plain: u16,
    tls: u16,
    child: std::process::Child,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_broker(dir: &Path) -> TlsBroker {
    let (plain, tls) = (free_port(), free_port());
    sh(dir, "mosquitto_passwd -c -b passwd gw-tls s3cret-pass");
    let conf = format!(
        "per_listener_settings true\nuser root\n\
         listener {plain} 127.0.0.1\nallow_anonymous true\n\
         listener {tls} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwd\n\
         cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n\
         log_dest stderr\nlog_type error\n",
        d = dir.display()
    );
    std::fs::write(dir.join("m.conf"), conf).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("m.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_port(plain, Duration::from_secs(10)) && wait_port(tls, Duration::from_secs(10)));
    TlsBroker { plain, tls, child }
}

fn tls_extra(dir: &Path, port: u16, ca: &str) -> String {
    std::fs::write(dir.join("pw"), "s3cret-pass\n").unwrap();
    format!(
        "[uplink.mqtt]\nurl = \"mqtts://localhost:{port}\"\ntopic_prefix = \"cb\"\nkeepalive = \"5s\"\n\
         backoff_min = \"100ms\"\nbackoff_max = \"1s\"\nca_file = \"{d}/{ca}\"\n\
         cert_file = \"{d}/client.pem\"\nkey_file = \"{d}/client.key\"\n\
         username = \"gw-tls\"\npassword_file = \"{d}/pw\"\n",
        d = dir.display()
    )
}

/// Writes a gateway config with a TLS uplink and starts carebridge.
fn start_gateway(dir: &Path, extra_uplink: &str) -> (Gateway, u16) {
    // Gateway::start writes its own [uplink.mqtt]; build the file by hand here.
    let broker_port = free_port();
    let config = dir.join("carebridge.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-tls\"\ndata_dir = \"{}\"\n[local_broker]\nlisten = \"127.0.0.1:{broker_port}\"\n{extra_uplink}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    (Gateway::from_config(dir, config, broker_port), broker_port)
}

#[test]
fn alerts_flow_over_tls_with_client_certificate_and_password() {
    if !have("mosquitto") || !have("openssl") {
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let broker = start_tls_broker(pki.path());
    let col = Collector::start(broker.plain, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let (_gw, port) = start_gateway(dir.path(), &tls_extra(pki.path(), broker.tls, "ca.pem"));
    assert_eq!(publish(port, &panics("pendant", 1)), 1);
    assert!(
        eventually(Duration::from_secs(30), || col.count("alert") == 1),
        "no alert over TLS: {:?}",
        col.snapshot()
    );
}

#[test]
fn an_untrusted_server_certificate_is_refused_and_nothing_is_lost() {
    if !have("mosquitto") || !have("openssl") {
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let broker = start_tls_broker(pki.path());
    let col = Collector::start(broker.plain, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, port) = start_gateway(dir.path(), &tls_extra(pki.path(), broker.tls, "other.pem"));
    assert_eq!(publish(port, &panics("pendant", 3)), 3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        col.count("alert"),
        0,
        "delivered to a server it must not trust"
    );
    // Fix the trust anchor, restart: the buffered alerts arrive.
    gw.stop();
    let cfg = std::fs::read_to_string(dir.path().join("carebridge.toml")).unwrap();
    std::fs::write(
        dir.path().join("carebridge.toml"),
        cfg.replace("other.pem", "ca.pem"),
    )
    .unwrap();
    gw.restart();
    assert!(
        eventually(Duration::from_secs(30), || col.count("alert") == 3),
        "buffered alerts not delivered after the fix: {}",
        col.count("alert")
    );
}
