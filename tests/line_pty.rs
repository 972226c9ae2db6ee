//! Serial sensor boards through a real pseudo-terminal: readings arrive,
//! a bad line is counted and reported with its text while the port keeps
//! working, and the port is reopened after it vanishes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use carebridge::config::Dur;
use carebridge::ingest::line::{self, SerialBoardConfig};
use carebridge::model::{Ingest, Kind};
use serialport::{SerialPort, TTYPort};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn pty(link: &Path) -> (TTYPort, TTYPort) {
    let (m, s) = TTYPort::pair().unwrap();
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(s.name().unwrap(), link).unwrap();
    (m, s)
}

async fn until<T>(rx: &mut mpsc::Receiver<Ingest>, mut f: impl FnMut(&Ingest) -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(i)) => {
                if let Some(t) = f(&i) {
                    return t;
                }
            }
            other => panic!("nothing matching: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_lines_reports_bad_ones_and_reopens_a_vanished_port() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("board");
    let (mut master, slave) = pty(&link);
    let cfg = SerialBoardConfig {
        name: "hall-board".into(),
        port: link.to_str().unwrap().into(),
        reopen_interval: Dur(Duration::from_millis(50)),
        ..SerialBoardConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(64);
    let token = CancellationToken::new();
    let task = tokio::spawn(line::run(cfg, tx, token.clone()));
    until(&mut rx, |i| {
        matches!(i, Ingest::Link(l) if l.up && l.link == "serial:hall-board").then_some(())
    })
    .await;

    master
        .write_all(b"# hello\r\nhall-pir motion on\r\nkitchen-t temperature 21.5 1763805600000\n")
        .unwrap();
    master
        .write_all(b"kitchen-t temperature warm\nbed-mat bed 1*")
        .unwrap();
    let sum = b"bed-mat bed 1".iter().fold(0u8, |a, b| a ^ b);
    master.write_all(format!("{sum:02X}\n").as_bytes()).unwrap();
    let mut kinds = Vec::new();
    let mut bad = None;
    while kinds.len() < 3 || bad.is_none() {
        match rx.recv().await.unwrap() {
            Ingest::Reading(r) => kinds.push((r.kind, r.value)),
            Ingest::Link(l) if l.detail.contains("bad line") => bad = Some(l.detail),
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        vec![
            (Kind::Motion, 1.0),
            (Kind::Temperature, 21.5),
            (Kind::Bed, 1.0)
        ]
    );
    let bad = bad.unwrap();
    assert!(
        bad.contains("kitchen-t temperature warm") && bad.contains("`value`"),
        "{bad}"
    );

    // The board is unplugged, then plugged back in (new pty, same path).
    drop(master);
    drop(slave);
    let _ = std::fs::remove_file(&link);
    until(&mut rx, |i| {
        matches!(i, Ingest::Link(l) if !l.up).then_some(())
    })
    .await;
    let (mut master, _slave) = pty(&link);
    until(&mut rx, |i| {
        matches!(i, Ingest::Link(l) if l.up).then_some(())
    })
    .await;
    master.write_all(b"front-door contact open\n").unwrap();
    let r = until(&mut rx, |i| match i {
        Ingest::Reading(r) => Some(r.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (r.device.as_str(), r.kind, r.value),
        ("front-door", Kind::Contact, 1.0)
    );
    token.cancel();
    task.await.unwrap().unwrap();
    let _ = master.name();
}
