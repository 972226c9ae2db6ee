//! LoRaWAN uplink, the shell around the core's pure layers
//! ([`carebridge_core::uplink::lorawan`]): the async task [`run`] that owns
//! the serial port (a reader thread; writes are inline) and the
//! [`policy::Core`], reading the AppKey file, and `sim` (cargo feature `sim`),
//! a modem simulator on a pseudo-terminal.
//!
//! The integrator hands messages over with [`LoraUplink::send`] and gets a
//! [`Delivery`] back; join state, airtime and downlink commands arrive as
//! [`LoraEvent`]s.

use std::path::Path;

pub use carebridge_core::uplink::lorawan::*;

#[cfg(feature = "sim")]
pub mod sim;
mod task;

pub use self::task::{
    LoraClosed, LoraEvent, LoraQueue, LoraUplink, QUIET, STATE_KEY, channel, run, run_with_store,
};

/// Reads the AppKey, refusing a file that other users can read.
pub fn read_app_key(path: &Path) -> Result<[u8; 16], AppKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| AppKeyError::Read {
        path: p.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(AppKeyError::WorldReadable { path: p, mode });
    }
    let text = std::fs::read_to_string(path).map_err(|source| AppKeyError::Read {
        path: p.clone(),
        source,
    })?;
    hex::FromHex::from_hex(text.trim()).map_err(|_| AppKeyError::Format { path: p })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn app_key_file_must_be_private_and_hold_32_hex_digits() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "2B7E151628AED2A6ABF7158809CF4F3C\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_app_key(&f).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_app_key(&f).unwrap()[0], 0x2b);
        std::fs::write(&f, "2B7E").unwrap();
        assert!(matches!(read_app_key(&f), Err(AppKeyError::Format { .. })));
        assert!(matches!(
            read_app_key(&dir.path().join("none")),
            Err(AppKeyError::Read { .. })
        ));
    }
}
