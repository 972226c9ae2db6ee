//! Login throttling and remembered devices: a plain struct driven with
//! `now` passed in (the HTTP layer owns the lock).
//!
//! What a stranger can no longer do: lock the rightful user out. There is
//! no account lock-out; instead every failure slows the next attempt of
//! the same *client* (address + account), the same address (password
//! spraying across accounts) and — for clients the account has never been
//! used from — the account as a whole (guessing from many addresses), by a
//! delay that doubles and is capped at [`MAX_DELAY`]. A browser that logged
//! in before carries a remembered-device cookie (HMAC-signed, see
//! [`DeviceKey`]); its attempts are throttled only by its own failures, so
//! strangers guessing the account do not slow it down.
//!
//! Invariants:
//! - an attempt is counted **before** its password is checked
//!   ([`Throttle::begin`]), so 30 simultaneous guesses cannot all be
//!   checked: only the free ones pass, the rest wait;
//! - a throttled attempt is refused without checking the password and is
//!   not counted (hammering does not stretch the delay);
//! - a success clears only its own client's failures (address + account,
//!   or its device) and takes back its own strike from the address and the
//!   account: other accounts' failures from the same address stay counted;
//! - failures are forgotten after [`FORGET_AFTER`] without a new one;
//! - the tables are bounded ([`MAX_TRACKED`] entries each; the stalest goes).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures of one client (address + account) before it is slowed.
pub const CLIENT_FREE: u32 = 5;
/// Failures from one address (any account) before it is slowed.
pub const ADDR_FREE: u32 = 10;
/// Failures of one account from clients it was never used from before the
/// account is slowed for such clients.
pub const ACCOUNT_FREE: u32 = 10;
/// Failures with one remembered-device cookie before it is slowed.
pub const DEVICE_FREE: u32 = 5;
/// The longest any attempt has to wait.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten after this long without a new one.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Failures of one account (from anywhere) that are reported as guessing.
pub const REPORT_AT: u32 = 50;
/// Entries kept per table.
pub const MAX_TRACKED: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Strikes {
    failures: u32,
    last: Instant,
}

/// The delay after `failures` failures, `free` of them without delay:
/// 1 s, 2 s, 4 s, … up to [`MAX_DELAY`].
pub fn delay_after(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let exp = (failures - free).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

/// The remaining wait of one table entry.
fn left<K: Hash + Eq>(m: &HashMap<K, Strikes>, k: &K, free: u32, now: Instant) -> Duration {
    match m.get(k) {
        Some(s) if now.duration_since(s.last) < FORGET_AFTER => {
            delay_after(s.failures, free).saturating_sub(now.duration_since(s.last))
        }
        _ => Duration::ZERO,
    }
}

fn strike<K: Hash + Eq + Clone>(m: &mut HashMap<K, Strikes>, k: &K, now: Instant) -> u32 {
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
    if now.duration_since(s.last) >= FORGET_AFTER {
        s.failures = 0;
    }
    s.failures = s.failures.saturating_add(1);
    s.last = now;
    s.failures
}

/// Takes back one strike (the attempt succeeded).
fn unstrike<K: Hash + Eq>(m: &mut HashMap<K, Strikes>, k: &K) {
    if let Some(s) = m.get_mut(k) {
        s.failures = s.failures.saturating_sub(1);
        if s.failures == 0 {
            m.remove(k);
        }
    }
}

/// An attempt that passed the throttle and has been counted as a failure
/// until [`Throttle::succeeded`] says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    addr: IpAddr,
    user: String,
    /// The remembered device it came with, if valid for `user`.
    device: Option<[u8; 16]>,
    /// The account's failures counting this one (for the guessing report).
    pub account_failures: u32,
}

/// Failed-login bookkeeping (see the module header).
#[derive(Debug, Default)]
pub struct Throttle {
    clients: HashMap<(IpAddr, String), Strikes>,
    by_addr: HashMap<IpAddr, Strikes>,
    by_user: HashMap<String, Strikes>,
    by_device: HashMap<[u8; 16], Strikes>,
}

impl Attempt {
    /// The account it was for.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Throttle {
    /// How long an attempt for `user` from `addr` (with a remembered
    /// `device` valid for `user`, if any) has to wait; zero: go ahead.
    pub fn wait(
        &self,
        addr: IpAddr,
        user: &str,
        device: Option<[u8; 16]>,
        now: Instant,
    ) -> Duration {
        match device {
            Some(d) => left(&self.by_device, &d, DEVICE_FREE, now),
            None => left(&self.clients, &(addr, user.to_string()), CLIENT_FREE, now)
                .max(left(&self.by_addr, &addr, ADDR_FREE, now))
                .max(left(&self.by_user, &user.to_string(), ACCOUNT_FREE, now)),
        }
    }

