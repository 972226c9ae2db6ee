//! Failure paths for real: a writer killed with SIGKILL mid-write, a
//! genuinely full file system (a 2 MiB tmpfs), damaged database files.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::tests::{alert, db, reading};
use super::*;
use crate::model::Kind;

const CHILD_ENV: &str = "CAREBRIDGE_STORE_CRASH_CHILD";

/// Not a test on its own: when the parent test below runs this binary with
/// `CHILD_ENV` set, it writes alerts and telemetry forever, printing how many
/// are committed, until it is killed.
#[test]
fn crash_child_writer_loop() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = Store::open(Path::new(&path), &StoreConfig::default()).unwrap();
    let mut i: i64 = 0;
    loop {
        for _ in 0..50 {
            s.submit_blocking(Write::Alert(Box::new(alert(&format!("r{i}"), i))))
                .unwrap();
            s.submit_blocking(Write::Reading(reading("t", Kind::Temperature, i as f64, i)))
                .unwrap();
            i += 1;
        }
        s.flush_blocking().unwrap();
        println!("committed {i}");
    }
}

pub(super) fn contiguous_from_one(rows: &[OutboxRow]) -> bool {
    rows.iter().enumerate().all(|(k, r)| r.seq == k as u64 + 1)
}

#[tokio::test]
async fn committed_alerts_survive_a_sigkill_mid_write_with_contiguous_seqs() {
    // tests/cross.sh runs the unit tests under qemu-user, where this test's
    // re-exec of itself as the child writer is not emulated (no binfmt or
    // sysroot for the child). It runs natively in `cargo test`.
    if std::env::var_os("CAREBRIDGE_QEMU_USER").is_some() {
        eprintln!("skipped under qemu-user: needs to spawn itself as a child process");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "store::crash_test::crash_child_writer_loop",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("committed ") {
                let _ = tx.send(n.parse::<u64>().unwrap_or(0));
            }
        }
    });
    let mut acknowledged = 0;
    while acknowledged < 3_000 {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(n) => acknowledged = n,
            Err(e) => {
                let _ = child.kill();
                panic!("child writer stalled: {e}");
            }
        }
    }
    // SIGKILL while the child keeps writing.
    child.kill().unwrap();
    child.wait().unwrap();

    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.integrity_check().await.unwrap();
    let alerts = s.outbox_fetch(Class::Alert, 0, usize::MAX).await.unwrap();
    let tele = s
        .outbox_fetch(Class::Telemetry, 0, usize::MAX)
        .await
        .unwrap();
    assert!(
        alerts.len() as u64 >= acknowledged,
        "{} < {acknowledged}",
        alerts.len()
    );
    assert!(contiguous_from_one(&alerts), "alert seqs have a gap");
    assert!(contiguous_from_one(&tele), "telemetry seqs have a gap");
    for r in &alerts {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(
            v["rule"],
            format!("r{}", r.seq - 1),
            "alert content matches its seq"
        );
    }
    // Writing continues from where the dead process stopped.
    s.submit(Write::Alert(Box::new(alert("after", 0))))
        .await
        .unwrap();
    s.flush().await.unwrap();
    let next = s
        .outbox_fetch(Class::Alert, alerts.len() as u64, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, alerts.len() as u64 + 1);
    s.close().await.unwrap();
}

/// A tmpfs mounted for one test, unmounted on drop.
pub(super) struct Tmpfs(PathBuf);

