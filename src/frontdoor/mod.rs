//! The device-facing MQTT listener ("front door"): Wi-Fi devices and local
//! clients connect here; readings published to `carebridge/in/<id>` are
//! acknowledged only once committed to SQLite; everything else is checked by
//! the access [`gate::Gate`] and passed to the embedded broker (rumqttd).

pub mod gate;
