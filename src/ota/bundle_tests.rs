//! Unit tests for `bundle.rs` on in-memory bundles.

use super::*;
use crate::ota::archive::NullSink;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn input(version: &str) -> ManifestInput {
    ManifestInput {
        version: version.into(),
        arch: "x86_64".into(),
        min_version: Some("1.0.0".into()),
        allow_downgrade: false,
        created: Some("2026-11-23T10:00:00Z".into()),
        expires: None,
        gateways: Vec::new(),
        fleets: Vec::new(),
    }
}

fn entries() -> Vec<PayloadEntry> {
    vec![PayloadEntry {
        name: "bin/carebridge".into(),
        executable: true,
        source: EntrySource::Bytes(b"#!/bin/sh\nexit 0\n".to_vec()),
    }]
}

fn policy(installed: &str) -> Policy {
    Policy {
        arch: "x86_64".into(),
        installed: Some(Version::parse(installed).unwrap()),
        max_payload: 1 << 20,
        now: None,
        clock_trusted: true,
        target: None,
    }
}

fn build(k: &Ed25519KeyPair, v: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_bundle(k, "k1", &input(v), &entries(), &mut out).unwrap();
    out
}

#[test]
fn header_layout_matches_the_documented_format() {
    let k = key();
    let b = build(&k, "1.2.0");
    assert_eq!(&b[..8], b"CBBUNDLE");
    assert_eq!(b[8], 2);
    assert_eq!(&b[9..11], b"k1");
    let (raw, used) = decode_header(&b).unwrap();
    assert_eq!(raw.key_id, "k1");
    assert!(raw.manifest.starts_with(b"{\"format\":1,"));
    assert_eq!(used, raw.signed.len() + SIG_LEN);
}

#[test]
fn decode_header_asks_for_exactly_what_it_needs() {
    let k = key();
    let b = build(&k, "1.2.0");
    assert!(matches!(
        decode_header(&b[..4]),
        Err(BundleError::Incomplete { needed: 5 })
    ));
    assert!(matches!(
        decode_header(&b[..9]),
        Err(BundleError::Incomplete { needed: 6 })
    ));
    assert!(matches!(
        decode_header(b"ZZZZ"),
        Err(BundleError::NotABundle)
    ));
}

#[test]
fn good_bundle_verifies_and_lists_its_entries() {
    let k = key();
    let b = build(&k, "1.2.0");
    let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
    let v = verify(&mut &b[..], &keys, &policy("1.1.0"), &mut NullSink).unwrap();
    assert_eq!(v.manifest.version, "1.2.0");
    assert_eq!(v.entries[0].name, "bin/carebridge");
}

#[test]
fn signature_is_checked_before_the_manifest_is_parsed() {
    // A header whose manifest is garbage but whose signature is wrong must
    // report the signature, proving no manifest field was looked at first.
    let k = key();
    let header = encode_header("k1", b"{not json");
    let mut b = header.clone();
    b.extend_from_slice(&[7u8; SIG_LEN]);
    let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
    let e = verify(&mut &b[..], &keys, &policy("1.0.0"), &mut NullSink).unwrap_err();
    assert!(matches!(e, BundleError::BadSignature(_)), "{e}");
}

#[test]
fn signed_downgrade_is_allowed_and_minimum_version_is_enforced() {
    let k = key();
    let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
    let mut inp = input("1.0.5");
    inp.allow_downgrade = true;
    let mut b = Vec::new();
    let e = write_bundle(&k, "k1", &inp, &entries(), &mut b).unwrap_err();
    assert!(
        e.to_string().contains("allow_downgrade needs an expiry"),
        "{e}"
    );
    inp.expires = Some("2099-01-01T00:00:00Z".into());
    let mut b = Vec::new();
    write_bundle(&k, "k1", &inp, &entries(), &mut b).unwrap();
    verify(&mut &b[..], &keys, &policy("1.3.0"), &mut NullSink).unwrap();
    let b = build(&k, "2.0.0");
    let e = verify(&mut &b[..], &keys, &policy("0.9.0"), &mut NullSink).unwrap_err();
    assert!(matches!(e, BundleError::BelowMinimum { .. }), "{e}");
}

#[test]
fn every_single_byte_flip_is_refused() {
    let k = key();
    let b = build(&k, "1.2.0");
    let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
    for i in 0..b.len() {
        let mut t = b.clone();
        t[i] ^= 0x01;
        assert!(
            verify(&mut &t[..], &keys, &policy("1.1.0"), &mut NullSink).is_err(),
            "flip at {i} accepted"
        );
    }
}

mod model {
    use super::*;
    use proptest::prelude::*;

