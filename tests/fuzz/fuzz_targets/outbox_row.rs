//! A stored telemetry row made into the document published upstream
//! (`store::outbox::telemetry_doc`): whatever the stored bytes (a row of
//! any release, a damaged file), it never panics; a stored JSON object
//! body comes out as a JSON object with the row's `id` and `seq` first and
//! every key of the body after them; anything else is published unchanged.
#![no_main]

use carebridge::store::outbox::telemetry_doc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (id, stored) = rest.split_at(usize::from(n).min(rest.len()));
    let id = String::from_utf8_lossy(id);
    let seq = u64::from(n) * 1_000_003;
    let out = telemetry_doc(&id, seq, stored.to_vec());
    let body = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(stored);
    match body {
        Ok(body) if stored.starts_with(b"{") && !stored.starts_with(br#"{"id":"#) => {
            let doc: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&out).expect("a body becomes a JSON object");
            // (A body that names them itself has the last word, as JSON does.)
            if !body.contains_key("id") && !body.contains_key("seq") {
                assert_eq!(doc.get("id").and_then(|v| v.as_str()), Some(&*id));
                assert_eq!(doc.get("seq").and_then(serde_json::Value::as_u64), Some(seq));
            }
            for k in body.keys().filter(|k| *k != "id" && *k != "seq") {
                assert_eq!(doc.get(k), body.get(k), "key {k} kept");
            }
        }
        _ => {
            if !stored.starts_with(b"{") || stored.starts_with(br#"{"id":"#) {
                assert_eq!(out, stored, "not a body: published as stored");
            }
        }
    }
});