    /// Admits and counts an attempt, or says how long to wait (not counted).
    pub fn begin(
        &mut self,
        addr: IpAddr,
        user: &str,
        device: Option<[u8; 16]>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let w = self.wait(addr, user, device, now);
        if !w.is_zero() {
            return Err(w);
        }
        let user = user.to_string();
        let account_failures = match device {
            Some(d) => {
                strike(&mut self.by_device, &d, now);
                self.by_user.get(&user).map_or(0, |s| s.failures)
            }
            None => {
                strike(&mut self.clients, &(addr, user.clone()), now);
                strike(&mut self.by_addr, &addr, now);
                strike(&mut self.by_user, &user, now)
            }
        };
        Ok(Attempt {
            addr,
            user,
            device,
            account_failures,
        })
    }

    /// The attempt was wrong (it was counted already): its delay runs from
    /// now, the moment the client learns it, however long the check took.
    pub fn failed(&mut self, a: &Attempt, now: Instant) {
        fn touch(s: Option<&mut Strikes>, now: Instant) {
            if let Some(s) = s {
                s.last = s.last.max(now);
            }
        }
        match a.device {
            Some(d) => touch(self.by_device.get_mut(&d), now),
            None => {
                touch(self.clients.get_mut(&(a.addr, a.user.clone())), now);
                touch(self.by_addr.get_mut(&a.addr), now);
                touch(self.by_user.get_mut(&a.user), now);
            }
        }
    }

    /// The attempt was right: its client's failures go, and its own
    /// strike is taken back from the address and the account.
    pub fn succeeded(&mut self, a: Attempt) {
        match a.device {
            Some(d) => {
                self.by_device.remove(&d);
            }
            None => {
                self.clients.remove(&(a.addr, a.user.clone()));
                unstrike(&mut self.by_addr, &a.addr);
                unstrike(&mut self.by_user, &a.user);
            }
        }
    }

    pub fn clear(&mut self) {
        *self = Throttle::default();
    }
}

/// The key that signs remembered-device cookies (32 random bytes, kept in
/// `<data_dir>/web/device-key`, 0600).
#[derive(Clone)]
pub struct DeviceKey(ring::hmac::Key);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

/// How long a browser is remembered after a successful login.
pub const DEVICE_MAX_AGE: Duration = Duration::from_secs(180 * 86_400);

