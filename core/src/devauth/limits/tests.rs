use proptest::prelude::*;

use super::*;

const LAN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 50));
const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 51));
const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn the_first_failures_are_free_then_the_back_off_doubles_up_to_the_cap() {
    let mut l = Limits::new(LimitsConfig::default());
    assert_eq!(l.failed(LAN, s(0)), Duration::ZERO);
    assert_eq!(l.failed(LAN, s(0)), Duration::ZERO);
    assert_eq!(l.failed(LAN, s(0)), s(1));
    assert_eq!(
        l.accept(LAN, s(0)),
        Err(Refused::Throttled { retry_after: s(1) })
    );
    assert!(l.accept(OTHER, s(0)).is_ok(), "other addresses unaffected");
    assert!(l.accept(LAN, s(1)).is_ok(), "allowed again after the wait");
    assert_eq!(l.failed(LAN, s(1)), s(2));
    assert_eq!(l.failed(LAN, s(3)), s(4));
    let mut t = 7;
    let mut last = Duration::ZERO;
    for _ in 0..20 {
        last = l.failed(LAN, s(t));
        t += last.as_secs();
    }
    assert_eq!(last, s(300), "capped at backoff_max");
}

#[test]
fn a_success_or_a_quiet_spell_forgives_the_failures() {
    let mut l = Limits::new(LimitsConfig::default());
    for _ in 0..3 {
        l.failed(LAN, s(0));
    }
    l.succeeded(LAN);
    assert!(l.check(LAN, s(0)).is_ok());
    assert_eq!(l.failed(LAN, s(0)), Duration::ZERO);
    l.failed(LAN, s(0));
    // 15 minutes later the count starts again.
    assert_eq!(l.failed(LAN, s(900)), Duration::ZERO);
}

#[test]
fn connections_per_address_are_capped_except_from_the_gateway_itself() {
    let cfg = LimitsConfig {
        per_address: 2,
        ..Default::default()
    };
    let mut l = Limits::new(cfg);
    assert!(l.accept(LAN, s(0)).is_ok());
    assert!(l.accept(LAN, s(0)).is_ok());
    assert_eq!(l.accept(LAN, s(0)), Err(Refused::TooManyConnections));
    l.closed(LAN);
    assert!(l.accept(LAN, s(0)).is_ok());
    for _ in 0..10 {
        assert!(l.accept(LOCAL, s(0)).is_ok());
    }
    assert_eq!(l.open_from(LOCAL), 10);
}

#[test]
fn the_failure_records_stay_bounded_under_a_scan_of_many_addresses() {
    let cfg = LimitsConfig {
        max_tracked: 100,
        ..Default::default()
    };
    let mut l = Limits::new(cfg);
    for i in 0..10_000u32 {
        let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        l.failed(ip, s(u64::from(i)));
        assert!(l.tracked() <= 100);
    }
}

proptest! {
    /// Whatever the sequence, an address never has more than `per_address`
    /// connections open, and a throttled refusal always says when to retry.
    #[test]
    fn the_limits_hold_under_any_sequence(ops in prop::collection::vec((0u8..4, 0u8..3, 0u64..5), 1..200)) {
        let cfg = LimitsConfig { per_address: 3, ..Default::default() };
        let mut l = Limits::new(cfg);
        let mut now = Duration::ZERO;
        let ips = [LAN, OTHER, IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1))];
        for (op, who, dt) in ops {
            now += s(dt);
            let ip = ips[usize::from(who)];
            match op {
                0 => {
                    if let Err(Refused::Throttled { retry_after }) = l.accept(ip, now) {
                        prop_assert!(retry_after > Duration::ZERO);
                    }
                }
                1 => l.closed(ip),
                2 => { l.failed(ip, now); }
                _ => l.succeeded(ip),
            }
            prop_assert!(l.open_from(ip) <= 3);
        }
    }
}
