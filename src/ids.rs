//! Unique ids for records that leave the gateway (alerts, telemetry,
//! status documents): UUID v4 from the OS random generator (ring's
//! `SystemRandom`), fetched 4 KiB at a time (one syscall per 256 ids); the
//! `uuid` crate sets the version and variant bits and formats them.
//!
//! Invariant: ids are unique even if the OS generator fails (then a time
//! and counter based id is used, still in the v4 layout).

use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug)]
pub struct IdGen {
    rng: SystemRandom,
    random: Vec<u8>,
    pos: usize,
    fallback: u64,
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen {
            rng: SystemRandom::new(),
            random: Vec::new(),
            pos: 0,
            fallback: 0,
        }
    }
}

impl IdGen {
    /// A fresh UUID v4, lower-case hyphenated.
    pub fn next_id(&mut self) -> String {
        if self.pos + 16 > self.random.len() {
            self.random.resize(4096, 0);
            if self.rng.fill(&mut self.random).is_err() {
                // The OS RNG failing is near impossible; stay unique anyway.
                self.random.clear();
            }
            self.pos = 0;
        }
        let mut b = [0u8; 16];
        match self.random.get(self.pos..self.pos + 16) {
            Some(chunk) => {
                b.copy_from_slice(chunk);
                self.pos += 16;
            }
            None => {
                self.fallback += 1;
                b[..8].copy_from_slice(&crate::wall::now().as_millis().to_be_bytes());
                b[8..].copy_from_slice(&self.fallback.to_be_bytes());
            }
        }
        uuid_v4(b)
    }
}

/// A v4 UUID from 16 random bytes (RFC 9562 layout), lower-case hyphenated.
fn uuid_v4(b: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v4_uuids_and_distinct_across_buffer_refills() {
        let mut g = IdGen::default();
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| g.next_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(5) {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn uuid_v4_has_version_and_variant_bits() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn ids_parse_back_as_v4_uuids() {
        let id = IdGen::default().next_id();
        let u = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(u.get_version(), Some(uuid::Version::Random));
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(u.hyphenated().to_string(), id);
    }
}
