//! Process and port helpers shared by the whole-system bench binaries
//! (`spine`, `latency`, `e2e`).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether `bin arg` runs (the tool is installed).
pub fn have(bin: &str, arg: &str) -> bool {
    Command::new(bin)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether bench `name` should run: Mosquitto is installed (else says so)
/// and `--bench` was given (`cargo test --benches` runs without it: keep
/// that quick).
pub fn should_run(name: &str) -> bool {
    if !have("mosquitto", "-h") {
        eprintln!(
            "{name} bench: mosquitto is not installed (apt-get install mosquitto, or run bash tests/all.sh first); skipped"
        );
        return false;
    }
    std::env::args().any(|a| a == "--bench")
}

/// A Mosquitto on a free loopback port (no queue limit, no log), killed on drop.
pub fn mosquitto(dir: &Path) -> (Kill, u16) {
    let port = free_port();
    let conf = dir.join("m.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\nmax_queued_messages 0\nlog_dest none\n"
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    (Kill(child), port)
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for something to listen on `port`.
pub fn wait_port(port: u16) {
    for _ in 0..1000 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("port {port} never opened");
}

/// A child process killed (and reaped) when dropped.
pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
