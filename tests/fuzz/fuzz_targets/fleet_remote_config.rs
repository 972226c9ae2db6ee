//! `cmd/config` bodies from the cloud: the envelope (JSON or TOML, maybe
//! signed) and a configuration fragment merged over the defaults must
//! never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = || Ok(carebridge::ota::keys::TrustStore::from_keys([("k".to_string(), [7u8; 32])]));
    if let Ok(o) = carebridge::remote_config::open(data, "gw", false, trust)
        && let Some(frag) = o.body.get("config")
        && let Ok(text) = carebridge::remote_config::fragment_text(frag)
    {
        let _ = carebridge::config::check_fragment(&Default::default(), &text, "fuzz");
    }
});
