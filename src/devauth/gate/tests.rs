use std::net::Ipv4Addr;

use super::*;
use crate::model::{DeviceId, Time};

const ROGUE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 66));
const SENSOR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));

fn gate(settings: AuthSettings) -> (DeviceAuth, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let creds = CredentialStore::open(dir.path());
    let secret = creds
        .create(
            Holder::Device(DeviceId::new("pendant").unwrap()),
            "ui:ann",
            Time(0),
        )
        .unwrap();
    (DeviceAuth::new(settings, creds), dir, secret)
}

fn lan() -> AuthSettings {
    AuthSettings {
        device_credentials: true,
        authenticated: true,
        anonymous_ok: false,
        policy: Policy {
            ha: Some(acl::HaTopics {
                discovery_prefix: "homeassistant".into(),
                state_prefix: "carebridge/ha".into(),
            }),
        },
        ..Default::default()
    }
}

#[test]
fn a_device_logs_in_with_its_secret_and_publishes_only_as_itself() {
    let (g, _d, secret) = gate(lan());
    let who = g
        .connect(SENSOR, "p1", Some("pendant"), Some(secret.as_bytes()))
        .unwrap();
    assert_eq!(who, Identity::Device(DeviceId::new("pendant").unwrap()));
    assert!(g.may_publish(&who, "carebridge/in/pendant"));
    assert!(!g.may_publish(&who, "carebridge/in/door"));
    assert!(!g.may_subscribe(&who, "#"));
    assert!(g.may_subscribe(&who, "carebridge/cmd/pendant/#"));
    let s = g.stats();
    assert_eq!(s.refused(Cause::Publish), 1);
    assert_eq!(s.refused(Cause::Subscribe), 1);
    assert_eq!(s.logins.load(Ordering::Relaxed), 1);
}

#[test]
fn anonymous_is_refused_on_an_authenticated_listener_and_counted() {
    let (g, _d, _) = gate(lan());
    assert_eq!(
        g.connect(ROGUE, "x", None, None),
        Err(Refusal::BadCredentials)
    );
    assert_eq!(g.stats().refused(Cause::Anonymous), 1);
}

#[test]
fn wrong_passwords_back_off_the_address_even_for_the_right_password() {
    let (g, _d, secret) = gate(lan());
    for _ in 0..2 {
        assert_eq!(
            g.connect(ROGUE, "x", Some("pendant"), Some(b"guess")),
            Err(Refusal::BadCredentials)
        );
    }
    assert!(matches!(
        g.connect(ROGUE, "x", Some("pendant"), Some(b"guess")),
        Err(Refusal::Throttled { .. })
    ));
    assert!(matches!(g.accept(ROGUE), Err(Refusal::Throttled { .. })));
    assert!(matches!(
        g.connect(ROGUE, "x", Some("pendant"), Some(secret.as_bytes())),
        Err(Refusal::Throttled { .. })
    ));
    // Another address is not affected.
    assert!(g.accept(SENSOR).is_ok());
    assert!(
        g.connect(SENSOR, "p", Some("pendant"), Some(secret.as_bytes()))
            .is_ok()
    );
    assert_eq!(g.stats().refused(Cause::BadPassword), 3);
    assert!(g.stats().refused(Cause::Throttled) >= 2);
}

#[test]
fn a_revoked_credential_stops_an_open_connection_at_its_next_publish() {
    let (g, _d, secret) = gate(lan());
    let who = g
        .connect(SENSOR, "p1", Some("pendant"), Some(secret.as_bytes()))
        .unwrap();
    assert!(g.credentials().revoke("pendant").unwrap());
    assert!(!g.may_publish(&who, "carebridge/in/pendant"));
    assert_eq!(g.stats().refused(Cause::Revoked), 1);
    assert_eq!(
        g.connect(SENSOR, "p1", Some("pendant"), Some(secret.as_bytes())),
        Err(Refusal::BadCredentials)
    );
    assert_eq!(g.stats().refused(Cause::UnknownUser), 1);
}

#[test]
fn the_legacy_account_still_works_with_its_own_permissions() {
    let settings = AuthSettings {
        device_credentials: false,
        legacy: Some(("sensors".into(), "hunter2hunter2".into())),
        ..lan()
    };
    let (g, _d, secret) = gate(settings);
    let who = g
        .connect(SENSOR, "b", Some("sensors"), Some(b"hunter2hunter2"))
        .unwrap();
    assert_eq!(who, Identity::Service(LEGACY_SERVICE.into()));
    assert!(g.may_publish(&who, "carebridge/in/door"));
    assert!(!g.may_subscribe(&who, "#"));
    assert_eq!(
        g.connect(SENSOR, "b", Some("sensors"), Some(b"nope")),
        Err(Refusal::BadCredentials)
    );
    // Device credentials are off: a device secret is not accepted.
    assert_eq!(
        g.connect(SENSOR, "p", Some("pendant"), Some(secret.as_bytes())),
        Err(Refusal::BadCredentials)
    );
}

#[test]
fn without_authentication_every_client_is_anonymous_with_the_old_permissions() {
    let settings = AuthSettings {
        device_credentials: false,
        authenticated: false,
        anonymous_ok: true,
        ..lan()
    };
    let (g, _d, _) = gate(settings);
    let who = g.connect(SENSOR, "x", Some("whoever"), Some(b"x")).unwrap();
    assert_eq!(who, Identity::Anonymous);
    assert!(g.may_subscribe(&who, "#"));
    assert!(g.may_publish(&who, "carebridge/in/anything"));
}

#[test]
fn the_per_address_cap_is_released_by_disconnects() {
    let settings = AuthSettings {
        limits: LimitsConfig {
            per_address: 2,
            ..Default::default()
        },
        ..lan()
    };
    let (g, _d, _) = gate(settings);
    assert!(g.accept(ROGUE).is_ok());
    assert!(g.accept(ROGUE).is_ok());
    assert!(matches!(g.accept(ROGUE), Err(Refusal::Throttled { .. })));
    assert_eq!(g.stats().refused(Cause::TooManyConnections), 1);
    g.disconnected(ROGUE);
    assert!(g.accept(ROGUE).is_ok());
}

#[test]
fn failures_reach_the_alarm_channel() {
    let (g, _d, _) = gate(lan());
    let (tx, mut rx) = mpsc::channel(8);
    let g = g.with_alarm(tx);
    let _ = g.connect(ROGUE, "x", Some("nobody"), Some(b"x"));
    assert_eq!(rx.try_recv().unwrap(), ROGUE);
}
