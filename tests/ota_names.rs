//! Entry names that cannot all be unpacked into one release directory (a
//! path that is both a file and a directory, the installer's own
//! `release.json`, a duplicate): `carebridge bundle sign` refuses to make
//! such a bundle, naming the path; a bundle that has one anyway (signed by an
//! older `bundle sign` with the same key) is refused by `bundle verify` and
//! by `ota install`, which leaves no `.staging-*` behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use carebridge::ota::archive::{EntryHeader, encode_entry_header};
use carebridge::ota::bundle::{FORMAT, Manifest, encode_header};
use carebridge::ota::{OtaPaths, install};
use ota_support::*;
use ring::digest;

fn cb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(args)
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

/// The clashing `--file` sets and the path each refusal must name.
fn clashes(d: &Path) -> Vec<(Vec<String>, &'static str)> {
    let f = d.join("extra");
    fs::write(&f, b"x").unwrap();
    let f = f.display().to_string();
    vec![
        (
            vec![format!("bin/carebridge/x={f}")],
            "\"bin/carebridge/x\" clashes with entry \"bin/carebridge\"",
        ),
        (
            vec![format!("release.json/x={f}")],
            "\"release.json/x\" is reserved",
        ),
        (
            vec![format!("release.json={f}")],
            "\"release.json\" is reserved",
        ),
        (
            vec![format!("bin/carebridge={f}")],
            "\"bin/carebridge\" appears twice",
        ),
        (
            vec![format!("assets/a/b={f}"), format!("assets/a={f}")],
            "\"assets/a\" clashes with entry \"assets/a/b\"",
        ),
    ]
}

#[test]
fn bundle_sign_refuses_clashing_names_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let keydir = d.path().join("k");
    let o = cb(&[
        "bundle",
        "keygen",
        "--id",
        "rel",
        "--out-dir",
        keydir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let bin = d.path().join("carebridge");
    fs::write(&bin, "#!/bin/sh\n").unwrap();
    for (files, named) in clashes(d.path()) {
        let dest = d.path().join("b.cbb");
        let mut args = vec![
            "bundle".to_string(),
            "sign".into(),
            "--key".into(),
            keydir.join("rel.pk8").display().to_string(),
            "--version".into(),
            "2.0.0".into(),
            "--arch".into(),
            std::env::consts::ARCH.into(),
            "--binary".into(),
            bin.display().to_string(),
            "--out".into(),
            dest.display().to_string(),
        ];
        for f in &files {
            args.push("--file".into());
            args.push(f.clone());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cb(&refs);
        assert_eq!(o.status.code(), Some(2), "{files:?}: {}", out(&o));
        assert!(out(&o).contains(named), "{files:?}: {}", out(&o));
        assert!(!dest.exists() && !dest.with_extension("partial").exists());
    }
    // The same command without a clash signs.
    let ok = d.path().join("ok.cbb");
    let extra = format!("assets/a/b={}", d.path().join("extra").display());
    let o = cb(&[
        "bundle",
        "sign",
        "--key",
        keydir.join("rel.pk8").to_str().unwrap(),
        "--version",
        "2.0.0",
        "--arch",
        std::env::consts::ARCH,
        "--binary",
        bin.to_str().unwrap(),
        "--file",
        &extra,
        "--out",
        ok.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
}

/// Name, executable, bytes.
type Entry<'a> = (&'a str, bool, &'a [u8]);

/// A signed bundle with exactly these entries (as an older `bundle sign`
/// made them: it checked nothing but each name's characters).
fn raw_bundle(s: &Signer, version: &str, entries: &[Entry]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (name, x, data) in entries {
        encode_entry_header(
            &EntryHeader {
                name: name.to_string(),
                executable: *x,
                size: data.len() as u64,
            },
            &mut payload,
        );
        payload.extend_from_slice(data);
    }
    let m = Manifest {
        format: FORMAT,
        version: version.into(),
        arch: std::env::consts::ARCH.into(),
        min_version: None,
        payload_size: payload.len() as u64,
        payload_sha256: hex::encode(digest::digest(&digest::SHA256, &payload)),
        created: "2026-11-23T10:00:00Z".into(),
        allow_downgrade: false,
        key_id: s.id.clone(),
        expires: None,
        gateways: Vec::new(),
        fleets: Vec::new(),
    };
    let mut b = encode_header(&s.id, &serde_json::to_vec(&m).unwrap());
    let sig = s.pair.sign(&b);
    b.extend_from_slice(sig.as_ref());
    b.extend_from_slice(&payload);
    b
}

#[test]
fn verify_and_install_refuse_clashing_names_and_leave_no_staging() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let data = d.path().join("data");
    let paths = OtaPaths::under(&data);
    let cfg = d.path().join("carebridge.toml");
    fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"gw-n\"\ndata_dir = \"{}\"\n\n[ota]\nkeys_dir = \"{}\"\n",
            data.display(),
            kr.dir.display()
        ),
    )
    .unwrap();
    let exe: &[u8] = b"#!/bin/sh\nexit 0\n";
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (
            vec![
                ("bin/carebridge", true, exe),
                ("bin/carebridge/x", false, b"x"),
            ],
            "\"bin/carebridge/x\" clashes with entry \"bin/carebridge\"",
        ),
        (
            vec![
                ("bin/carebridge", true, exe),
                ("release.json/x", false, b"x"),
            ],
            "\"release.json/x\" is reserved",
        ),
        (
            vec![
                ("bin/carebridge", true, exe),
                ("release.json", false, b"{}"),
            ],
            "\"release.json\" is reserved",
        ),
        (
            vec![("bin/carebridge", true, exe), ("bin/carebridge", true, exe)],
            "\"bin/carebridge\" appears twice",
        ),
    ];
    for (i, (entries, named)) in cases.iter().enumerate() {
        let file = d.path().join(format!("bad{i}.cbb"));
        fs::write(&file, raw_bundle(kr.signer(), "2.0.0", entries)).unwrap();
        let o = cb(&[
            "bundle",
            "verify",
            file.to_str().unwrap(),
            "--keys-dir",
            kr.dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", out(&o));
        assert!(out(&o).contains(named), "case {i}: {}", out(&o));

        let o = cb(&[
            "ota",
            "install",
            file.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "case {i}: {}", out(&o));
        assert!(out(&o).contains(named), "case {i}: {}", out(&o));
        assert!(install::current_version(&paths).is_none());
        let left: Vec<_> = fs::read_dir(&paths.releases)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "case {i}: left behind {left:?}");
    }
    // The keys are real: a clean bundle from the same signer installs.
    let good = d.path().join("good.cbb");
    fs::write(
        &good,
        raw_bundle(kr.signer(), "2.0.0", &[("bin/carebridge", true, exe)]),
    )
    .unwrap();
    let o = cb(&[
        "ota",
        "install",
        good.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
}
