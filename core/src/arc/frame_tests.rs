use proptest::prelude::*;

use super::*;

fn ids() -> Ids {
    Ids {
        account: "AAA".into(),
        receiver: "0".into(),
        line: "0".into(),
    }
}

fn at() -> Time {
    Time::parse_rfc3339("2026-12-04T10:00:00Z").unwrap()
}

#[test]
fn an_encrypted_contact_id_matches_pysiaalarm_byte_for_byte() {
    // Built with pycryptodome (AES-CBC, zero IV, key = the 16 ASCII
    // characters, `0` padding) and pysiaalarm's CRC; pysiaalarm 3.2.2
    // parses it as code QA, zone 001, account AAA, valid, answer ACK.
    let key = Key::new(b"ABCDEF0123456789").unwrap();
    let msg = Message {
        kind: MsgType::AdmCid,
        seq: 1,
        data: "#AAA|1101 01 001".into(),
        at: at(),
    };
    let mut out = Vec::new();
    encode(&msg, &ids(), Some(&key), &[], &mut out);
    let want = "\n32870077\"*ADM-CID\"0001R0L0#AAA[8D6B901FA8F98D557D9D360C618240EC9D404738569759E26E288D39D17B4FB2D1680C1D2C2CE9B0496A5AD13A47D90B\r";
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn a_plain_null_message_is_framed_as_dc09_says() {
    let msg = Message {
        kind: MsgType::Null,
        seq: 42,
        data: String::new(),
        at: at(),
    };
    let mut out = Vec::new();
    encode(&msg, &ids(), None, &[], &mut out);
    let body = "\"NULL\"0042R0L0#AAA[]_10:00:00,12-04-2026";
    let want = format!("\n{:04X}{:04X}{body}\r", crc16(body.as_bytes()), body.len());
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn a_flipped_byte_is_a_crc_error_and_a_short_read_is_incomplete() {
    let msg = Message {
        kind: MsgType::SiaDcs,
        seq: 7,
        data: "#AAA|Nri3/WA003".into(),
        at: at(),
    };
    let mut out = Vec::new();
    encode(&msg, &ids(), None, &[], &mut out);
    assert!(matches!(
        decode(&out[..out.len() - 1], |_| None),
        Err(FrameError::Incomplete)
    ));
    let mut bad = out.clone();
    bad[20] ^= 1;
    assert!(matches!(
        decode(&bad, |_| None),
        Err(FrameError::Crc { .. })
    ));
}

#[test]
fn an_encrypted_message_without_the_key_names_the_account() {
    let key = Key::new(&[7; 32]).unwrap();
    let msg = Message {
        kind: MsgType::AdmCid,
        seq: 1,
        data: "#AAA|1101 01 001".into(),
        at: at(),
    };
    let mut out = Vec::new();
    encode(&msg, &ids(), Some(&key), b"xyz", &mut out);
    assert_eq!(decode(&out, |_| None), Err(FrameError::NoKey("AAA".into())));
}

#[test]
fn sequence_numbers_wrap_from_9999_to_1() {
    assert_eq!(next_seq(1), 2);
    assert_eq!(next_seq(9999), 1);
    assert_eq!(next_seq(0), 1);
}

proptest! {
    #[test]
    fn every_message_round_trips_plain_and_encrypted(
        kind in prop_oneof![Just(MsgType::AdmCid), Just(MsgType::SiaDcs), Just(MsgType::Null)],
        seq in 1u16..=9999,
        account in "[0-9A-F]{3,16}",
        receiver in "[0-9A-F]{1,6}",
        line in "[0-9A-F]{1,6}",
        data in "[#|A-Za-z0-9 /]{0,40}",
        secs in 0i64..4_000_000_000,
        key_len in prop_oneof![Just(0usize), Just(16), Just(24), Just(32)],
        key_byte in any::<u8>(),
        pad in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let ids = Ids { account, receiver, line };
        let key = (key_len > 0).then(|| Key::new(&vec![key_byte; key_len]).unwrap());
        let at = Time::from_secs(secs);
        let msg = Message { kind, seq, data: data.clone(), at };
        let mut out = Vec::new();
        encode(&msg, &ids, key.as_ref(), &pad, &mut out);
        out.extend_from_slice(b"\nrest");
        let (f, used) = decode(&out, |_| key.as_ref()).unwrap();
        let f = f.unwrap();
        prop_assert_eq!(&out[used..], b"\nrest");
        prop_assert_eq!(f.encrypted, key.is_some());
        prop_assert_eq!(f.id.as_str(), kind.token());
        prop_assert_eq!(f.seq, Some(seq));
        prop_assert_eq!(f.account.as_deref(), Some(ids.account.as_str()));
        prop_assert_eq!(f.receiver.as_deref(), Some(ids.receiver.as_str()));
        prop_assert_eq!(f.line.as_deref(), Some(ids.line.as_str()));
        prop_assert_eq!(f.data, data);
        let ts = f.timestamp.unwrap();
        prop_assert_eq!(parse_timestamp(ts.as_bytes()), Some(at));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = Key::new(&[1; 16]).unwrap();
        let _ = decode(&buf, |_| Some(&key));
        let _ = super::super::reply::decode_reply(&buf, Some(&key));
    }
}
