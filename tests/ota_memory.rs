//! Bounded memory: signing, verifying and installing a 64 MiB bundle raise
//! the process's peak RSS by only a few MiB (the payload is streamed with a
//! fixed buffer, never held in memory). Own test binary so no other test
//! moves the peak. Also prints the verify throughput.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ota_support;

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use carebridge::ota::archive::NullSink;
use carebridge::ota::bundle::{self, EntrySource, PayloadEntry, Policy};
use carebridge::ota::install::{self, InstallOptions};
use carebridge::ota::version::Version;
use ota_support::*;

fn peak_rss_kib() -> u64 {
    let s = fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_64_mib_bundle_is_signed_verified_and_installed_in_bounded_memory() {
    const SIZE: usize = 64 << 20;
    let d = tempfile::tempdir().unwrap();
    let kr = Keyring::new(d.path(), &["ops"]);
    let paths = with_v1(d.path(), &kr);
    let bin = d.path().join("big-binary");
    {
        let mut w = BufWriter::new(fs::File::create(&bin).unwrap());
        w.write_all(b"#!/bin/sh\necho serving 9.0.0\nexit 0\n")
            .unwrap();
        let chunk: Vec<u8> = (0..(1 << 20)).map(|i| (i % 253) as u8).collect();
        for _ in 0..SIZE >> 20 {
            w.write_all(&chunk).unwrap();
        }
    }
    let before = peak_rss_kib();
    let file = d.path().join("big.cbb");
    let entries = [PayloadEntry {
        name: "bin/carebridge".into(),
        executable: true,
        source: EntrySource::File(bin.clone()),
    }];
    let mut w = BufWriter::new(fs::File::create(&file).unwrap());
    bundle::write_bundle(&kr.signer().pair, "ops", &input("9.0.0"), &entries, &mut w).unwrap();
    w.flush().unwrap();
    drop(w);

    let policy = Policy {
        arch: ARCH.into(),
        installed: Version::parse("1.0.0").ok(),
        max_payload: 1 << 30,
        now: None,
        clock_trusted: true,
        target: None,
    };
    let t = Instant::now();
    let v = bundle::verify(
        &mut BufReader::new(fs::File::open(&file).unwrap()),
        &kr.store(),
        &policy,
        &mut NullSink,
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(v.manifest.payload_size > SIZE as u64);
    eprintln!(
        "verify: {:.0} MiB/s ({} bytes in {:.3}s)",
        v.manifest.payload_size as f64 / (1 << 20) as f64 / secs,
        v.manifest.payload_size,
        secs
    );
    let opts = InstallOptions {
        max_payload: 1 << 30,
        ..opts()
    };
    install::install_bundle_from_reader(
        &mut BufReader::new(fs::File::open(&file).unwrap()),
        &paths,
        &kr.store(),
        &opts,
    )
    .unwrap();
    let grew = peak_rss_kib().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {grew} KiB for a {} MiB bundle",
        SIZE >> 20
    );
    assert!(grew < 8 * 1024, "peak RSS grew by {grew} KiB");
    assert_eq!(
        fs::metadata(paths.current.join("bin/carebridge"))
            .unwrap()
            .len(),
        fs::metadata(&bin).unwrap().len()
    );
}
