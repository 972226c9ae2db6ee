use proptest::prelude::*;

use super::*;

fn dev(s: &str) -> Account {
    Account::Device(DeviceId::new(s).unwrap())
}

fn policy() -> Policy {
    Policy {
        ha: Some(HaTopics {
            discovery_prefix: "homeassistant".into(),
            state_prefix: "carebridge/ha".into(),
        }),
    }
}

#[test]
fn a_device_publishes_only_its_own_readings() {
    let p = policy();
    let me = dev("pendant");
    assert!(p.may_publish(&me, "carebridge/in/pendant"));
    for t in [
        "carebridge/in/door",
        "carebridge/in/pendant/x",
        "carebridge/in/pendantx",
        "carebridge/in/",
        "carebridge/cmd/pendant/set",
        "homeassistant/status",
        "carebridge/in/+",
        "",
    ] {
        assert!(!p.may_publish(&me, t), "{t}");
    }
}

#[test]
fn a_device_subscribes_only_under_its_own_command_topics() {
    let p = policy();
    let me = dev("pendant");
    for f in [
        "carebridge/cmd/pendant/#",
        "carebridge/cmd/pendant",
        "carebridge/cmd/pendant/+",
        "carebridge/cmd/pendant/led/+",
    ] {
        assert!(p.may_subscribe(&me, f), "{f}");
    }
    for f in [
        "#",
        "+/#",
        "carebridge/#",
        "carebridge/cmd/#",
        "carebridge/cmd/+/#",
        "carebridge/cmd/+",
        "carebridge/cmd/door/#",
        "carebridge/in/pendant",
        "carebridge/ha/home-1/#",
        "carebridge/cmd/pendant/#/x",
        "carebridge/cmd/pendant/a#",
    ] {
        assert!(!p.may_subscribe(&me, f), "{f}");
    }
}

#[test]
fn home_assistant_reads_its_topics_and_nothing_else() {
    let p = policy();
    let ha = Account::HomeAssistant;
    for f in [
        "homeassistant/#",
        "homeassistant/binary_sensor/+/+/config",
        "carebridge/ha/home-1/#",
        "carebridge/ha/+/pendant/panic",
    ] {
        assert!(p.may_subscribe(&ha, f), "{f}");
    }
    for f in [
        "#",
        "carebridge/#",
        "carebridge/in/#",
        "+/ha/#",
        "carebridge/cmd/#",
    ] {
        assert!(!p.may_subscribe(&ha, f), "{f}");
    }
    assert!(p.may_publish(&ha, "homeassistant/status"));
    assert!(!p.may_publish(&ha, "carebridge/in/pendant"));
    assert!(!p.may_publish(&ha, "carebridge/ha/home-1/pendant/panic"));
    // Without [homeassistant], the account may do nothing.
    let off = Policy::default();
    assert!(!off.may_subscribe(&ha, "homeassistant/#"));
    assert!(!off.may_publish(&ha, "homeassistant/status"));
}

#[test]
fn the_legacy_account_publishes_readings_for_any_device_and_reads_commands_only() {
    let p = policy();
    let l = Account::Legacy;
    assert!(p.may_publish(&l, "carebridge/in/pendant"));
    assert!(p.may_publish(&l, "carebridge/in/door"));
    assert!(!p.may_publish(&l, "carebridge/in/a/b"));
    assert!(!p.may_publish(&l, "homeassistant/status"));
    assert!(p.may_subscribe(&l, "carebridge/cmd/#"));
    assert!(!p.may_subscribe(&l, "#"));
    assert!(!p.may_subscribe(&l, "carebridge/ha/#"));
}

#[test]
fn anonymous_keeps_the_open_permissions_but_not_malformed_filters() {
    let p = policy();
    let a = Account::Anonymous;
    assert!(p.may_subscribe(&a, "#"));
    assert!(p.may_publish(&a, "anything/at/all"));
    assert!(!p.may_subscribe(&a, "a/#/b"));
    assert!(!p.may_publish(&a, "a/+"));
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("".to_string()),
        Just("+".to_string()),
        Just("#".to_string()),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5)
        .prop_map(|v| v.join("/"))
        .prop_filter("well-formed", |f| valid_filter(f))
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("")], 1..6)
        .prop_map(|v| v.join("/"))
}

proptest! {
    /// Soundness: a filter judged within `allowed` never matches a topic
    /// that `allowed` does not.
    #[test]
    fn a_filter_within_another_never_matches_more(f in filter(), a in filter(), t in topic()) {
        if filter_within(&f, &a) && matches(&f, &t) {
            prop_assert!(matches(&a, &t), "{f} within {a}, matches {t}");
        }
    }

    /// Every filter is within itself and within `#`.
    #[test]
    fn a_filter_is_within_itself_and_within_everything(f in filter()) {
        prop_assert!(filter_within(&f, &f));
        prop_assert!(filter_within(&f, "#"));
    }

    /// No device ever gets a filter that matches another device's commands.
    #[test]
    fn no_device_subscription_reaches_another_device(f in "[a-z+#/]{0,12}", other in "[a-z]{1,4}") {
        let p = policy();
        let me = dev("me");
        let f = format!("carebridge/cmd/{f}");
        if p.may_subscribe(&me, &f) && other != "me" {
            let (t1, t2) = (format!("carebridge/cmd/{other}/x"), format!("carebridge/cmd/{other}"));
            prop_assert!(!matches(&f, &t1));
            prop_assert!(!matches(&f, &t2));
        }
    }
}