    fn ver() -> impl Strategy<Value = String> {
        (0u64..3, 0u64..3, 0u64..3).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The policy decision matches a plain statement of the rules.
        #[test]
        fn acceptance_follows_the_documented_rules(
            version in ver(),
            installed in ver(),
            min in proptest::option::of(ver()),
            allow_downgrade: bool,
            arch in prop_oneof![Just("x86_64"), Just("aarch64"), Just("armv7")],
            expires in proptest::option::of(prop_oneof![
                Just("2026-05-31T23:59:59Z"), Just("2026-06-01T00:00:00Z"), Just("2026-06-01T00:00:01Z")
            ]),
            gateways in proptest::collection::vec(prop_oneof![Just("gw-1"), Just("gw-2")], 0..2),
            fleets in proptest::collection::vec(prop_oneof![Just("north"), Just("south")], 0..2),
            member_of in proptest::collection::vec(prop_oneof![Just("north"), Just("east")], 0..2),
            trusted: bool,
        ) {
            let k = key();
            let inp = ManifestInput {
                version: version.clone(),
                arch: arch.into(),
                min_version: min.clone(),
                allow_downgrade,
                created: Some("2026-05-01T10:00:00Z".into()),
                expires: expires.map(String::from),
                gateways: gateways.iter().map(|g| g.to_string()).collect(),
                fleets: fleets.iter().map(|f| f.to_string()).collect(),
            };
            let mut b = Vec::new();
            let signed = write_bundle(&k, "k1", &inp, &entries(), &mut b);
            // A downgrade bundle must expire.
            prop_assert_eq!(signed.is_ok(), !allow_downgrade || expires.is_some());
            prop_assume!(signed.is_ok());
            let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
            let now = crate::model::Time::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
            let me = Target {
                gateway: "gw-1".into(),
                fleets: member_of.iter().map(|f| f.to_string()).collect(),
            };
            let p = policy(&installed).at(now, trusted).for_target(me);
            let got = verify(&mut &b[..], &keys, &p, &mut NullSink);
            let v = Version::parse(&version).unwrap();
            let i = Version::parse(&installed).unwrap();
            let min_ok = min.as_deref().is_none_or(|m| i >= Version::parse(m).unwrap());
            // Valid strictly before `expires`.
            let fresh = expires.is_none_or(|e| e == "2026-06-01T00:00:01Z");
            let targeted = (gateways.is_empty() && fleets.is_empty())
                || gateways.contains(&"gw-1")
                || fleets.iter().any(|f| member_of.contains(f));
            // An expiring bundle waits for a trusted clock.
            let clock_ok = trusted || expires.is_none();
            let expect = arch == "x86_64" && min_ok && (v >= i || allow_downgrade) && fresh && targeted && clock_ok;
            prop_assert_eq!(got.is_ok(), expect, "{:?}", got.err());
        }

        /// Any manifest bytes behind a valid signature are parsed without panic.
        #[test]
        fn signed_garbage_manifests_never_panic(manifest in proptest::collection::vec(any::<u8>(), 1..200), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = key();
            let mut b = encode_header("k1", &manifest);
            let sig = k.sign(&b);
            b.extend_from_slice(sig.as_ref());
            b.extend_from_slice(&tail);
            let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
            prop_assert!(verify(&mut &b[..], &keys, &policy("1.0.0"), &mut NullSink).is_err());
        }

        /// Arbitrary bytes are never accepted and never panic the reader.
        #[test]
        fn random_bytes_are_refused(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), magic: bool) {
            if magic && bytes.len() > 8 {
                bytes[..8].copy_from_slice(MAGIC);
            }
            let keys = TrustStore::from_keys([("k1".to_string(), [1u8; 32])]);
            let _ = decode_header(&bytes);
            prop_assert!(verify(&mut &bytes[..], &keys, &policy("1.0.0"), &mut NullSink).is_err());
        }
    }
}

#[test]
fn an_untrusted_clock_holds_an_expiring_bundle_back_and_its_signing_time_bounds_a_stale_clock() {
    let k = key();
    let keys = TrustStore::from_keys([("k1".to_string(), public_key_of(&k))]);
    let sign = |created: &str, expires: &str| {
        let inp = ManifestInput {
            version: "2.0.0".into(),
            arch: "x86_64".into(),
            min_version: None,
            allow_downgrade: false,
            created: Some(created.into()),
            expires: Some(expires.into()),
            gateways: vec![],
            fleets: vec![],
        };
        let mut b = Vec::new();
        write_bundle(&k, "k1", &inp, &entries(), &mut b).unwrap();
        b
    };
    // A Pi booted on a clock a year stale.
    let stale = crate::model::Time::parse_rfc3339("2025-12-01T00:00:00Z").unwrap();
    let fresh = sign("2026-11-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let e = verify(
        &mut &fresh[..],
        &keys,
        &policy("1.0.0").at(stale, false),
        &mut NullSink,
    )
    .unwrap_err();
    assert!(matches!(e, BundleError::ClockUntrusted { .. }), "{e}");
    assert!(e.to_string().contains("not trusted yet"), "{e}");
    assert!(e.is_refusal());
    verify(
        &mut &fresh[..],
        &keys,
        &policy("1.0.0").at(stale, true),
        &mut NullSink,
    )
    .unwrap();
    // Expired by its own signing time: refused as expired, clock or not.
    let old = sign("2026-11-01T00:00:00Z", "2026-10-01T00:00:00Z");
    for trusted in [false, true] {
        let e = verify(
            &mut &old[..],
            &keys,
            &policy("1.0.0").at(stale, trusted),
            &mut NullSink,
        )
        .unwrap_err();
        assert!(matches!(e, BundleError::Expired { .. }), "{e}");
    }
    // No `expires`: the clock does not matter.
    let inp = ManifestInput {
        expires: None,
        ..ManifestInput {
            version: "2.0.0".into(),
            arch: "x86_64".into(),
            min_version: None,
            allow_downgrade: false,
            created: Some("2026-11-01T00:00:00Z".into()),
            expires: None,
            gateways: vec![],
            fleets: vec![],
        }
    };
    let mut b = Vec::new();
    write_bundle(&k, "k1", &inp, &entries(), &mut b).unwrap();
    verify(
        &mut &b[..],
        &keys,
        &policy("1.0.0").at(stale, false),
        &mut NullSink,
    )
    .unwrap();
}
