//! Power-cut safety: the install runs in a child process (this test binary,
//! re-executed) that kills itself with SIGKILL right after install step k,
//! for every k, and also in the middle of streaming the payload. After each
//! kill, `current` must point at a complete, runnable release and recovery
//! must do the right thing for that step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use carebridge::model::Time;
use carebridge::ota::OtaPaths;
use carebridge::ota::install::{self, InstallOptions, InstallStep, STEPS};
use carebridge::ota::keys::TrustStore;
use carebridge::ota::recover::{self, Recovery};
use ota_support::*;

const ENV_DATA: &str = "CAREBRIDGE_OTA_CRASH_DATA";
const ENV_STEP: &str = "CAREBRIDGE_OTA_CRASH_STEP";
const ENV_BYTE: &str = "CAREBRIDGE_OTA_CRASH_BYTE";
const ENV_BUNDLE: &str = "CAREBRIDGE_OTA_CRASH_BUNDLE";
const ENV_KEYS: &str = "CAREBRIDGE_OTA_CRASH_KEYS";

fn kill_me() -> ! {
    // A real SIGKILL, like a power cut for this process: no destructors,
    // no buffered writes flushed by us.
    let _ = Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Kills the process after `limit` payload bytes have been read.
struct DieAfter<R> {
    inner: R,
    left: usize,
}

impl<R: Read> Read for DieAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            kill_me();
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        self.left -= got;
        Ok(got)
    }
}

/// The child side: does nothing unless started by `kill_at`.
#[test]
fn crash_child() {
    let Ok(data) = std::env::var(ENV_DATA) else {
        return;
    };
    let paths = OtaPaths::under(Path::new(&data));
    let keys = TrustStore::load(Path::new(&std::env::var(ENV_KEYS).unwrap())).unwrap();
    let bytes = fs::read(std::env::var(ENV_BUNDLE).unwrap()).unwrap();
    let step: Option<usize> = std::env::var(ENV_STEP).ok().and_then(|s| s.parse().ok());
    let byte: Option<usize> = std::env::var(ENV_BYTE).ok().and_then(|s| s.parse().ok());
    let hook = move |s: InstallStep| {
        if Some(STEPS.iter().position(|x| *x == s).unwrap()) == step {
            kill_me();
        }
    };
    let opts = InstallOptions {
        on_step: Some(&hook),
        ..opts()
    };
    let mut reader = DieAfter {
        inner: &bytes[..],
        left: byte.unwrap_or(usize::MAX),
    };
    install::install_bundle_from_reader(&mut reader, &paths, &keys, &opts).unwrap();
}

fn kill_at(paths: &OtaPaths, keys: &Path, bundle: &Path, step: Option<usize>, byte: Option<usize>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_DATA, paths.current.parent().unwrap())
        .env(ENV_KEYS, keys)
        .env(ENV_BUNDLE, bundle);
    if let Some(s) = step {
        cmd.env(ENV_STEP, s.to_string());
    }
    if let Some(b) = byte {
        cmd.env(ENV_BYTE, b.to_string());
    }
    let status = cmd.output().unwrap().status;
    assert_eq!(status.signal(), Some(9), "child was not killed: {status:?}");
}

