//! LoRaWAN hot paths: codec, AT line parsing, time on air, budget admission.
//! Run: `cargo bench --bench lorawan -- --quick`.

use std::hint::black_box;

use carebridge::model::{AlertState, Class, Kind, Severity, Time};
use carebridge::uplink::lorawan::airtime::{
    Budget, BudgetLimits, DEFAULT_UPLINK_HZ, eu868_data_rate, uplink_airtime,
};
use carebridge::uplink::lorawan::at;
use carebridge::uplink::lorawan::codec::{self, AlertMsg, Uplink};
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    let alert = Uplink::Alert(AlertMsg {
        kind: Some(Kind::Temperature),
        severity: Severity::Warning,
        state: AlertState::Raised,
        device_index: 300,
        age_min: 5,
        value: Some(145),
    });
    let mut buf = Vec::with_capacity(64);
    c.bench_function("lorawan/codec_encode_alert", |b| {
        b.iter(|| {
            buf.clear();
            let _ = codec::encode(black_box(&alert), &mut buf);
        })
    });
    let bytes = {
        let mut v = Vec::new();
        let _ = codec::encode(&alert, &mut v);
        v
    };
    c.bench_function("lorawan/codec_decode_alert", |b| {
        b.iter(|| codec::decode(black_box(&bytes)))
    });
    c.bench_function("lorawan/at_parse_rak_downlink", |b| {
        b.iter(|| at::parse_rak3172(black_box("+EVT:RX_1:-70:8:UNICAST:20:33000078")))
    });
    c.bench_function("lorawan/at_parse_wio_downlink", |b| {
        b.iter(|| at::parse_wio_e5(black_box("+CMSGHEX: PORT: 20; RX: \"33000078\"")))
    });
    let (Some(sf12), Some(sf7)) = (eu868_data_rate(0), eu868_data_rate(5)) else {
        return;
    };
    c.bench_function("lorawan/time_on_air", |b| {
        b.iter(|| uplink_airtime(black_box(sf12), black_box(7)))
    });
    // A day of history at SF7: ~500 alerts booked, then one admission check.
    let mut budget = Budget::new(BudgetLimits::default());
    let air = uplink_airtime(sf7, 7);
    for i in 0..500 {
        budget.record_uplink(Class::Alert, Time(i * 170_000), air, DEFAULT_UPLINK_HZ);
    }
    let now = Time(500 * 170_000);
    c.bench_function("lorawan/budget_earliest_full_day", |b| {
        b.iter(|| budget.earliest(Class::Alert, black_box(air), DEFAULT_UPLINK_HZ, now))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