impl Tmpfs {
    pub(super) fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

/// Mounts a tmpfs of `size` on a fresh directory, or says why the test skips.
///
/// Not under qemu-user (`CAREBRIDGE_QEMU_USER`, set by `tests/cross.sh`):
/// `mount` and `umount` are run as child processes, and a child forked
/// from a many-threaded guest there can deadlock inside qemu before it
/// execs (seen once: the test waited on it for 17 minutes). What these tests
/// check does not depend on the target; they run natively in `cargo test`.
pub(super) fn tmpfs(size: &str) -> Option<(tempfile::TempDir, Tmpfs)> {
    if std::env::var_os("CAREBRIDGE_QEMU_USER").is_some() {
        eprintln!("skipped under qemu-user: forking mount/umount can hang there");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    match Tmpfs::mount(dir.path(), size) {
        Ok(m) => Some((dir, m)),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but a tmpfs cannot be mounted: {why}")
        }
        Err(why) => {
            eprintln!("skipped: mounting a tmpfs needs root ({why})");
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_keeps_every_alert_by_evicting_telemetry_and_reports_the_error() {
    let Some((dir, _fs)) = tmpfs("2m") else {
        return;
    };
    let path = dir.path().join("full.db");
    let cfg = StoreConfig {
        batch_max: 256,
        disk_reserve_kb: 512,
        ..Default::default()
    };
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let s = Store::open(&path, &cfg).unwrap();
    // Fill the disk with telemetry until the writer has had to free space.
    for i in 0..400_000i64 {
        s.submit_blocking(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .unwrap();
        if i % 500 == 0 && s.stats().telemetry.evicted > 0 {
            break;
        }
    }
    let st = s.stats();
    assert!(st.telemetry.evicted > 0, "the disk never filled up: {st:?}");
    // Now alerts: every one must commit, despite the full disk.
    for i in 0..200 {
        s.submit_blocking(Write::Alert(Box::new(alert(&format!("r{i}"), i))))
            .unwrap();
        s.submit_blocking(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let _ = tx.send(s2.flush_blocking());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("flush never completed on a full disk")
        .unwrap();
    let st = s.stats();
    eprintln!(
        "full disk: failed_commits={} telemetry_evicted={} history_evicted={} commits={}",
        st.failed_commits, st.telemetry.evicted, st.history_evicted, st.commits
    );
    assert!(st.failed_commits > 0, "the disk-full state was reported");
    assert_eq!(st.error, None, "and cleared once commits succeed again");
    // Every alert, plus the gateway's own `disk-full` warning(s).
    let alerts = s
        .outbox_fetch_blocking(Class::Alert, 0, usize::MAX)
        .unwrap();
    let disk_full = alerts
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.payload).contains("\"rule\":\"disk-full\""))
        .count();
    assert!(disk_full >= 1, "the disk-full warning was raised");
    assert_eq!(st.alert.rows, 200 + disk_full as u64);
    assert_eq!(alerts.len() - disk_full, 200);
    assert_eq!(st.alert.evicted, 0);
    assert!(contiguous_from_one(&alerts));
    drop(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = Store::open(&path, &cfg).unwrap();
        s.integrity_check().await.unwrap();
        assert_eq!(s.stats().alert.rows, 200 + disk_full as u64);
        s.close().await.unwrap();
    });
}

fn corrupt_and_expect_corrupt(path: &Path) {
    let r = Store::open(path, &StoreConfig::default());
    match r {
        Err(StoreError::Corrupt { detail }) => {
            assert!(detail.contains("carebridge.db"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_file_is_reported_corrupt_and_quarantine_makes_room_for_a_fresh_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    corrupt_and_expect_corrupt(&path);
    // (SQLite removes a junk -wal itself when the open fails; put one back to
    // check that quarantine carries the companions along.)
    std::fs::write(path.with_file_name("carebridge.db-wal"), b"junk").unwrap();
    let moved = Store::quarantine(&path).unwrap();
    assert!(moved.to_string_lossy().contains("carebridge.db.corrupt-"));
    assert!(moved.exists());
    let mut wal = moved.clone().into_os_string();
    wal.push("-wal");
    assert!(Path::new(&wal).exists(), "the -wal goes along");
    assert!(!path.exists());
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    s.integrity_check().await.unwrap();
    s.close().await.unwrap();
}

#[tokio::test]
async fn damaged_btree_pages_are_found_by_the_startup_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let s = Store::open(&path, &StoreConfig::default()).unwrap();
    for i in 0..3000 {
        s.submit(Write::Reading(reading("t", Kind::Temperature, 20.0, i)))
            .await
            .unwrap();
    }
    s.close().await.unwrap();
    // Checkpoint everything into the main file, then scribble over page 3..
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .unwrap();
    drop(c);
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(bytes.len() > 8 * page);
    for b in &mut bytes[2 * page + 8..6 * page] {
        *b = 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
    corrupt_and_expect_corrupt(&path);
    Store::quarantine(&path).unwrap();
    Store::open(&path, &StoreConfig::default())
        .unwrap()
        .close()
        .await
        .unwrap();
}
