//! AES-CBC as DC-09 uses it: a 128, 192 or 256-bit key, an all-zero IV, no
//! block padding of its own (the message pads its plaintext to a multiple of
//! 16 bytes before encrypting, see [`super::frame`]). The block cipher is
//! RustCrypto's `aes`; CBC chaining is the few lines below.

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};

/// An AES key of one of the three sizes DC-09 allows.
#[derive(Clone)]
pub enum Key {
    Aes128(Box<aes::Aes128>),
    Aes192(Box<aes::Aes192>),
    Aes256(Box<aes::Aes256>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        write!(f, "Key(AES-{})", self.bits())
    }
}

/// A key of the wrong length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an AES key is 16, 24 or 32 bytes, not {0}")]
pub struct KeyLengthError(pub usize);

impl Key {
    pub fn new(bytes: &[u8]) -> Result<Key, KeyLengthError> {
        let err = || KeyLengthError(bytes.len());
        Ok(match bytes.len() {
            16 => Key::Aes128(Box::new(
                aes::Aes128::new_from_slice(bytes).map_err(|_| err())?,
            )),
            24 => Key::Aes192(Box::new(
                aes::Aes192::new_from_slice(bytes).map_err(|_| err())?,
            )),
            32 => Key::Aes256(Box::new(
                aes::Aes256::new_from_slice(bytes).map_err(|_| err())?,
            )),
            _ => return Err(err()),
        })
    }

    pub fn bits(&self) -> u32 {
        match self {
            Key::Aes128(_) => 128,
            Key::Aes192(_) => 192,
            Key::Aes256(_) => 256,
        }
    }

    fn encrypt_block(&self, b: &mut [u8; 16]) {
        let b = GenericArray::from_mut_slice(b);
        match self {
            Key::Aes128(k) => k.encrypt_block(b),
            Key::Aes192(k) => k.encrypt_block(b),
            Key::Aes256(k) => k.encrypt_block(b),
        }
    }

    fn decrypt_block(&self, b: &mut [u8; 16]) {
        let b = GenericArray::from_mut_slice(b);
        match self {
            Key::Aes128(k) => k.decrypt_block(b),
            Key::Aes192(k) => k.decrypt_block(b),
            Key::Aes256(k) => k.decrypt_block(b),
        }
    }

    /// CBC-encrypts `data` in place with a zero IV. `None` when its length
    /// is not a multiple of 16 (the caller pads first).
    pub fn encrypt(&self, data: &mut [u8]) -> Option<()> {
        if !data.len().is_multiple_of(16) {
            return None;
        }
        let mut prev = [0u8; 16];
        for chunk in data.chunks_exact_mut(16) {
            let mut b = [0u8; 16];
            for (i, x) in b.iter_mut().enumerate() {
                *x = chunk[i] ^ prev[i];
            }
            self.encrypt_block(&mut b);
            chunk.copy_from_slice(&b);
            prev = b;
        }
        Some(())
    }

    /// CBC-decrypts `data` in place with a zero IV. `None` when its length
    /// is not a multiple of 16.
    pub fn decrypt(&self, data: &mut [u8]) -> Option<()> {
        if !data.len().is_multiple_of(16) {
            return None;
        }
        let mut prev = [0u8; 16];
        for chunk in data.chunks_exact_mut(16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(chunk);
            let cipher = b;
            self.decrypt_block(&mut b);
            for (i, x) in chunk.iter_mut().enumerate() {
                *x = b[i] ^ prev[i];
            }
            prev = cipher;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbc_matches_the_nist_sp800_38a_vector() {
        // SP 800-38A F.2.1 CBC-AES128.Encrypt, first two blocks, but with a
        // zero IV the first block equals ECB: check ECB block 1 (F.1.1) and
        // chaining through our own decrypt.
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let k = Key::new(&key).unwrap();
        let mut b = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        k.encrypt(&mut b).unwrap();
        assert_eq!(hex::encode(&b), "3ad77bb40d7a3660a89ecaf32466ef97");
        let mut two =
            hex::decode("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
                .unwrap();
        let plain = two.clone();
        k.encrypt(&mut two).unwrap();
        assert_ne!(&two[16..], &plain[16..]);
        k.decrypt(&mut two).unwrap();
        assert_eq!(two, plain);
    }

    #[test]
    fn keys_of_other_lengths_are_refused_by_length() {
        assert_eq!(Key::new(&[0; 15]).unwrap_err(), KeyLengthError(15));
        assert_eq!(Key::new(&[0; 24]).unwrap().bits(), 192);
        assert_eq!(Key::new(&[0; 32]).unwrap().bits(), 256);
        assert!(Key::new(&[0; 16]).unwrap().encrypt(&mut [0; 15]).is_none());
    }
}
