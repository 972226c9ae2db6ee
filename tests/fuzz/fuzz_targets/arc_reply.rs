//! Fuzzes what an alarm receiving centre sends back: DC-09 reply framing,
//! decryption with a key and without, and the NAK timestamp rule (must
//! never panic, whatever the bytes).
#![no_main]

use carebridge::model::Time;
use carebridge::uplink::arc::{Key, frame, reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::new(b"0123456789ABCDEF").ok();
    for k in [None, key.as_ref()] {
        let mut buf = data;
        // Walk the buffer frame by frame, as the client reads a stream.
        while !buf.is_empty() {
            match reply::decode_reply(buf, k) {
                Ok((Some(r), used)) => {
                    let _ = reply::nak_action(&r, Time::from_secs(1_800_000_000), 0, 20_000);
                    buf = &buf[used..];
                }
                Ok((None, used)) => buf = &buf[used..],
                Err(_) => break,
            }
        }
        let _ = frame::decode(data, |_| k);
    }
});
