//! A crashing release installed before the service ever ran (no previous
//! release): the test plays systemd with the real commands — `ota recover`
//! before each start, then the release's `bin/carebridge`, which crashes —
//! and after `max_attempts` failed starts recovery falls back to the
//! packaged (factory) binary. The rolled-back version is then refused by a
//! plain `ota install` and installs only with `--allow-rolled-back`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use carebridge::ota::{OtaPaths, install, recover};
use ota_support::*;

fn config(root: &Path, keys: &Path) -> PathBuf {
    let p = root.join("carebridge.toml");
    fs::write(
        &p,
        format!(
            "[gateway]\nid = \"gw-first\"\ndata_dir = \"{}\"\n\n[ota]\nkeys_dir = \"{}\"\n",
            root.join("data").display(),
            keys.display()
        ),
    )
    .unwrap();
    p
}

fn ota(args: &[&str], cfg: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .arg("ota")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_crashing_first_install_rolls_back_to_the_packaged_release() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let cfg = config(d.path(), &kr.dir);
    let paths = OtaPaths::under(&d.path().join("data"));
    let mut inp = input("99.0.0");
    inp.arch = std::env::consts::ARCH.into();
    let file = d.path().join("crash.cbb");
    fs::write(&file, bundle_with(kr.signer(), &inp, CRASH_SCRIPT)).unwrap();

    // `ota install` before the service ever ran: no `current` yet.
    assert!(install::current_version(&paths).is_none());
    let o = ota(&["install", file.to_str().unwrap()], &cfg);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(install::current_version(&paths).as_deref(), Some("99.0.0"));

    // systemd: ExecStartPre, then ExecStart, until recovery stops the loop.
    let crash_log = d.path().join("out.log");
    let mut recoveries = Vec::new();
    for _ in 0..6 {
        let r = ota(&["recover"], &cfg);
        assert!(r.status.success(), "{}", out(&r));
        let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        recoveries.push(doc.clone());
        if doc["result"] == "rolled_back" {
            break;
        }
        let run = Command::new(paths.current.join("bin/carebridge"))
            .env("CB_OUT", &crash_log)
            .env("CB_HEALTH", d.path().join("health"))
            .status()
            .unwrap();
        assert!(!run.success(), "the release crashes");
    }
    assert_eq!(
        fs::read_to_string(&crash_log).unwrap().lines().count(),
        3,
        "{recoveries:?}"
    );
    let last = recoveries.last().unwrap();
    assert_eq!(last["result"], "rolled_back", "{recoveries:?}");
    assert_eq!(last["from"], "99.0.0");
    let factory = env!("CARGO_PKG_VERSION");
    assert_eq!(last["to"], factory, "{last}");

    // `current` is the packaged binary now, and it runs.
    assert_eq!(install::current_version(&paths).as_deref(), Some(factory));
    let bin = paths.current.join("bin/carebridge");
    assert_eq!(
        fs::read(&bin).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_carebridge")).unwrap()
    );
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(v.status.success(), "{}", out(&v));
    // The next start is a normal one on the factory release.
    let r = ota(&["recover"], &cfg);
    let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(doc["result"], "normal", "{doc}");
    assert_eq!(doc["current"], factory);

    // The rolled-back version is remembered...
    let st = recover::status(&paths).unwrap();
    assert_eq!(st.rolled_back.len(), 1);
    assert_eq!(st.rolled_back[0].version, "99.0.0");
    // ...and not installed again without an explicit flag.
    let o = ota(&["install", file.to_str().unwrap()], &cfg);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        out(&o).contains("version 99.0.0 was rolled back on this gateway"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("--allow-rolled-back"), "{}", out(&o));
    assert_eq!(install::current_version(&paths).as_deref(), Some(factory));
    let o = ota(
        &["install", "--allow-rolled-back", file.to_str().unwrap()],
        &cfg,
    );
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(install::current_version(&paths).as_deref(), Some("99.0.0"));
}
