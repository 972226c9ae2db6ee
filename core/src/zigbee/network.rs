//! The network parameters a coordinator stick holds, and what the gateway
//! remembers about joined devices: serialised to bytes so the caller can
//! persist them (the store's kv table) and write them back to a replaced
//! stick.
//!
//! Invariant: `from_bytes(to_bytes(p)) == p`; the byte format is JSON with a
//! `v` version field, so older gateways' blobs stay readable.

use serde::{Deserialize, Serialize};

/// Where the caller keeps the network parameters (e.g. the store's kv table).
pub trait NetworkStore: Send + 'static {
    fn load(&self) -> Option<Vec<u8>>;
    fn save(&self, bytes: &[u8]);
}

/// A store that keeps nothing (tests, first runs without persistence).
#[derive(Debug, Default)]
pub struct MemoryStore(pub std::sync::Mutex<Option<Vec<u8>>>);

impl NetworkStore for MemoryStore {
    fn load(&self) -> Option<Vec<u8>> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
    fn save(&self, bytes: &[u8]) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(bytes.to_vec());
        }
    }
}

impl<T: NetworkStore + Sync> NetworkStore for std::sync::Arc<T> {
    fn load(&self) -> Option<Vec<u8>> {
        (**self).load()
    }
    fn save(&self, bytes: &[u8]) {
        (**self).save(bytes)
    }
}

/// A device the coordinator has interviewed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub ieee: u64,
    pub nwk: u16,
    /// IAS zone type, when the device has an IAS zone.
    #[serde(default)]
    pub zone_type: Option<u16>,
    /// Endpoint holding the IAS zone cluster (for enroll responses).
    #[serde(default)]
    pub zone_endpoint: Option<u8>,
    /// The Basic cluster's manufacturer name and model id (the device
    /// library's keys), when the device answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Server clusters of all its endpoints (shown for unknown devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<u16>,
}

/// The network a coordinator runs, plus the devices it knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkParams {
    pub pan_id: u16,
    pub ext_pan_id: u64,
    pub channel: u8,
    pub network_key: [u8; 16],
    #[serde(default)]
    pub devices: Vec<KnownDevice>,
}

#[derive(Serialize, Deserialize)]
struct Versioned {
    v: u32,
    #[serde(flatten)]
    p: NetworkParams,
}

#[derive(Debug, thiserror::Error)]
#[error("stored Zigbee network parameters are unreadable: {0}")]
pub struct ParamsError(String);

impl NetworkParams {
    /// Fresh parameters from 26 random bytes (the shell draws them from
    /// `ring::rand::SystemRandom`). PAN ids 0x0000 and ≥ 0xFFF0 are avoided.
    pub fn from_random(channel: u8, r: &[u8; 26]) -> Self {
        let pan = u16::from_le_bytes([r[0], r[1]]) % 0xFFEE + 1;
        let mut ext = [0u8; 8];
        ext.copy_from_slice(&r[2..10]);
        let mut key = [0u8; 16];
        key.copy_from_slice(&r[10..26]);
        let mut ext_pan_id = u64::from_le_bytes(ext);
        if ext_pan_id == 0 || ext_pan_id == u64::MAX {
            ext_pan_id = 0xCA2E_B21D_6E00_0001;
        }
        NetworkParams {
            pan_id: pan,
            ext_pan_id,
            channel,
            network_key: key,
            devices: Vec::new(),
        }
    }
    /// Channel bitmask as Z-Stack wants it (bit n = channel n).
    pub fn channel_mask(&self) -> u32 {
        1u32.checked_shl(u32::from(self.channel)).unwrap_or(0)
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Versioned {
            v: 1,
            p: self.clone(),
        })
        .unwrap_or_default()
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self, ParamsError> {
        let v: Versioned = serde_json::from_slice(b).map_err(|e| ParamsError(e.to_string()))?;
        if v.v != 1 {
            return Err(ParamsError(format!("unknown version {}", v.v)));
        }
        Ok(v.p)
    }
    /// Same radio network (ignores the device list).
    pub fn same_network(&self, o: &NetworkParams) -> bool {
        self.pan_id == o.pan_id
            && self.ext_pan_id == o.ext_pan_id
            && self.channel == o.channel
            && self.network_key == o.network_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn params_round_trip_through_bytes(r in proptest::array::uniform32(any::<u8>()), ch in 11u8..=26, nwk in any::<u16>()) {
            let mut rr = [0u8; 26];
            rr.copy_from_slice(&r[..26]);
            let mut p = NetworkParams::from_random(ch, &rr);
            p.devices.push(KnownDevice { ieee: 1, nwk, zone_type: Some(0x2c), zone_endpoint: Some(1), manufacturer: None, model: None, clusters: vec![] });
            p.devices.push(KnownDevice { ieee: 2, nwk: nwk ^ 1, zone_type: None, zone_endpoint: None, manufacturer: Some("LUMI".into()), model: Some("lumi.sensor_magnet.aq2".into()), clusters: vec![0, 6] });
            prop_assert!(p.pan_id != 0 && p.pan_id < 0xFFF0);
            prop_assert_eq!(NetworkParams::from_bytes(&p.to_bytes()).unwrap(), p);
        }
    }

    #[test]
    fn blobs_of_older_gateways_without_device_identity_still_load() {
        let old = br#"{"v":1,"pan_id":1,"ext_pan_id":2,"channel":15,"network_key":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],"devices":[{"ieee":5,"nwk":6,"zone_type":null}]}"#;
        let p = NetworkParams::from_bytes(old).unwrap();
        assert_eq!(p.devices[0].model, None);
        assert!(p.devices[0].clusters.is_empty());
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        assert!(NetworkParams::from_bytes(b"\xff\x00").is_err());
        assert!(NetworkParams::from_bytes(br#"{"v":9}"#).is_err());
    }
}
