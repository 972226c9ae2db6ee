//! Every kind of bad bundle is refused with its own error and message, and
//! nothing of it reaches the releases directory; a good one installs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;

use carebridge::ota::OtaPaths;
use carebridge::ota::archive::NullSink;
use carebridge::ota::bundle::{BundleError, Policy, SIG_LEN, decode_header, verify};
use carebridge::ota::install::{self, InstallError, InstallOptions};
use carebridge::ota::version::Version;
use ota_support::*;

fn policy_at(installed: &str) -> Policy {
    Policy {
        arch: ARCH.into(),
        installed: Some(Version::parse(installed).unwrap()),
        max_payload: MAX,
        now: None,
        clock_trusted: true,
        target: None,
    }
}

fn refusal(kr: &Keyring, bytes: &[u8]) -> BundleError {
    verify(
        &mut &bytes[..],
        &kr.store(),
        &policy_at("1.0.0"),
        &mut NullSink,
    )
    .unwrap_err()
}

fn payload_start(b: &[u8]) -> usize {
    decode_header(b).unwrap().1
}

/// Installing must refuse the same way and leave `current` and the releases alone.
fn install_refused(kr: &Keyring, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let paths = with_v1(dir.path(), kr);
    let before: Vec<_> = fs::read_dir(&paths.releases)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let e = install::install_bundle_from_reader(&mut &bytes[..], &paths, &kr.store(), &opts())
        .unwrap_err();
    assert!(e.is_refusal(), "{e}");
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
    let after: Vec<_> = fs::read_dir(&paths.releases)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "a refused bundle left files behind");
    e.to_string()
}

#[test]
fn tampered_payload_is_refused_as_tampered() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let mut b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    let last = b.len() - 3;
    b[last] ^= 0x20;
    let e = refusal(&kr, &b);
    assert!(matches!(e, BundleError::HashMismatch { .. }), "{e}");
    assert!(e.to_string().contains("tampered"), "{e}");
    assert!(install_refused(&kr, &b).contains("SHA-256"));
}

#[test]
fn tampered_archive_header_inside_payload_is_still_reported_as_tampered() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let mut b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    let p = payload_start(&b);
    b[p + 1] = 0xff; // entry name length
    assert!(matches!(refusal(&kr, &b), BundleError::HashMismatch { .. }));
}

#[test]
fn tampered_manifest_fails_the_signature() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    let text = String::from_utf8_lossy(&b).into_owned();
    let at = text.find("\"x86_64\"").unwrap();
    let mut t = b.clone();
    t[at + 1..at + 7].copy_from_slice(b"armv7\"");
    let e = refusal(&kr, &t);
    assert!(
        matches!(e, BundleError::BadSignature(ref k) if k == "ops"),
        "{e}"
    );
    assert!(install_refused(&kr, &t).contains("bad signature"));
}

#[test]
fn truncated_bundles_are_refused_wherever_they_end() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    let p = payload_start(&b);
    let e = refusal(&kr, &b[..b.len() - 1]);
    assert!(matches!(e, BundleError::PayloadTruncated { .. }), "{e}");
    assert!(e.to_string().starts_with("truncated bundle"), "{e}");
    let e = refusal(&kr, &b[..p - 10]);
    assert!(matches!(e, BundleError::Truncated(_)), "{e}");
    let e = refusal(&kr, &b[..5]);
    assert!(matches!(e, BundleError::Truncated("header")), "{e}");
    assert!(matches!(refusal(&kr, &[]), BundleError::Truncated(_)));
    assert!(install_refused(&kr, &b[..b.len() - 100]).contains("truncated"));
}

#[test]
fn unsigned_bundle_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let mut b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    let p = payload_start(&b);
    b[p - SIG_LEN..p].fill(0);
    let e = refusal(&kr, &b);
    assert!(matches!(e, BundleError::Unsigned), "{e}");
    assert!(install_refused(&kr, &b).contains("unsigned"));
}

