//! Accounts, password hashing, sessions, the one-time setup code and login
//! throttling. Plain structs driven with `now` passed in; the HTTP layer
//! owns the locks and the persistence.
//!
//! Invariants:
//! - passwords and the setup code are stored only as PBKDF2-HMAC-SHA256
//!   (600,000 iterations, 16-byte random salt per secret) and compared in
//!   constant time (`ring::pbkdf2::verify`);
//! - session tokens and CSRF tokens are 32 bytes from `SystemRandom`; the
//!   session table is keyed by the token's SHA-256, never the token;
//! - a session ends after `idle` without use, and after 12 h in any case;
//! - at most [`MAX_SESSIONS_PER_USER`] sessions per account: one account
//!   logging in again and again evicts its own oldest session, never
//!   another account's;
//! - login throttling (growing delays, remembered devices, never an
//!   account lock-out) lives in [`super::throttle`].

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// PBKDF2 iteration count (OWASP 2023 guidance for HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Hard cap on a session's life, whatever the activity.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including configuration.
    Installer,
    /// Status, alerts and acknowledging them; no configuration.
    Carer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Installer => "installer",
            Role::Carer => "carer",
        }
    }
}

/// A salted PBKDF2 hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hashed {
    pub salt: String,
    pub hash: String,
    pub iterations: u32,
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], ring::error::Unspecified> {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b)?;
    Ok(b)
}

impl Hashed {
    /// Hashes `secret` with a fresh salt (slow on purpose: run off the runtime).
    pub fn new(secret: &str) -> Result<Hashed, ring::error::Unspecified> {
        let salt = random_bytes::<16>()?;
        let mut out = [0u8; 32];
        let n = NonZeroU32::new(PBKDF2_ITERATIONS).ok_or(ring::error::Unspecified)?;
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            &salt,
            secret.as_bytes(),
            &mut out,
        );
        Ok(Hashed {
            salt: hex::encode(salt),
            hash: hex::encode(out),
            iterations: PBKDF2_ITERATIONS,
        })
    }

    /// Constant-time check of `secret` against this hash.
    pub fn verify(&self, secret: &str) -> bool {
        let (Some(salt), Some(hash), Some(n)) = (
            hex::decode(&self.salt).ok(),
            hex::decode(&self.hash).ok(),
            NonZeroU32::new(self.iterations),
        ) else {
            return false;
        };
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            &salt,
            secret.as_bytes(),
            &hash,
        )
        .is_ok()
    }
}

/// One user account, as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub password: Hashed,
    pub created: crate::model::Time,
}

/// The setup code alphabet: no 0/O, 1/I/L confusion on a printed label.
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789X";

/// A fresh setup code, `XXXX-XXXX-XXXX` (60 bits).
pub fn new_setup_code() -> Result<String, ring::error::Unspecified> {
    let b = random_bytes::<12>()?;
    let mut s = String::with_capacity(14);
    for (i, x) in b.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(char::from(CODE_ALPHABET[usize::from(x & 31)]));
    }
    Ok(s)
}

/// Canonical form of a typed setup code: upper case, no dashes or spaces.
pub fn normalize_code(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_uppercase)
        .collect()
}

/// A logged-in session.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub created: Instant,
    pub last_used: Instant,
}

/// The session table, keyed by SHA-256 of the token.
#[derive(Debug, Default)]
pub struct Sessions {
    map: HashMap<[u8; 32], Session>,
}

/// Sessions kept at most; a new one beyond evicts the oldest session of
/// the account holding the most.
pub const MAX_SESSIONS: usize = 256;
/// Sessions kept per account; a new one beyond evicts that account's oldest.
pub const MAX_SESSIONS_PER_USER: usize = 16;

