//! The serial line protocol: splitting and parsing never panic; accepted
//! readings are finite.
#![no_main]
use carebridge::ingest::line::{LineSplitter, parse_line};
use carebridge::model::Time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut s = LineSplitter::default();
    s.push(data, |l| {
        if let Ok(b) = l
            && let Ok(text) = std::str::from_utf8(b)
            && let Ok(Some(r)) = parse_line(text, Time(0), data.first() == Some(&b'!'))
        {
            assert!(r.value.is_finite());
        }
    });
});
