//! Fuzzes the compact payload decoders: never panic, and whatever decodes
//! re-encodes to something that decodes to the same message.
#![no_main]

use carebridge::uplink::lorawan::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((m, used)) = codec::decode(data) {
        assert!(used <= data.len());
        let mut b = Vec::new();
        if codec::encode(&m, &mut b).is_ok() {
            assert_eq!(codec::decode(&b).map(|x| x.0), Ok(m));
        }
    }
    if let Ok((d, _)) = codec::decode_downlink(data) {
        let mut b = Vec::new();
        codec::encode_downlink(&d, &mut b);
        assert_eq!(codec::decode_downlink(&b).map(|x| x.0), Ok(d));
    }
});
