//! A stored alert row made into the document published upstream
//! (`store::outbox::alert_doc`, schema v11's compact body): whatever the
//! stored bytes (a row of any release, a damaged file), it never panics and
//! always gives a JSON object with the row's `id` and `seq` — the alert
//! itself, or an urgent one saying the body is unreadable and at which
//! byte; a body that decodes is canonical (encoding it again gives the
//! same bytes); a row stored whole (`{…`) is published as stored.
#![no_main]

use carebridge::store::outbox::{alert_doc, decode_alert_body, encode_alert_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let seq = data.len() as u64 * 7919;
    let at = carebridge::model::Time::from_millis(1_795_860_000_000);
    if let Ok(body) = decode_alert_body(data) {
        assert_eq!(encode_alert_body(&body).as_deref(), Some(data), "canonical");
    }
    let out = alert_doc("fuzz-id", seq, at, data.to_vec());
    if data.first() == Some(&b'{') {
        assert_eq!(out, data, "a whole row is published as stored");
        return;
    }
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out).expect("a JSON object");
    assert_eq!(doc.get("id").and_then(|v| v.as_str()), Some("fuzz-id"));
    assert_eq!(doc.get("seq").and_then(serde_json::Value::as_u64), Some(seq));
});