/// `current` names a complete release whose binary runs: it is started
/// and must announce its version (the healthy v1 script then loops; it is
/// killed once it has spoken).
fn assert_runnable(paths: &OtaPaths) -> String {
    let v = install::current_version(paths).expect("current names a complete release");
    let bin = paths.current.join("bin/carebridge");
    assert!(fs::metadata(&bin).unwrap().permissions().mode() & 0o111 != 0);
    let out = paths.current.parent().unwrap().join("run.out");
    let _ = fs::remove_file(&out);
    let mut child = Command::new(&bin)
        .env("CB_OUT", &out)
        .env("CB_HEALTH", "/dev/null")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let said = loop {
        let said = fs::read_to_string(&out).unwrap_or_default();
        if !said.is_empty() || std::time::Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(said.trim(), format!("serving {v}"));
    v
}

fn setup(root: &Path) -> (Keyring, OtaPaths, PathBuf) {
    let kr = Keyring::new(root, &["ops"]);
    let paths = with_v1(root, &kr);
    let b = bundle(kr.signer(), "2.0.0", ONE_SHOT_V2);
    let file = root.join("v2.cbb");
    fs::write(&file, b).unwrap();
    (kr, paths, file)
}

/// A release binary that prints its version and exits (so "runnable" is checked by running it).
const ONE_SHOT_V2: &str = "#!/bin/sh\necho serving 2.0.0 >> \"$CB_OUT\"\necho serving 2.0.0\n";

fn run_current(paths: &OtaPaths) -> String {
    let out = Command::new(paths.current.join("bin/carebridge"))
        .env("CB_OUT", "/dev/null")
        .env("CB_HEALTH", "/dev/null")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kill_after_every_install_step_leaves_a_runnable_release_and_recovery_decides_right() {
    for (k, step) in STEPS.iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        let (kr, paths, file) = setup(d.path());
        kill_at(&paths, &kr.dir, &file, Some(k), None);
        let v = assert_runnable(&paths);
        let r = recover::recover(&paths, &policy(), None, Time::from_secs(100)).unwrap();
        match step {
            InstallStep::HeaderVerified
            | InstallStep::PayloadUnpacked
            | InstallStep::ReleasePlaced
            | InstallStep::DatabaseBackedUp => {
                assert_eq!(v, "1.0.0", "{step:?}");
                assert_eq!(
                    r,
                    Recovery::Normal {
                        current: "1.0.0".into()
                    },
                    "{step:?}"
                );
            }
            InstallStep::TrialRecorded => {
                assert_eq!(v, "1.0.0");
                assert_eq!(
                    r,
                    Recovery::Interrupted {
                        version: "2.0.0".into(),
                        current: "1.0.0".into()
                    }
                );
            }
            InstallStep::Switched => {
                assert_eq!(v, "2.0.0");
                assert_eq!(
                    r,
                    Recovery::Trial {
                        version: "2.0.0".into(),
                        attempt: 1
                    }
                );
                assert_eq!(run_current(&paths).trim(), "serving 2.0.0");
            }
        }
        assert_eq!(db_rows(&paths), ["v1-data"], "{step:?}");
        if v == "1.0.0" {
            // The interrupted install can simply be retried.
            let b = fs::read(&file).unwrap();
            install_bytes(&paths, &kr.store(), &b);
            let r = recover::recover(&paths, &policy(), None, Time::from_secs(200)).unwrap();
            assert!(
                matches!(r, Recovery::Trial { attempt: 1, .. }),
                "{step:?}: {r:?}"
            );
            let leftovers: Vec<_> = fs::read_dir(&paths.releases)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect();
            assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
        }
    }
}

#[test]
fn kill_in_the_middle_of_the_payload_leaves_the_old_release_running() {
    let d = tempfile::tempdir().unwrap();
    let (_kr, paths, file) = setup(d.path());
    let len = fs::metadata(&file).unwrap().len() as usize;
    for cut in [len / 2, len - 5] {
        kill_at(&paths, &d.path().join("keys"), &file, None, Some(cut));
        assert_eq!(assert_runnable(&paths), "1.0.0");
        assert!(
            !paths.release("2.0.0").exists(),
            "partial release must stay in staging"
        );
        let r = recover::recover(&paths, &policy(), None, Time::from_secs(100)).unwrap();
        assert_eq!(
            r,
            Recovery::Normal {
                current: "1.0.0".into()
            }
        );
    }
}

#[test]
fn kill_during_rollback_is_finished_by_the_next_recovery() {
    let d = tempfile::tempdir().unwrap();
    let (kr, paths, file) = setup(d.path());
    install_bytes(&paths, &kr.store(), &fs::read(&file).unwrap());
    for i in 0..3 {
        recover::recover(&paths, &policy(), None, Time::from_secs(i)).unwrap();
    }
    // Simulate a power cut half-way through a rollback: the database is
    // restored and the link switched, but the state still says "trial".
    let st = recover::load_state(&paths.state).unwrap();
    let backup = st.trial.as_ref().unwrap().db_backup.clone().unwrap();
    install::restore_database(&backup, &paths.db).unwrap();
    install::switch_to(&paths, "1.0.0").unwrap();
    let r = recover::recover(&paths, &policy(), None, Time::from_secs(10)).unwrap();
    assert!(matches!(r, Recovery::RolledBack { .. }), "{r:?}");
    assert_eq!(assert_runnable(&paths), "1.0.0");
    assert_eq!(
        recover::recover(&paths, &policy(), None, Time::from_secs(11)).unwrap(),
        Recovery::Normal {
            current: "1.0.0".into()
        }
    );
}
