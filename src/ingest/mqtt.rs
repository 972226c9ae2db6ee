//! (local MQTT ingest: being built)