impl DeviceKey {
    pub fn new(secret: &[u8]) -> DeviceKey {
        DeviceKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// Loads the key from `path`, or makes one there (0600).
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<DeviceKey> {
        match std::fs::read(path) {
            Ok(b) if b.len() == 32 => Ok(DeviceKey::new(&b)),
            _ => {
                let b = super::auth::random_bytes::<32>()
                    .map_err(|_| anyhow::anyhow!("no system randomness for the device key"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                super::tls::write_private(path, &b)?;
                Ok(DeviceKey::new(&b))
            }
        }
    }

    fn mac(&self, user: &str, nonce: &[u8; 16]) -> String {
        let mut msg = Vec::with_capacity(user.len() + 17);
        msg.extend_from_slice(user.as_bytes());
        msg.push(0);
        msg.extend_from_slice(nonce);
        hex::encode(&ring::hmac::sign(&self.0, &msg).as_ref()[..16])
    }

    /// A new cookie value for `user`: `<nonce>.<user hex>.<mac>`.
    pub fn issue(&self, user: &str) -> Result<String, ring::error::Unspecified> {
        let nonce = super::auth::random_bytes::<16>()?;
        Ok(format!(
            "{}.{}.{}",
            hex::encode(nonce),
            hex::encode(user),
            self.mac(user, &nonce)
        ))
    }

    /// The device id of a cookie value signed for `user`; `None` when it
    /// is malformed, forged or for another account.
    pub fn check(&self, value: &str, user: &str) -> Option<[u8; 16]> {
        let mut parts = value.splitn(3, '.');
        let (n, u, m) = (parts.next()?, parts.next()?, parts.next()?);
        let nonce: [u8; 16] = hex::decode(n).ok()?.try_into().ok()?;
        if hex::decode(u).ok()? != user.as_bytes() {
            return None;
        }
        super::auth::same(m, &self.mac(user, &nonce)).then_some(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Fails `n` attempts from `addr`, each as soon as it is allowed; returns the clock.
    fn fail_n(th: &mut Throttle, addr: IpAddr, user: &str, n: u32, mut now: Instant) -> Instant {
        for _ in 0..n {
            let w = th.wait(addr, user, None, now);
            now += w;
            th.begin(addr, user, None, now).unwrap();
        }
        now
    }

    #[test]
    fn delays_double_from_one_second_and_stop_at_a_minute() {
        assert_eq!(delay_after(4, 5), Duration::ZERO);
        assert_eq!(delay_after(5, 5), Duration::from_secs(1));
        assert_eq!(delay_after(6, 5), Duration::from_secs(2));
        assert_eq!(delay_after(8, 5), Duration::from_secs(8));
        assert_eq!(delay_after(100, 5), MAX_DELAY);
        assert_eq!(delay_after(u32::MAX, 5), MAX_DELAY);
    }

    #[test]
    fn a_hundred_failures_from_one_address_never_make_anyone_wait_more_than_a_minute() {
        let mut th = Throttle::default();
        let t0 = Instant::now();
        let now = fail_n(&mut th, ip("192.0.2.7"), "carer", 100, t0);
        let w = th.wait(ip("192.0.2.7"), "carer", None, now);
        assert!(w > Duration::ZERO && w <= MAX_DELAY, "{w:?}");
        // A fresh client elsewhere is slowed too (the account is being
        // guessed), but briefly, never locked.
        let w = th.wait(ip("192.0.2.9"), "carer", None, now);
        assert!(w > Duration::ZERO && w <= MAX_DELAY, "{w:?}");
        assert!(
            th.wait(ip("192.0.2.9"), "carer", None, now + MAX_DELAY)
                .is_zero()
        );
    }

    #[test]
    fn a_remembered_device_is_not_slowed_by_strangers_guessing_its_account() {
        let mut th = Throttle::default();
        let mut now = Instant::now();
        for i in 0..20u8 {
            now = fail_n(&mut th, IpAddr::from([10, 0, 0, i]), "carer", 5, now);
        }
        assert!(!th.wait(ip("10.0.1.1"), "carer", None, now).is_zero());
        let device = [7u8; 16];
        let a = th
            .begin(ip("10.0.0.3"), "carer", Some(device), now)
            .unwrap();
        assert!(a.account_failures >= 100);
        th.succeeded(a);
        // Its own failures do slow it.
        for _ in 0..DEVICE_FREE {
            th.begin(ip("10.0.0.3"), "carer", Some(device), now)
                .unwrap();
        }
        assert_eq!(
            th.wait(ip("10.0.0.3"), "carer", Some(device), now),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn attempts_are_counted_before_they_are_checked() {
        let mut th = Throttle::default();
        let now = Instant::now();
        let admitted = (0..30)
            .filter(|_| th.begin(ip("192.0.2.1"), "admin", None, now).is_ok())
            .count();
        assert_eq!(admitted, CLIENT_FREE as usize);
    }

    #[test]
    fn a_success_keeps_the_addresses_failures_for_other_accounts() {
        let mut th = Throttle::default();
        let a = ip("192.0.2.1");
        let mut now = Instant::now();
        for u in [
            "ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ida",
        ] {
            now = fail_n(&mut th, a, u, 1, now);
        }
        let ok = th.begin(a, "admin", None, now).unwrap();
        th.succeeded(ok);
        // Ten failures from the address: the tenth stranger account must wait.
        th.begin(a, "joe", None, now).unwrap();
        assert_eq!(th.wait(a, "kim", None, now), Duration::from_secs(1));
    }

    #[test]
    fn the_delay_runs_from_the_answer_not_from_the_start_of_the_check() {
        let mut th = Throttle::default();
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let now = fail_n(&mut th, a, "ann", CLIENT_FREE - 1, t0);
        let last = th.begin(a, "ann", None, now).unwrap();
        // The password check took 3 s.
        th.failed(&last, now + Duration::from_secs(3));
        assert_eq!(
            th.wait(a, "ann", None, now + Duration::from_secs(3)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn failures_are_forgotten_after_an_hour_and_a_success_clears_its_client() {
        let mut th = Throttle::default();
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let now = fail_n(&mut th, a, "ann", 7, t0);
        assert!(!th.wait(a, "ann", None, now).is_zero());
        assert!(th.wait(a, "ann", None, now + FORGET_AFTER).is_zero());
        let later = now + FORGET_AFTER;
        let ok = th.begin(a, "ann", None, later).unwrap();
        th.succeeded(ok);
        assert!(th.wait(a, "ann", None, later).is_zero());
    }

    #[test]
    fn device_cookies_are_bound_to_their_account_and_key() {
        let k = DeviceKey::new(&[1; 32]);
        let c = k.issue("ann").unwrap();
        let id = k.check(&c, "ann").unwrap();
        assert_eq!(hex::encode(id), c[..32]);
        assert_eq!(k.check(&c, "bob"), None);
        assert_eq!(DeviceKey::new(&[2; 32]).check(&c, "ann"), None);
        let mut forged = c.clone();
        forged.replace_range(0..1, if c.starts_with('0') { "1" } else { "0" });
        assert_eq!(k.check(&forged, "ann"), None);
        for junk in ["", "a.b.c", "..", "zz.zz.zz", "00.616e6e"] {
            assert_eq!(k.check(junk, "ann"), None, "{junk}");
        }
    }
}
