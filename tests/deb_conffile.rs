//! The .deb ships `packaging/deb/carebridge.toml` as the conffile
//! `/etc/carebridge/carebridge.toml`. It is committed (a cross build cannot
//! run the target binary to generate it), so this test keeps it identical to
//! what `carebridge config defaults` prints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn packaged_default_config_equals_config_defaults_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["config", "defaults"])
        .output()
        .expect("run carebridge config defaults");
    assert!(out.status.success(), "config defaults failed");
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/deb/carebridge.toml");
    let packaged = std::fs::read_to_string(path).unwrap();
    assert!(
        printed == packaged,
        "packaging/deb/carebridge.toml is stale: regenerate it with \
         `cargo run -q -- config defaults > packaging/deb/carebridge.toml`"
    );
}

#[test]
fn packaged_default_config_passes_config_check() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/deb/carebridge.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_carebridge"))
        .args(["config", "check", path])
        .output()
        .expect("run carebridge config check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