fn token_key(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl Sessions {
    /// Creates a session; returns (token, csrf token).
    pub fn create(
        &mut self,
        user: &str,
        role: Role,
        now: Instant,
    ) -> Result<(String, String), ring::error::Unspecified> {
        let token = hex::encode(random_bytes::<32>()?);
        let csrf = hex::encode(random_bytes::<32>()?);
        self.make_room(user);
        self.map.insert(
            token_key(&token),
            Session {
                user: user.to_string(),
                role,
                csrf: csrf.clone(),
                created: now,
                last_used: now,
            },
        );
        Ok((token, csrf))
    }

    /// Evicts before adding a session for `user`: its own oldest when it has
    /// [`MAX_SESSIONS_PER_USER`]; when the table is full, the oldest of the
    /// account holding the most sessions.
    fn make_room(&mut self, user: &str) {
        let oldest_of = |map: &HashMap<[u8; 32], Session>, who: &str| {
            map.iter()
                .filter(|(_, s)| s.user == who)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
        };
        let own = self.map.values().filter(|s| s.user == user).count();
        if own >= MAX_SESSIONS_PER_USER {
            if let Some(k) = oldest_of(&self.map, user) {
                self.map.remove(&k);
            }
            return;
        }
        if self.map.len() >= MAX_SESSIONS {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for s in self.map.values() {
                *counts.entry(s.user.as_str()).or_default() += 1;
            }
            let heaviest = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(u, _)| u.to_string());
            if let Some(k) = heaviest.and_then(|u| oldest_of(&self.map, &u)) {
                self.map.remove(&k);
            }
        }
    }

    /// The live session for `token`, refreshing its idle timer.
    pub fn touch(&mut self, token: &str, idle: Duration, now: Instant) -> Option<Session> {
        let key = token_key(token);
        let s = self.map.get_mut(&key)?;
        if now.duration_since(s.last_used) > idle || now.duration_since(s.created) > SESSION_MAX {
            self.map.remove(&key);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Is the session still valid? (Does not refresh it.)
    pub fn alive(&self, token: &str, idle: Duration, now: Instant) -> bool {
        self.map.get(&token_key(token)).is_some_and(|s| {
            now.duration_since(s.last_used) <= idle && now.duration_since(s.created) <= SESSION_MAX
        })
    }

    pub fn remove(&mut self, token: &str) {
        self.map.remove(&token_key(token));
    }

    /// Puts back a session taken out by [`Sessions::remove_user`].
    pub fn restore(&mut self, token: &str, s: Session) {
        self.map.insert(token_key(token), s);
    }

    /// Ends every session of `user` (deleted account, changed password).
    pub fn remove_user(&mut self, user: &str) {
        self.map.retain(|_, s| s.user != user);
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

pub use super::throttle::Throttle;

/// Constant-time equality for tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password_and_salts_differ() {
        let a = Hashed::new("correct horse").unwrap();
        let b = Hashed::new("correct horse").unwrap();
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.iterations, 600_000);
        assert!(a.verify("correct horse"));
        assert!(!a.verify("correct horsf"));
        let broken = Hashed {
            salt: "zz".into(),
            ..a
        };
        assert!(!broken.verify("correct horse"));
    }

    #[test]
    fn setup_codes_are_grouped_unambiguous_and_normalize() {
        let c = new_setup_code().unwrap();
        assert_eq!(c.len(), 14);
        assert!(!c.contains(['0', 'O', '1', 'I', 'L']));
        assert_eq!(
            normalize_code(&c.to_lowercase().replace('-', " ")),
            c.replace('-', "")
        );
        assert_ne!(c, new_setup_code().unwrap());
    }

    #[test]
    fn session_expires_after_idle_time_and_refreshes_on_use() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(60);
        let (tok, csrf) = s.create("ann", Role::Carer, t0).unwrap();
        assert_eq!(tok.len(), 64);
        assert_ne!(tok, csrf);
        assert!(s.touch(&tok, idle, t0 + Duration::from_secs(50)).is_some());
        assert!(s.touch(&tok, idle, t0 + Duration::from_secs(100)).is_some());
        assert!(s.touch(&tok, idle, t0 + Duration::from_secs(161)).is_none());
        assert!(s.is_empty(), "expired session is dropped");
        assert!(s.touch("nope", idle, t0).is_none());
    }

    #[test]
    fn session_ends_after_twelve_hours_however_busy() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let (tok, _) = s.create("ann", Role::Installer, t0).unwrap();
        let idle = Duration::from_secs(1800);
        let mut t = t0;
        while t < t0 + SESSION_MAX {
            t += Duration::from_secs(600);
            assert!(
                s.touch(&tok, idle, t).is_some(),
                "busy session alive at {t:?}"
            );
        }
        assert!(s.touch(&tok, idle, t + Duration::from_secs(600)).is_none());
    }

    #[test]
    fn one_account_logging_in_again_and_again_evicts_only_its_own_sessions() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(1800);
        let (ann, _) = s.create("ann", Role::Carer, t0).unwrap();
        let mut first = None;
        for i in 0..256u64 {
            let (t, _) = s
                .create("mallory", Role::Carer, t0 + Duration::from_millis(i + 1))
                .unwrap();
            first.get_or_insert(t);
        }
        assert!(
            s.touch(&ann, idle, t0).is_some(),
            "another account's session stays"
        );
        assert_eq!(s.len(), 1 + MAX_SESSIONS_PER_USER);
        assert!(
            s.touch(&first.unwrap(), idle, t0).is_none(),
            "its own oldest went"
        );
    }

    #[test]
    fn a_full_table_evicts_from_the_account_holding_the_most() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let idle = Duration::from_secs(1800);
        let mut ann = Vec::new();
        for u in 0..(MAX_SESSIONS / MAX_SESSIONS_PER_USER) {
            for i in 0..MAX_SESSIONS_PER_USER {
                let at = t0 + Duration::from_millis((u * 100 + i) as u64);
                let (t, _) = s.create(&format!("user{u}"), Role::Carer, at).unwrap();
                if u == 0 {
                    ann.push(t);
                }
            }
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        s.create("newcomer", Role::Carer, t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(s.len(), MAX_SESSIONS);
        // Every account holds as many: the oldest of one of them went, and
        // the newcomer got in.
        let alive = ann.iter().filter(|t| s.alive(t, idle, t0)).count();
        assert!(alive >= MAX_SESSIONS_PER_USER - 1);
    }

    #[test]
    fn constant_time_compare_matches_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
