//! `carebridge config …` and start-up refusals: every kind of mistake gets
//! its own message naming the file, line and key, and exit code 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn carebridge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(args)
        .output()
        .expect("run carebridge")
}

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = carebridge(&["config", "check", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).replace(path.to_str().unwrap(), "FILE");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn defaults_print_a_file_that_checks_clean() {
    let out = carebridge(&["config", "defaults"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[gateway]") && text.contains("# "),
        "commented"
    );
    let (code, err) = check(&text);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_unknown_key_names_its_line_and_dotted_key() {
    let (code, err) =
        check("[gateway]\nid = \"a\"\n[uplink.mqtt]\nurl = \"mqtt://h\"\nkeep_alive = \"30s\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:5:"), "{err}");
    assert!(err.contains("uplink.mqtt.keep_alive"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let (code, err) = check("[zigbee]\nchannel = \"fifteen\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("FILE:2:") && err.contains("zigbee.channel"),
        "{err}"
    );
}

#[test]
fn a_bad_url_says_what_a_good_one_looks_like() {
    let (code, err) = check("[uplink.mqtt]\nurl = \"https://broker\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("FILE:2: uplink.mqtt.url") && err.contains("mqtts://"),
        "{err}"
    );
}

#[test]
fn a_bad_duration_and_a_bad_time_zone_are_named() {
    let (code, err) = check("[uplink.mqtt]\nurl = \"mqtt://h\"\nkeepalive = \"30 parsecs\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("uplink.mqtt.keepalive"), "{err}");
    let (code, err) = check("[gateway]\ntimezone = \"Europe/Lverpool\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:2: gateway.timezone"), "{err}");
}

#[test]
fn broken_toml_gives_line_and_column() {
    let (code, err) = check("[gateway\nid = 1\n");
    assert_eq!(code, 2);
    assert!(err.contains("FILE:1:"), "{err}");
}

#[test]
fn an_unreadable_file_is_refused_with_exit_2() {
    let out = carebridge(&["config", "check", "/nonexistent/carebridge.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/carebridge.toml") && err.contains("cannot read"),
        "{err}"
    );
    let out = carebridge(&["run", "--config", "/nonexistent/carebridge.toml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A config whose uplink password file does not exist (start-up must stop).
fn missing_password_config(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\ndata_dir = \"{}\"\n[uplink.mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_missing_password_file_stops_start_up_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = missing_password_config(&dir);
    let out = carebridge(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uplink.mqtt.password_file") && err.contains("/nonexistent/pw"),
        "{err}"
    );
}

#[test]
fn under_systemd_the_reason_for_stopping_is_logged_at_priority_err() {
    let dir = tempfile::tempdir().unwrap();
    let path = missing_password_config(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("<3>carebridge: "), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let out = carebridge(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_broken_device_library_file_names_the_file_the_entry_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("devices.toml");
    std::fs::write(
        &lib,
        "[[device]]\nid = \"mat\"\nvendor = \"Acme\"\nmodel = \"M\"\ndescription = \"Bed mat\"\n\
         match = [{ model = \"M\" }]\nsenses = [\"bed\"]\ncommissioning = \"Sit\"\n\
         [[device.map]]\ncluster = 6\nattr = 0\nkind = \"bed\"\nclear_after = \"0s\"\n",
    )
    .unwrap();
    let cfg = format!("[zigbee]\ndevices_file = {:?}\n", lib.to_str().unwrap());
    let (code, err) = check(&cfg);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(lib.to_str().unwrap()), "{err}");
    assert!(err.contains("device[0] (mat).map[0].clear_after"), "{err}");
    // A missing file is named too; a good one checks clean.
    std::fs::remove_file(&lib).unwrap();
    let (code, err) = check(&cfg);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("devices.toml") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::write(&lib, "").unwrap();
    let (code, err) = check(&cfg);
    assert_eq!(code, 0, "{err}");
}
