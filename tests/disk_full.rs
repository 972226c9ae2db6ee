//! A full disk and SIGTERM at daemon level (issue 22): carebridge with its
//! data dir on a small tmpfs, the cloud broker (Mosquitto) away, a QoS 0
//! stream of readings into the embedded broker until the disk is full; then
//! the cloud returns and a panic is pressed. The panic must be upstream
//! within 10 s, the daemon responsive (`/healthz`, a heartbeat that says the
//! disk is full), SIGTERM must end it with exit 0 within 2 s, and the next
//! start must lose nothing that was committed. Needs root (mount) and
//! Mosquitto; skips without them outside CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rumqttc::{Client, MqttOptions, QoS};

/// A tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if out.status.success() {
            return Some(Tmpfs(dir.to_path_buf()));
        }
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if strict() {
            panic!("CI=true but a tmpfs cannot be mounted: {why}");
        }
        eprintln!("SKIP: mounting a tmpfs needs root ({why})");
        None
    }

    /// Percent of the file system in use.
    fn used_pct(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        let total = st.blocks() as u64;
        let free = st.blocks_available() as u64;
        (total - free) * 100 / total.max(1)
    }

    /// Takes the file system to `pct` % with a filler file (logs, say).
    fn fill_to(&self, pct: u64) {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        let frag = st.fragment_size() as u64;
        let total = st.blocks() as u64 * frag;
        let free = st.blocks_available() as u64 * frag;
        let want_free = total * (100 - pct) / 100;
        let n = free.saturating_sub(want_free);
        let mut f = std::fs::File::create(self.0.join("other-logs")).unwrap();
        let chunk = vec![b'x'; 4096];
        let mut left = n;
        while left > 0 && f.write_all(&chunk[..left.min(4096) as usize]).is_ok() {
            left = left.saturating_sub(4096);
        }
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Readings per second of the stream: a busy care site's worst burst, well
/// above what the writer needs on a healthy disk. (An unthrottled QoS 0
/// flood outruns the embedded broker itself, which then skips messages
/// for every subscriber: that is the device-ingest listener's concern.)
const STREAM_RATE: u64 = 3000;

/// A device streaming temperatures at QoS 0 until stopped.
struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Stream {
    fn start(port: u16) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut opts = MqttOptions::new(format!("stream-{}", free_port()), "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(5));
            let (client, mut conn) = Client::new(opts, 1024);
            let pump = std::thread::spawn(move || {
                for ev in conn.iter() {
                    match ev {
                        Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => {
                            break;
                        }
                        Ok(_) => {}
                    }
                }
            });
            let mut n = 0u64;
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let due = started.elapsed().as_millis() as u64 * STREAM_RATE / 1000;
                if n >= due {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let body = format!("{{\"kind\":\"temperature\",\"value\":{}}}", n % 40);
                if client
                    .publish("carebridge/in/stream-t", QoS::AtMostOnce, false, body)
                    .is_err()
                {
                    break;
                }
                n += 1;
            }
            let _ = client.disconnect();
            let _ = pump.join();
            n
        });
        Stream {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET path` over plain HTTP; the status line.
fn http_status(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return "connect failed".into();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The config tail: a fast heartbeat, the web UI on plain HTTP.
fn extra(web: u16) -> String {
    format!("heartbeat = \"1s\"\n\n[web]\nlisten = \"127.0.0.1:{web}\"\ntls = false\n")
}

/// Alert ids committed in the database (waiting or already delivered).
fn committed_alert_ids(db: &Path) -> HashSet<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "integrity_check after the stop");
    let mut ids = HashSet::new();
    for sql in [
        "SELECT id FROM outbox WHERE class = 0",
        "SELECT id FROM deliveries",
    ] {
        let mut q = c.prepare(sql).unwrap();
        for id in q.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            ids.insert(id.unwrap());
        }
    }
    ids
}

fn upstream_alert_ids(col: &Collector) -> HashSet<String> {
    col.unique("alert")
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect()
}

/// Streams until the store stops growing the disk (its page budget) or the
/// disk is 96 % full, then tops the disk up to 97 % as other files would.
fn fill_disk(fs: &Tmpfs, stream_port: u16) -> Stream {
    let stream = Stream::start(stream_port);
    let started = Instant::now();
    let mut last = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(40) {
        let pct = fs.used_pct();
        if pct >= 96 {
            break;
        }
        if pct > last.0 {
            last = (pct, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) && pct >= 80 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    fs.fill_to(97);
    eprintln!(
        "disk {} % full after {:.1} s of streaming",
        fs.used_pct(),
        started.elapsed().as_secs_f64()
    );
    stream
}

/// The cloud returns, a panic is pressed: it must be upstream within 10 s.
fn panic_reaches_the_cloud(up: &mut Mosquitto, col: &Collector, gw: &Gateway, web: u16) {
    up.restart();
    let back = Instant::now();
    assert_eq!(publish(gw.broker_port, &panics("pendant", 1)), 1);
    let arrived = eventually(Duration::from_secs(10), || {
        col.unique("alert")
            .iter()
            .any(|a| a["device"] == "pendant" && a["rule"] == "panic")
    });
    assert!(
        arrived,
        "the panic did not reach the cloud within 10 s of its return; {}",
        gw.diagnose()
    );
    eprintln!(
        "panic upstream {:.2} s after the cloud returned",
        back.elapsed().as_secs_f64()
    );
    assert!(
        http_status(web, "/healthz").contains("200"),
        "/healthz answers"
    );
    let says_full = eventually(Duration::from_secs(10), || {
        col.snapshot().iter().any(|m| {
            m.topic.ends_with("/status") && m.json.get("disk_full").is_some_and(|d| d.is_object())
        })
    });
    assert!(says_full, "the status heartbeat says the disk is full");
    let warned = eventually(Duration::from_secs(10), || {
        col.unique("alert").iter().any(|a| {
            a["rule"] == "disk-full" && a["severity"] == "warning" && a["state"] == "raised"
        })
    });
    assert!(warned, "a disk-full warning went upstream");
    let w = col
        .unique("alert")
        .into_iter()
        .find(|a| a["rule"] == "disk-full")
        .unwrap();
    eprintln!("disk-full warning: {}", w["message"]);
}

/// SIGTERM: exit 0 within 2 s; then what was committed is all there.
fn stops_in_2_s_and_keeps_what_was_committed(gw: &mut Gateway) -> HashSet<String> {
    let (code, took) = gw
        .stop_within(Duration::from_secs(10))
        .expect("carebridge did not exit within 10 s of SIGTERM");
    eprintln!("SIGTERM to exit: {} ms", took.as_millis());
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    committed_alert_ids(&gw.db())
}

fn restart_delivers(gw: &mut Gateway, col: &Collector, committed: &HashSet<String>) {
    gw.restart();
    let all = eventually(Duration::from_secs(30), || {
        committed.is_subset(&upstream_alert_ids(col))
    });
    assert!(
        all,
        "alerts committed before the stop were lost: {} committed, missing {:?}",
        committed.len(),
        committed
            .difference(&upstream_alert_ids(col))
            .collect::<Vec<_>>()
    );
    let _ = gw.stop_within(Duration::from_secs(10));
}

#[test]
fn on_a_full_8_mib_disk_a_panic_reaches_the_cloud_within_10_s_and_sigterm_stops_in_2_s() {
    if !have("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("data"), "8m") else {
        return;
    };
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    up.stop(); // the cloud is away
    let web = free_port();
    let mut gw = Gateway::start(dir.path(), "gw-full", up.port, &extra(web));
    fill_disk(&fs, gw.broker_port).stop();
    panic_reaches_the_cloud(&mut up, &col, &gw, web);
    // SIGTERM while a stream keeps the full disk busy.
    let stream = Stream::start(gw.broker_port);
    std::thread::sleep(Duration::from_millis(1000));
    let committed = stops_in_2_s_and_keeps_what_was_committed(&mut gw);
    stream.stop();
    assert!(!committed.is_empty());
    restart_delivers(&mut gw, &col, &committed);
}

/// The second case: the WAL itself fills the disk. A reader holding a read
/// transaction open (a backup, a diagnostics query) stops every checkpoint,
/// so the WAL grows until the file system is full (and other files take
/// the rest): no checkpoint can run, every relief step must fit in what the
/// reserve and evicted pages give back, alerts are held in memory when
/// even that is gone.
#[test]
fn with_a_full_wal_a_panic_still_reaches_the_cloud_and_is_written_once_the_wal_can_move() {
    if !have("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("data"), "8m") else {
        return;
    };
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    up.stop();
    let web = free_port();
    let mut gw = Gateway::start(dir.path(), "gw-wal", up.port, &extra(web));
    // Pin the WAL: a read transaction that stays open.
    let pin =
        rusqlite::Connection::open_with_flags(gw.db(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    pin.execute_batch("BEGIN").unwrap();
    let _: i64 = pin
        .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    // Stream until the disk is nearly full, then the rest of it goes to
    // other files while the stream goes on, until commits fail.
    let stream = Stream::start(gw.broker_port);
    assert!(eventually(Duration::from_secs(20), || fs.used_pct() >= 90));
    fs.fill_to(100);
    let failing = eventually(Duration::from_secs(20), || failed_commits(web) > 0);
    stream.stop();
    assert!(failing, "commits never failed; {}", gw.diagnose());
    let wal = std::fs::metadata(dir.path().join("data/carebridge.db-wal")).map_or(0, |m| m.len());
    eprintln!("WAL {} KiB with the disk full", wal / 1024);
    assert!(wal > 1 << 20, "the WAL grew past its limit: {wal}");
    panic_reaches_the_cloud(&mut up, &col, &gw, web);
    let sent: HashSet<String> = col
        .unique("alert")
        .iter()
        .filter(|a| a["device"] == "pendant")
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    // Whether it travelled from memory depends on how much the reserve and
    // the history gave back first (store::disk_full_test pins that path).
    eprintln!(
        "panic written when it went upstream: {}",
        !sent.is_disjoint(&committed_alert_ids_quiet(&gw.db()))
    );
    // The reader lets go: the held panic is written (and so never lost).
    pin.execute_batch("COMMIT").unwrap();
    drop(pin);
    let written = eventually(Duration::from_secs(20), || {
        committed_alert_ids_quiet(&gw.db()).len() >= 2
    });
    assert!(
        written,
        "held alerts written once the WAL can move; {}",
        gw.diagnose()
    );
    let committed = stops_in_2_s_and_keeps_what_was_committed(&mut gw);
    let panic_ids: HashSet<String> = col
        .unique("alert")
        .iter()
        .filter(|a| a["device"] == "pendant")
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    assert!(
        panic_ids.is_subset(&committed),
        "the panic sent from memory was written under the same id"
    );
    restart_delivers(&mut gw, &col, &committed);
}

/// `carebridge_store_failed_commits_total` from `/metrics` (free on loopback).
fn failed_commits(web: u16) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", web)) else {
        return 0;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.lines()
        .find_map(|l| l.strip_prefix("carebridge_store_failed_commits_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn committed_alert_ids_quiet(db: &Path) -> HashSet<String> {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return HashSet::new();
    };
    let mut ids = HashSet::new();
    for sql in [
        "SELECT id FROM outbox WHERE class = 0",
        "SELECT id FROM deliveries",
    ] {
        if let Ok(mut q) = c.prepare(sql)
            && let Ok(rows) = q.query_map([], |r| r.get::<_, String>(0))
        {
            ids.extend(rows.filter_map(Result::ok));
        }
    }
    ids
}

/// SIGTERM in the middle of a burst (cloud up) and during an outage (cloud
/// away, a backlog growing): exit 0 within 2 s, nothing committed is lost.
#[test]
fn sigterm_during_a_burst_and_during_an_outage_exits_0_within_2_s_and_loses_nothing_committed() {
    if !have("mosquitto") {
        return;
    }
    let mut up = Mosquitto::start();
    let col = Collector::start(up.port, "cb/#");
    let dir = tempfile::tempdir().unwrap();
    let web = free_port();
    let mut gw = Gateway::start(dir.path(), "gw-term", up.port, &extra(web));
    for (case, cloud_up) in [("burst", true), ("outage", false)] {
        if !cloud_up {
            up.stop();
        }
        let stream = Stream::start(gw.broker_port);
        let port = gw.broker_port;
        let presses = std::thread::spawn(move || publish(port, &panics(&format!("p-{case}"), 40)));
        std::thread::sleep(Duration::from_millis(700));
        let committed = stops_in_2_s_and_keeps_what_was_committed(&mut gw);
        let sent = stream.stop();
        let _ = presses.join();
        eprintln!(
            "{case}: {sent} readings streamed, {} alerts committed",
            committed.len()
        );
        if !cloud_up {
            up.restart();
        }
        restart_delivers(&mut gw, &col, &committed);
        gw.restart();
    }
}