#[test]
fn bundle_signed_by_another_key_under_a_trusted_id_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let other = Keyring::new(&d.path().join("attacker"), &["ops"]);
    let b = bundle(other.signer(), "1.1.0", &healthy_script("1.1.0"));
    let e = refusal(&kr, &b);
    assert!(matches!(e, BundleError::BadSignature(_)), "{e}");
    install_refused(&kr, &b);
}

#[test]
fn bundle_signed_by_an_unknown_key_is_refused_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let stranger = Keyring::new(&d.path().join("x"), &["stranger"]);
    let b = bundle(stranger.signer(), "1.1.0", &healthy_script("1.1.0"));
    let e = refusal(&kr, &b);
    assert!(
        matches!(e, BundleError::UnknownKey(ref k) if k == "stranger"),
        "{e}"
    );
    assert!(install_refused(&kr, &b).contains("unknown key \"stranger\""));
}

#[test]
fn revoked_key_is_refused_and_a_rotated_key_is_accepted() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops-2025", "ops-2026"]);
    fs::write(kr.dir.join("ops-2025.revoked"), "").unwrap();
    let old = bundle(&kr.signers[0], "1.1.0", &healthy_script("1.1.0"));
    let e = refusal(&kr, &old);
    assert!(
        matches!(e, BundleError::RevokedKey(ref k) if k == "ops-2025"),
        "{e}"
    );
    let new = bundle(&kr.signers[1], "1.1.0", &healthy_script("1.1.0"));
    verify(
        &mut &new[..],
        &kr.store(),
        &policy_at("1.0.0"),
        &mut NullSink,
    )
    .unwrap();
    // The `revoked` list works too.
    fs::remove_file(kr.dir.join("ops-2025.revoked")).unwrap();
    fs::write(kr.dir.join("revoked"), "ops-2025\n").unwrap();
    assert!(matches!(refusal(&kr, &old), BundleError::RevokedKey(_)));
}

#[test]
fn wrong_architecture_is_refused_naming_both() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let mut inp = input("1.1.0");
    inp.arch = "aarch64".into();
    let b = bundle_with(kr.signer(), &inp, &healthy_script("1.1.0"));
    let e = refusal(&kr, &b);
    assert!(matches!(e, BundleError::WrongArch { .. }), "{e}");
    assert!(e.to_string().contains("\"aarch64\"") && e.to_string().contains("\"x86_64\""));
    install_refused(&kr, &b);
}

#[test]
fn downgrade_is_refused_unless_signed_as_allowed() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let b = bundle(kr.signer(), "0.9.0", &healthy_script("0.9.0"));
    let e = refusal(&kr, &b);
    assert!(matches!(e, BundleError::Downgrade { .. }), "{e}");
    assert!(install_refused(&kr, &b).contains("older than the installed 1.0.0"));
    let mut inp = input("0.9.0");
    inp.allow_downgrade = true;
    inp.expires = Some("2099-01-01T00:00:00Z".into());
    let ok = bundle_with(kr.signer(), &inp, &healthy_script("0.9.0"));
    let dir = tempfile::tempdir().unwrap();
    let paths = with_v1(dir.path(), &kr);
    install_bytes(&paths, &kr.store(), &ok);
    assert_eq!(install::current_version(&paths).as_deref(), Some("0.9.0"));
}

