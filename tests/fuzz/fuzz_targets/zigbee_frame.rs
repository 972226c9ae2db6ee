//! ZNP framing: `decode` never panics, and the streaming decoder, fed the
//! input in arbitrary chunks, never panics and only yields frames that
//! re-encode to bytes present in the input.
#![no_main]
use carebridge::zigbee::frame::{self, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = frame::decode(data);
    let split = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    let mut d = Decoder::new();
    for chunk in data.chunks(split) {
        d.push(chunk);
        while let Some(f) = d.next_frame() {
            let bytes = f.to_bytes();
            assert!(data.windows(bytes.len()).any(|w| w == bytes.as_slice()));
        }
    }
    while d.pending() > 0 {
        d.skip_stalled();
        while d.next_frame().is_some() {}
    }
});
