//! Fuzzes the OTA bundle reader: the raw header decoder, the full
//! verification (signature gate), the manifest/policy checks behind a valid
//! signature, and the payload archive decoder. Nothing may panic and memory
//! stays bounded whatever the input claims.
//!
//! Run: `cargo +nightly fuzz run ota_bundle --fuzz-dir tests/fuzz -- -max_total_time=60`
#![no_main]

use std::sync::OnceLock;

use carebridge::ota::archive::{self, NullSink};
use carebridge::ota::bundle::{self, Policy};
use carebridge::ota::keys::TrustStore;
use carebridge::ota::version::Version;
use libfuzzer_sys::fuzz_target;
use ring::signature::Ed25519KeyPair;

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        // A fixed seed keeps runs reproducible.
        Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("fixed seed")
    })
}

fn store() -> TrustStore {
    TrustStore::from_keys([("fuzz".to_string(), bundle::public_key_of(key()))])
}

fn policy() -> Policy {
    Policy {
        arch: "x86_64".into(),
        installed: Version::parse("1.0.0").ok(),
        max_payload: 1 << 20,
        now: None,
        target: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        // Arbitrary bytes as a whole bundle.
        0 => {
            let _ = bundle::decode_header(rest);
            let _ = bundle::verify(&mut &rest[..], &store(), &policy(), &mut NullSink);
        }
        // Arbitrary bytes as a payload archive.
        1 => {
            let _ = archive::decode_entry_header(rest);
            let _ = archive::unpack(&mut &rest[..], &mut NullSink);
        }
        // Arbitrary manifest (first 2 bytes: its length) + payload, correctly
        // signed, so the manifest parser and policy checks are reached.
        _ => {
            if rest.len() < 2 {
                return;
            }
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            let (manifest, payload) = rest[2..].split_at(n);
            if manifest.is_empty() {
                return;
            }
            let mut b = bundle::encode_header("fuzz", manifest);
            let sig = key().sign(&b);
            b.extend_from_slice(sig.as_ref());
            b.extend_from_slice(payload);
            let _ = bundle::verify(&mut &b[..], &store(), &policy(), &mut NullSink);
        }
    }
});
