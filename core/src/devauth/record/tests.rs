use proptest::prelude::*;
use serde_json::json;

use super::*;

fn cred(user: &str) -> Credential {
    Credential {
        holder: Holder::from_username(user).unwrap(),
        salt: "00".repeat(SALT_LEN),
        mac: "ab".repeat(MAC_LEN),
        created_at: Time::from_secs(1_790_000_000),
        created_by: "ui:ann".into(),
    }
}

#[test]
fn the_file_round_trips_and_keys_by_user_name() {
    let mut c = Credentials::default();
    c.set(cred("pendant")).unwrap();
    c.set(cred("homeassistant")).unwrap();
    let back = Credentials::parse(&c.to_bytes()).unwrap();
    assert_eq!(back, c);
    assert_eq!(
        back.get("homeassistant").unwrap().holder,
        Holder::Service("homeassistant".into())
    );
    assert!(back.get("pendant").is_some());
    let text = String::from_utf8(c.to_bytes()).unwrap();
    assert!(
        text.contains("\"holder\": {\n        \"device\": \"pendant\""),
        "{text}"
    );
}

#[test]
fn a_tampered_file_is_refused_naming_the_record_and_field() {
    let mut c = Credentials::default();
    c.set(cred("pendant")).unwrap();
    let text = String::from_utf8(c.to_bytes())
        .unwrap()
        .replace(&"ab".repeat(MAC_LEN), "abcd");
    let e = Credentials::parse(text.as_bytes()).unwrap_err();
    assert_eq!(e.field, "credentials[0].mac");
    let e = Credentials::parse(br#"{"version":2,"credentials":[]}"#).unwrap_err();
    assert_eq!(e.field, "version");
    let e = Credentials::parse(b"{").unwrap_err();
    assert_eq!(e.field, "file");
}

#[test]
fn a_device_cannot_take_a_service_name_nor_an_unknown_service_exist() {
    let mut c = cred("pendant");
    c.holder = Holder::Device(DeviceId::new("homeassistant").unwrap());
    assert_eq!(c.validate().unwrap_err().field, "device");
    c.holder = Holder::Service("grafana".into());
    assert_eq!(c.validate().unwrap_err().field, "service");
}

#[test]
fn a_push_sets_by_secret_or_by_record_and_revokes_by_user_name() {
    let now = Time::from_secs(1_790_000_000);
    let p = parse_push(
        &json!({"set": [
            {"device": "pendant", "secret": "s3cret-s3cret-s3cret-s3cret"},
            {"service": "homeassistant", "salt": "00".repeat(16), "mac": "AB".repeat(32)}],
          "revoke": ["door"]}),
        now,
        "remote",
    )
    .unwrap();
    assert_eq!(p.set.len(), 2);
    assert!(matches!(&p.set[0], Pushed::Secret { secret, .. } if secret.starts_with("s3cret")));
    match &p.set[1] {
        Pushed::Record(c) => {
            assert_eq!(c.mac, "ab".repeat(32));
            assert_eq!(c.created_by, "remote");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.revoke, ["door"]);
}

#[test]
fn a_bad_push_names_the_item_and_field() {
    let now = Time(0);
    let cases = [
        (
            json!({"set": [{"device": "a", "secret": "short"}]}),
            "device_credentials.set[0].secret",
        ),
        (
            json!({"set": [{"device": "a/b", "secret": "x".repeat(30)}]}),
            "device_credentials.set[0].device",
        ),
        (
            json!({"set": [{"secret": "x".repeat(30)}]}),
            "device_credentials.set[0].device",
        ),
        (
            json!({"set": [{"device": "a", "salt": "00", "mac": "00"}]}),
            "device_credentials.set[0].salt",
        ),
        (
            json!({"set": [{"device": "a", "secret": "x".repeat(30), "mac": "00"}]}),
            "device_credentials.set[0].secret",
        ),
        (
            json!({"set": [{"device": "a", "pass": "x"}]}),
            "device_credentials.set[0].pass",
        ),
        (json!({"revoke": [3]}), "device_credentials.revoke[0]"),
        (json!({"revoke": "a"}), "device_credentials.revoke"),
        (json!({"add": []}), "device_credentials.add"),
    ];
    for (v, field) in cases {
        let e = parse_push(&v, now, "remote").unwrap_err();
        assert_eq!(e.field, field, "{v}: {e}");
    }
}

proptest! {
    /// Any file bytes parse to credentials or a located error, never a panic.
    #[test]
    fn arbitrary_file_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Credentials::parse(&b);
    }

    /// Valid records survive the file round trip.
    #[test]
    fn records_round_trip(ids in prop::collection::btree_set("[a-z0-9._:-]{1,20}", 0..8)) {
        let mut c = Credentials::default();
        for id in &ids {
            if id != "homeassistant" {
                c.set(cred(id)).unwrap();
            }
        }
        prop_assert_eq!(Credentials::parse(&c.to_bytes()).unwrap(), c);
    }
}
