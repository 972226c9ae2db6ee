//! Runs `tests/systemd_check.sh` so `cargo test` covers the unit files:
//! `systemd-analyze verify` clean and security exposure <= 2.0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn systemd_units_verify_clean_and_exposure_is_at_most_2() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/systemd_check.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    if !text.contains("SKIP") {
        assert!(text.contains("clean") && text.contains("OK"), "{text}");
    }
    eprintln!("{text}");
}
