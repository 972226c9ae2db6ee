//! Two installs at once, for real: two `carebridge ota install` processes
//! race on a 64 MiB two-file bundle each, with `carebridge ota recover` (the
//! service start) thrown in, over several rounds and start offsets. Exactly
//! one install wins, the other refuses clearly (a release is on trial), the
//! trial recorded is the winner's, recovery never calls it interrupted, and
//! `current` always holds a complete release with `bin/carebridge`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use carebridge::model::Time;
use carebridge::ota::bundle::{self, EntrySource, PayloadEntry};
use carebridge::ota::{OtaPaths, install, recover};
use ota_support::*;

const HALF: usize = 32 << 20;

fn config(root: &Path, keys: &Path) -> PathBuf {
    let p = root.join("carebridge.toml");
    fs::write(
        &p,
        format!(
            "[gateway]\nid = \"gw-race\"\ndata_dir = \"{}\"\n\n[ota]\nkeys_dir = \"{}\"\n",
            root.join("data").display(),
            keys.display()
        ),
    )
    .unwrap();
    p
}

/// A bundle of `bin/carebridge` and `assets/blob`, 32 MiB each.
fn big_bundle(kr: &Keyring, root: &Path, version: &str) -> PathBuf {
    let bin = root.join("bin.part");
    let blob = root.join("blob.part");
    if !bin.exists() {
        let mut f = fs::File::create(&bin).unwrap();
        f.write_all(b"#!/bin/sh\nexit 0\n").unwrap();
        f.write_all(&vec![b'#'; HALF - 17]).unwrap();
        fs::write(&blob, vec![0xa5u8; HALF]).unwrap();
    }
    let mut inp = input(version);
    inp.arch = std::env::consts::ARCH.into();
    let entries = [
        PayloadEntry {
            name: "bin/carebridge".into(),
            executable: true,
            source: EntrySource::File(bin),
        },
        PayloadEntry {
            name: "assets/blob".into(),
            executable: false,
            source: EntrySource::File(blob),
        },
    ];
    let out = root.join(format!("{version}.cbb"));
    let mut w = std::io::BufWriter::new(fs::File::create(&out).unwrap());
    let s = kr.signer();
    bundle::write_bundle(&s.pair, &s.id, &inp, &entries, &mut w).unwrap();
    w.flush().unwrap();
    out
}

fn ota(args: &[&str], cfg: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .arg("ota")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn staging_left(paths: &OtaPaths) -> Vec<String> {
    fs::read_dir(&paths.releases)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging-"))
        .collect()
}

#[test]
fn two_installers_racing_on_a_big_bundle_never_leave_current_without_its_binary() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let cfg = config(d.path(), &kr.dir);
    let paths = OtaPaths::under(&d.path().join("data"));
    fs::create_dir_all(d.path().join("data")).unwrap();
    // A database, so every install also takes its backup.
    rusqlite::Connection::open(&paths.db)
        .unwrap()
        .execute_batch("create table t(v); insert into t values(1);")
        .unwrap();
    // Start offsets of the second installer (and of the service start).
    let offsets_ms = [0u64, 3, 15, 60];
    for (round, offset) in offsets_ms.iter().enumerate() {
        let (va, vb) = (format!("{}.0.0", round + 2), format!("{}.1.0", round + 2));
        let a = big_bundle(&kr, d.path(), &va);
        let b = big_bundle(&kr, d.path(), &vb);
        let first = ota(&["install", a.to_str().unwrap()], &cfg);
        std::thread::sleep(Duration::from_millis(*offset));
        let second = ota(&["install", b.to_str().unwrap()], &cfg);
        std::thread::sleep(Duration::from_millis(*offset / 2));
        let start = ota(&["recover"], &cfg);
        let (oa, ob, or) = (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
            start.wait_with_output().unwrap(),
        );
        let ctx = format!(
            "round {round} (offset {offset} ms)\nA {va}: {}\nB {vb}: {}\nrecover: {}",
            text(&oa),
            text(&ob),
            text(&or)
        );
        let won: Vec<(&str, &Output)> = [(va.as_str(), &oa), (vb.as_str(), &ob)]
            .into_iter()
            .filter(|(_, o)| o.status.success())
            .collect();
        assert_eq!(won.len(), 1, "exactly one install succeeds\n{ctx}");
        let (winner, _) = won[0];
        let loser = if winner == va { &ob } else { &oa };
        assert_eq!(loser.status.code(), Some(2), "{ctx}");
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("is still on trial"),
            "the loser says why\n{ctx}"
        );
        assert!(or.status.success(), "{ctx}");
        assert!(
            !String::from_utf8_lossy(&or.stdout).contains("interrupted"),
            "recovery never sees an install half-way\n{ctx}"
        );

        // `current` is the winner, complete, and the trial is the winner's.
        assert_eq!(
            install::current_version(&paths).as_deref(),
            Some(winner),
            "{ctx}"
        );
        let bin = paths.current.join("bin/carebridge");
        assert_eq!(fs::metadata(&bin).unwrap().len(), HALF as u64, "{ctx}");
        assert_eq!(
            fs::metadata(paths.current.join("assets/blob"))
                .unwrap()
                .len(),
            HALF as u64
        );
        let st = recover::status(&paths).unwrap();
        assert_eq!(
            st.trial.as_ref().map(|t| t.version.as_str()),
            Some(winner),
            "{ctx}"
        );
        assert!(staging_left(&paths).is_empty(), "{ctx}");

        // Next round starts from a committed release.
        recover::commit_now(&paths, Time::from_secs(round as i64)).unwrap();
        for v in [&va, &vb] {
            fs::remove_file(d.path().join(format!("{v}.cbb"))).unwrap();
        }
    }
}

#[test]
fn a_staging_directory_of_a_dead_installer_is_cleaned_up_by_the_next_install() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = OtaPaths::under(&d.path().join("data"));
    fs::create_dir_all(&paths.releases).unwrap();
    // What `kill -9` in the middle of unpacking leaves.
    let dead = paths.releases.join(".staging-1.5.0-999999");
    fs::create_dir_all(dead.join("bin")).unwrap();
    fs::write(dead.join("bin/carebridge"), b"half").unwrap();
    install_bytes(
        &paths,
        &kr.store(),
        &bundle(kr.signer(), "2.0.0", &healthy_script("2.0.0")),
    );
    assert!(!dead.exists());
    assert!(staging_left(&paths).is_empty());
}
