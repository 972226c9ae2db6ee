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
//! - after 5 failed logins from one address each further attempt waits
//!   (doubling, capped at 30 s); 100 failures lock the address or the
//!   account out for an hour.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// PBKDF2 iteration count (OWASP 2023 guidance for HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Failures after which every attempt from an address is delayed.
pub const THROTTLE_AFTER: u32 = 5;
/// Failures after which an address or account is locked out.
pub const LOCKOUT_AFTER: u32 = 100;
pub const LOCKOUT_FOR: Duration = Duration::from_secs(3600);
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

/// Sessions beyond this are refused creation after evicting the oldest.
const MAX_SESSIONS: usize = 256;

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
        if self.map.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
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

#[derive(Clone, Copy, Debug)]
struct Strikes {
    failures: u32,
    last: Instant,
}

/// Failed-login bookkeeping per client address and per account name.
#[derive(Debug, Default)]
pub struct Throttle {
    by_addr: HashMap<IpAddr, Strikes>,
    by_user: HashMap<String, Strikes>,
}

/// Addresses/accounts remembered; beyond it the stalest entry goes.
const MAX_TRACKED: usize = 4096;

fn wait_for(s: &Strikes, now: Instant) -> Option<Duration> {
    let since = now.duration_since(s.last);
    let need = if s.failures >= LOCKOUT_AFTER {
        LOCKOUT_FOR
    } else if s.failures >= THROTTLE_AFTER {
        let exp = (s.failures - THROTTLE_AFTER).min(5);
        Duration::from_secs(1u64 << exp).min(Duration::from_secs(30))
    } else {
        Duration::ZERO
    };
    need.checked_sub(since).filter(|d| !d.is_zero())
}

fn strike<K: std::hash::Hash + Eq + Clone>(m: &mut HashMap<K, Strikes>, k: &K, now: Instant) {
    if m.len() >= MAX_TRACKED
        && !m.contains_key(k)
        && let Some(old) = m.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone())
    {
        m.remove(&old);
    }
    let s = m.entry(k.clone()).or_insert(Strikes {
        failures: 0,
        last: now,
    });
    s.failures = s.failures.saturating_add(1);
    s.last = now;
}

impl Throttle {
    /// `Err(wait)` when a login attempt from `addr` for `user` must wait.
    pub fn check(&self, addr: IpAddr, user: &str, now: Instant) -> Result<(), Duration> {
        let a = self.by_addr.get(&addr).and_then(|s| wait_for(s, now));
        let u = self.by_user.get(user).and_then(|s| {
            // Accounts are only locked out, never slowed (that is the
            // address's job), so one attacker cannot slow the installer.
            (s.failures >= LOCKOUT_AFTER)
                .then(|| wait_for(s, now))
                .flatten()
        });
        match a.max(u) {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    /// Records a failure; returns true when this one triggered a lockout.
    pub fn failure(&mut self, addr: IpAddr, user: &str, now: Instant) -> bool {
        strike(&mut self.by_addr, &addr, now);
        strike(&mut self.by_user, &user.to_string(), now);
        let hit = |s: Option<&Strikes>| s.is_some_and(|s| s.failures == LOCKOUT_AFTER);
        hit(self.by_addr.get(&addr)) || hit(self.by_user.get(user))
    }

    pub fn success(&mut self, addr: IpAddr, user: &str) {
        self.by_addr.remove(&addr);
        self.by_user.remove(user);
    }

    pub fn clear(&mut self) {
        self.by_addr.clear();
        self.by_user.clear();
    }
}

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
    fn throttle_slows_an_address_after_five_failures_and_locks_at_one_hundred() {
        let mut th = Throttle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut now = Instant::now();
        for _ in 0..THROTTLE_AFTER {
            assert!(th.check(ip, "admin", now).is_ok());
            th.failure(ip, "admin", now);
        }
        let wait = th.check(ip, "admin", now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(
            th.check(other, "admin", now).is_ok(),
            "other addresses unaffected"
        );
        let mut locked = false;
        for _ in THROTTLE_AFTER..LOCKOUT_AFTER {
            now += Duration::from_secs(31);
            assert!(th.check(ip, "admin", now).is_ok());
            locked = th.failure(ip, "admin", now);
        }
        assert!(locked, "the hundredth failure locks");
        assert!(
            th.check(ip, "admin", now + Duration::from_secs(1800))
                .is_err()
        );
        assert!(
            th.check(other, "admin", now + Duration::from_secs(60))
                .is_err(),
            "the account is locked from everywhere"
        );
        assert!(th.check(ip, "admin", now + LOCKOUT_FOR).is_ok());
        th.success(ip, "admin");
        assert!(th.check(ip, "admin", now).is_ok());
    }

    #[test]
    fn constant_time_compare_matches_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
