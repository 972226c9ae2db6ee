//! Fuzzes modem output: line framing, both dialect parsers, and the driver
//! state machine fed arbitrary lines at arbitrary times (must never panic).
#![no_main]

use carebridge::model::Time;
use carebridge::uplink::lorawan::at::{self, Framed, LineFramer};
use carebridge::uplink::lorawan::modem::{Driver, ModemSettings, Timeouts};
use carebridge::uplink::lorawan::rak3172::Rak3172;
use carebridge::uplink::lorawan::wio_e5::WioE5;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let settings = ModemSettings {
        region: "EU868".into(),
        dev_eui: [1; 8],
        join_eui: [2; 8],
        app_key: [3; 16],
        data_rate: 5,
        adr: false,
        retransmissions: 0,
    };
    let mut drivers = [
        Driver::new(Box::new(Rak3172), settings.clone(), Timeouts::default(), Time(0)),
        Driver::new(Box::new(WioE5), settings, Timeouts::default(), Time(0)),
    ];
    let mut framer = LineFramer::new();
    let mut now = 0i64;
    for chunk in data.chunks(7) {
        for f in framer.push(chunk) {
            let (Framed::Line(l) | Framed::Overlong(l)) = f;
            let _ = at::parse_rak3172(&l);
            let _ = at::parse_wio_e5(&l);
            for d in &mut drivers {
                d.handle_line(&l, Time(now));
                let _ = d.join(Time(now));
                let _ = d.send(1, 2, &[1, 2, 3], now % 2 == 0, Time(now));
                while d.poll_transmit().is_some() {}
                while d.poll_event().is_some() {}
            }
        }
        now += i64::from(chunk[0]) * 97;
        for d in &mut drivers {
            d.handle_timeout(Time(now));
        }
    }
});