#[test]
fn oversized_bundle_is_refused_before_reading_its_payload() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let big = "#!/bin/sh\n".to_string() + &"#".repeat(4096);
    let b = bundle(kr.signer(), "1.1.0", &big);
    let p = payload_start(&b);
    let small = Policy {
        max_payload: 1024,
        ..policy_at("1.0.0")
    };
    // Only the header is given: the refusal cannot have read the payload.
    let e = verify(&mut &b[..p], &kr.store(), &small, &mut NullSink).unwrap_err();
    assert!(matches!(e, BundleError::TooLarge { max: 1024, .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let paths = with_v1(dir.path(), &kr);
    let o = InstallOptions {
        max_payload: 1024,
        ..opts()
    };
    let e = install::install_bundle_from_reader(&mut &b[..], &paths, &kr.store(), &o).unwrap_err();
    assert!(
        e.to_string().contains("exceeds the limit of 1024 bytes"),
        "{e}"
    );
}

#[test]
fn extra_bytes_after_the_payload_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let mut b = bundle(kr.signer(), "1.1.0", &healthy_script("1.1.0"));
    b.push(0);
    assert!(matches!(refusal(&kr, &b), BundleError::TrailingData));
    install_refused(&kr, &b);
}

#[test]
fn good_bundle_installs_the_exact_bytes_side_by_side() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let script = healthy_script("1.1.0");
    let done = install_bytes(&paths, &kr.store(), &bundle(kr.signer(), "1.1.0", &script));
    assert_eq!(done.version, "1.1.0");
    assert_eq!(done.previous.as_deref(), Some("1.0.0"));
    assert_eq!(done.files, 2);
    assert_eq!(
        fs::read_to_string(paths.current.join("bin/carebridge")).unwrap(),
        script
    );
    assert!(
        paths.release("1.0.0").join("bin/carebridge").is_file(),
        "old release kept"
    );
    let backup = done.db_backup.unwrap();
    let copy = rusqlite::Connection::open(&backup).unwrap();
    let v: String = copy.query_row("select v from t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, "v1-data");
    // The same version again is refused while it runs.
    let e = install::install_bundle_from_reader(
        &mut &bundle(kr.signer(), "1.2.0", &script)[..],
        &paths,
        &kr.store(),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, InstallError::TrialInProgress(_)), "{e}");
}

