//! The whole pure coordinator fed arbitrary bytes from the "stick" never panics.
#![no_main]
use std::time::Duration;

use carebridge::model::Time;
use carebridge::zigbee::coordinator::{Coordinator, CoordinatorConfig};
use carebridge::zigbee::network::NetworkParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = CoordinatorConfig {
        channel: 15,
        srsp_timeout: Duration::from_millis(100),
        stall_timeout: Duration::from_millis(10),
        wait_timeout: Duration::from_millis(100),
        interview_timeout: Duration::from_millis(100),
        ping_interval: Duration::from_millis(100),
        vibration_is_fall: true,
    };
    let mut c = Coordinator::new(cfg, None, NetworkParams::from_random(15, &[7; 26]), false);
    let mut now = Time(0);
    for chunk in data.chunks(17) {
        c.handle_bytes(chunk, now);
        now = Time(now.0 + 7);
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {}
        while c.poll_output().is_some() {}
    }
});
