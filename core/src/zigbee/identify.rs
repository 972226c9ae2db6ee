//! The ZCL Identify cluster (0x0003): the one command carebridge sends so an
//! installer can tell which of several identical new devices is which (the
//! device blinks or beeps for the given time).
//!
//! Pure bytes in, bytes out, as the rest of [`super::zcl`]: [`identify`]
//! builds the frame (client → server, cluster-specific command 0x00 with a
//! little-endian u16 identify time in seconds); [`decode_identify`] reads it
//! back (the simulated stick and the tests use it).

use super::zcl::Header;

/// Identify cluster id.
pub const CLUSTER: u16 = 0x0003;
/// Identify command (client → server).
pub const IDENTIFY: u8 = 0x00;
/// The longest identify carebridge asks for (the attribute is a u16, but a
/// device that blinks for hours only flattens its battery).
pub const MAX_SECS: u16 = 300;

/// Why bytes are not an Identify command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    #[error("identify frame: {0} bytes, need 5 (header 3 + identify time 2)")]
    Short(usize),
    #[error(
        "identify frame: byte 0 (frame control) {0:#04x} is not a cluster-specific client command"
    )]
    NotClusterCommand(u8),
    #[error("identify frame: byte 2 (command) {0:#04x} is not Identify (0x00)")]
    NotIdentify(u8),
}

/// The Identify command asking the device to identify for `secs` seconds
/// (capped at [`MAX_SECS`]; 0 stops identifying). A default response is
/// requested, so a device that got it answers.
pub fn identify(seq: u8, secs: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    Header {
        cluster_specific: true,
        manufacturer: None,
        server_to_client: false,
        disable_default_rsp: false,
        seq,
        command: IDENTIFY,
    }
    .encode(&mut out);
    out.extend_from_slice(&secs.min(MAX_SECS).to_le_bytes());
    out
}

/// The identify time (seconds) of an Identify command frame: `(seq, secs)`.
pub fn decode_identify(data: &[u8]) -> Result<(u8, u16), IdentifyError> {
    if data.len() < 5 {
        return Err(IdentifyError::Short(data.len()));
    }
    let fc = data[0];
    // Cluster-specific (bits 0-1 = 01), no manufacturer code, client → server.
    if fc & 0x03 != 0x01 || fc & 0x04 != 0 || fc & 0x08 != 0 {
        return Err(IdentifyError::NotClusterCommand(fc));
    }
    if data[2] != IDENTIFY {
        return Err(IdentifyError::NotIdentify(data[2]));
    }
    Ok((data[1], u16::from_le_bytes([data[3], data[4]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_for_ten_seconds_is_these_five_bytes() {
        // fc 0x01 (cluster-specific, client → server, default response wanted),
        // seq 0x2a, command 0x00, time 10 s little-endian.
        assert_eq!(identify(0x2a, 10), vec![0x01, 0x2a, 0x00, 0x0a, 0x00]);
        assert_eq!(
            decode_identify(&[0x01, 0x2a, 0x00, 0x0a, 0x00]),
            Ok((0x2a, 10))
        );
    }

    #[test]
    fn identify_time_is_capped_at_five_minutes() {
        assert_eq!(identify(1, u16::MAX)[3..], 300u16.to_le_bytes());
        assert_eq!(decode_identify(&identify(7, 0)), Ok((7, 0)));
    }

    #[test]
    fn other_frames_are_not_read_as_identify_and_the_error_names_the_byte() {
        assert_eq!(
            decode_identify(&[0x01, 0x00, 0x00]),
            Err(IdentifyError::Short(3))
        );
        // A global read attributes (fc 0x00).
        assert_eq!(
            decode_identify(&[0x00, 1, 0x00, 0, 0]),
            Err(IdentifyError::NotClusterCommand(0x00))
        );
        // Identify Query (0x01).
        assert_eq!(
            decode_identify(&[0x01, 1, 0x01, 0, 0]),
            Err(IdentifyError::NotIdentify(0x01))
        );
        let e = decode_identify(&[0x09, 1, 0x00, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("byte 0"), "{e}");
    }
}
