//! Fuzzes what a browser can send the web API: JSON bodies checked field by
//! field, words, free text and typed setup codes. Nothing may panic, and
//! accepted words hold only safe characters.
#![no_main]

use carebridge::web::auth::normalize_code;
use carebridge::web::validate::{Obj, password, text, word};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = Obj::parse(data, &["name", "room", "role", "seconds"]) {
        for f in ["name", "room", "role"] {
            if let Ok(Some(s)) = o.opt_str(f) {
                let _ = text(f, s, 64);
                if let Ok(w) = word(f, s, 32) {
                    assert!(w.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"_.-".contains(&b)));
                }
                let _ = password(f, s);
                let n = normalize_code(s);
                assert_eq!(normalize_code(&n), n);
            }
        }
        let _ = o.int("seconds", 1, 254);
    }
});