#[test]
fn bundle_cli_keygen_sign_verify_and_exit_codes() {
    use carebridge::ota::cli::{BundleCmd, run};
    let d = tempfile::tempdir().unwrap();
    let keys_dir = d.path().join("k");
    run(BundleCmd::Keygen {
        id: "rel-1".into(),
        out_dir: keys_dir.clone(),
    })
    .unwrap();
    let bin = d.path().join("carebridge");
    fs::write(&bin, healthy_script("3.0.0")).unwrap();
    let mig = d.path().join("m.sql");
    fs::write(&mig, "select 1;").unwrap();
    let out = d.path().join("b.cbb");
    run(BundleCmd::Sign {
        key: keys_dir.join("rel-1.pk8"),
        key_id: None,
        version: "3.0.0".into(),
        arch: ARCH.into(),
        min_version: Some("1.0.0".into()),
        allow_downgrade: false,
        expires: None,
        gateways: Vec::new(),
        fleets: Vec::new(),
        binary: bin,
        files: vec![format!("migrations/0003.sql={}", mig.display())],
        out: out.clone(),
    })
    .unwrap();
    let verify_cmd = |path: &std::path::Path, installed: &str| BundleCmd::Verify {
        bundle: path.to_path_buf(),
        keys_dir: keys_dir.clone(),
        installed: Some(installed.into()),
        arch: Some(ARCH.into()),
        max_size: MAX,
        gateway: None,
        fleets: Vec::new(),
    };
    run(verify_cmd(&out, "2.0.0")).unwrap();
    run(BundleCmd::Inspect {
        bundle: out.clone(),
    })
    .unwrap();
    let e = run(verify_cmd(&out, "4.0.0")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.message.contains("older than the installed 4.0.0"),
        "{}",
        e.message
    );
    let mut b = fs::read(&out).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    let bad = d.path().join("bad.cbb");
    fs::write(&bad, &b).unwrap();
    let e = run(verify_cmd(&bad, "2.0.0")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("tampered"), "{}", e.message);
    let e = run(verify_cmd(&d.path().join("missing.cbb"), "2.0.0")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = run(BundleCmd::Keygen {
        id: "../evil".into(),
        out_dir: keys_dir.clone(),
    })
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn first_install_on_an_empty_data_dir_needs_no_previous_release() {
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = OtaPaths::under(&d.path().join("fresh"));
    let done = install_bytes(
        &paths,
        &kr.store(),
        &bundle(kr.signer(), "1.0.0", CRASH_SCRIPT),
    );
    assert_eq!(done.previous, None);
    assert_eq!(done.db_backup, None);
}

#[test]
fn an_install_waits_while_another_holds_the_install_lock() {
    let dir = tempfile::tempdir().unwrap();
    let kr = Keyring::new(dir.path(), &["k1"]);
    let paths = OtaPaths::under(&dir.path().join("data"));
    fs::create_dir_all(dir.path().join("data")).unwrap();
    let b = bundle(kr.signer(), "1.0.0", &healthy_script("1.0.0"));
    // Another install (a web upload, a cmd/update, `carebridge ota`) holds it.
    let held = install::lock(&paths).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (p2, keys) = (paths.clone(), kr.store());
    let t = std::thread::spawn(move || {
        let r = install::install_bundle_from_reader(&mut &b[..], &p2, &keys, &opts());
        tx.send(r.map(|d| d.version)).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "installed while another install held the lock"
    );
    assert!(install::current_version(&paths).is_none());
    drop(held);
    let v = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(v.unwrap(), "1.0.0");
    t.join().unwrap();
    assert_eq!(install::current_version(&paths).as_deref(), Some("1.0.0"));
}

#[test]
fn bundle_cli_signs_expiry_and_targets_and_verify_checks_them() {
    use carebridge::ota::cli::{BundleCmd, run};
    let d = tempfile::tempdir().unwrap();
    let keys_dir = d.path().join("keys");
    run(BundleCmd::Keygen {
        id: "rel-2".into(),
        out_dir: keys_dir.clone(),
    })
    .unwrap();
    let bin = d.path().join("carebridge");
    fs::write(&bin, healthy_script("3.0.0")).unwrap();
    let sign = |out: &std::path::Path, expires: Option<&str>, downgrade: bool| {
        run(BundleCmd::Sign {
            key: keys_dir.join("rel-2.pk8"),
            key_id: None,
            version: "3.0.0".into(),
            arch: ARCH.into(),
            min_version: None,
            allow_downgrade: downgrade,
            expires: expires.map(String::from),
            gateways: vec!["gw-7".into()],
            fleets: vec!["north".into()],
            binary: bin.clone(),
            files: Vec::new(),
            out: out.to_path_buf(),
        })
    };
    let verify_as = |path: &std::path::Path, gateway: Option<&str>, fleets: &[&str]| {
        run(BundleCmd::Verify {
            bundle: path.to_path_buf(),
            keys_dir: keys_dir.clone(),
            installed: None,
            arch: Some(ARCH.into()),
            max_size: MAX,
            gateway: gateway.map(String::from),
            fleets: fleets.iter().map(|f| f.to_string()).collect(),
        })
    };
    // A downgrade tool must expire.
    let e = sign(&d.path().join("dg.cbb"), None, true).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("--expires"), "{}", e.message);
    let e = sign(&d.path().join("bad.cbb"), Some("next tuesday"), false).unwrap_err();
    assert!(
        e.message.contains("expires \"next tuesday\""),
        "{}",
        e.message
    );

    let live = d.path().join("live.cbb");
    sign(&live, Some("2099-01-01T00:00:00Z"), false).unwrap();
    verify_as(&live, None, &[]).unwrap();
    verify_as(&live, Some("gw-7"), &[]).unwrap();
    verify_as(&live, Some("gw-8"), &["north"]).unwrap();
    let e = verify_as(&live, Some("gw-8"), &["south"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("not for this gateway"), "{}", e.message);

    let old = d.path().join("old.cbb");
    sign(&old, Some("2021-06-01T00:00:00Z"), true).unwrap();
    let e = verify_as(&old, Some("gw-7"), &[]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.message.contains("expired at 2021-06-01T00:00:00Z"),
        "{}",
        e.message
    );
}
