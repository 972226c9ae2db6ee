//! Device secrets: generated from ring's system random source, stored only
//! as a salted MAC, checked in constant time.
//!
//! Why HMAC-SHA256 and not a slow password hash (PBKDF2, as the web UI's
//! accounts use): a generated secret carries 128 bits of randomness, so
//! nobody can enumerate it however fast the hash is; a slow hash would only
//! make every device connection (and every guess from a rogue device) cost
//! the gateway tens of milliseconds of CPU, a lever for exhausting it. A
//! secret pushed by `cmd/config` must be at least 24 characters and is
//! expected to be generated the same way. The salt (16 random bytes per
//! credential) keys the MAC, so equal secrets never give equal records and
//! no precomputed table applies. `ring::hmac::verify` compares in constant
//! time.

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::devauth::record::{MAC_LEN, SALT_LEN};

/// Random bytes of a generated secret (128 bits).
pub const SECRET_BYTES: usize = 16;

/// Why no random bytes could be had (the OS source failed).
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct NoRandom;

/// A new secret as text (32 lower-case hex characters) and a new salt.
pub fn generate() -> Result<(String, [u8; SALT_LEN]), NoRandom> {
    let rng = SystemRandom::new();
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut secret).map_err(|_| NoRandom)?;
    Ok((hex::encode(secret), salt()?))
}

/// A new random salt.
pub fn salt() -> Result<[u8; SALT_LEN], NoRandom> {
    let mut s = [0u8; SALT_LEN];
    SystemRandom::new().fill(&mut s).map_err(|_| NoRandom)?;
    Ok(s)
}

/// HMAC-SHA256 of `secret` keyed by `salt`.
pub fn mac(salt: &[u8; SALT_LEN], secret: &[u8]) -> [u8; MAC_LEN] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
    let tag = ring::hmac::sign(&key, secret);
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Does `secret` match the record's MAC (constant time)?
pub fn verify(salt: &[u8; SALT_LEN], expected: &[u8; MAC_LEN], secret: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
    ring::hmac::verify(&key, secret, expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_verifies_and_a_wrong_one_does_not() {
        let (secret, salt) = generate().unwrap();
        assert_eq!(secret.len(), 32);
        let m = mac(&salt, secret.as_bytes());
        assert!(verify(&salt, &m, secret.as_bytes()));
        assert!(!verify(&salt, &m, b"not it"));
        let mut other = salt;
        other[0] ^= 1;
        assert!(
            !verify(&other, &m, secret.as_bytes()),
            "the salt keys the MAC"
        );
        let (s2, _) = generate().unwrap();
        assert_ne!(secret, s2);
    }
}
