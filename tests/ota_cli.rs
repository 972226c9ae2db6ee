//! `carebridge ota …` as the systemd units call it: install from a file,
//! recover (ExecStartPre), check (guard, exit 3 when overdue), commit and
//! status, all against a data dir named in a real config file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::path::Path;

use carebridge::ota::cli::{OtaCmd, Where, run_ota};
use carebridge::ota::install;
use carebridge::ota::recover;
use ota_support::*;

fn config(root: &Path, keys: &Path, extra: &str) -> Where {
    let data = root.join("data");
    let cfg = root.join("carebridge.toml");
    fs::write(
        &cfg,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n\n[ota]\nkeys_dir = \"{}\"\ntrial_period = \"1s\"\ncommit_timeout = \"2s\"\nmax_attempts = 2\n{extra}",
            data.display(),
            keys.display()
        ),
    )
    .unwrap();
    Where {
        config: cfg,
        data_dir: None,
    }
}

#[test]
fn ota_commands_drive_install_trial_guard_and_commit() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let at = config(d.path(), &kr.dir, "");
    let mut inp = input("2.0.0");
    inp.arch = std::env::consts::ARCH.into();
    let file = d.path().join("v2.cbb");
    fs::write(
        &file,
        bundle_with(kr.signer(), &inp, &healthy_script("2.0.0")),
    )
    .unwrap();

    run_ota(OtaCmd::Install {
        bundle: file.clone(),
        allow_rolled_back: false,
        trust_clock: false,
        at: at.clone(),
    })
    .unwrap();
    assert_eq!(install::current_version(&paths).as_deref(), Some("2.0.0"));
    // Installing again while on trial is refused as invalid input.
    let e = run_ota(OtaCmd::Install {
        bundle: file.clone(),
        allow_rolled_back: false,
        trust_clock: false,
        at: at.clone(),
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");

    run_ota(OtaCmd::Recover { at: at.clone() }).unwrap();
    let st = recover::status(&paths).unwrap();
    assert_eq!(st.trial.as_ref().unwrap().attempts, 1);
    run_ota(OtaCmd::Check { at: at.clone() }).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let e = run_ota(OtaCmd::Check { at: at.clone() }).unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.message.contains("overdue"), "{e}");

    run_ota(OtaCmd::Commit { at: at.clone() }).unwrap();
    run_ota(OtaCmd::Status { at: at.clone() }).unwrap();
    let st = recover::status(&paths).unwrap();
    assert!(st.trial.is_none());
    assert_eq!(st.current.as_deref(), Some("2.0.0"));
    assert_eq!(st.releases, ["1.0.0", "2.0.0"]);
}

#[test]
fn ota_recover_rolls_back_after_max_attempts_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let at = config(d.path(), &kr.dir, "");
    let mut inp = input("2.0.0");
    inp.arch = std::env::consts::ARCH.into();
    let file = d.path().join("v2.cbb");
    fs::write(&file, bundle_with(kr.signer(), &inp, CRASH_SCRIPT)).unwrap();
    run_ota(OtaCmd::Install {
        bundle: file,
        allow_rolled_back: false,
        trust_clock: false,
        at: at.clone(),
    })
    .unwrap();
    for _ in 0..3 {
        run_ota(OtaCmd::Recover { at: at.clone() }).unwrap();
    }
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
    assert_eq!(db_rows(&paths), ["v1-data"]);
}

#[test]
fn a_bad_config_is_invalid_input() {
    let d = tempfile::tempdir().unwrap();
    let at = config(d.path(), Path::new("relative/keys"), "");
    let e = run_ota(OtaCmd::Status { at }).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("ota.keys_dir"), "{e}");
}

#[test]
fn recovery_still_works_with_a_config_from_a_newer_release() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let at = config(
        d.path(),
        &kr.dir,
        "\n[feature_from_the_future]\nenabled = true\n",
    );
    run_ota(OtaCmd::Recover { at: at.clone() }).unwrap();
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
}
