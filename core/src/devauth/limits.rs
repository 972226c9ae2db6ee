//! Per-address limits on the local broker: a cap on connections open at
//! once from one address, and a back-off after repeated authentication
//! failures, so a rogue device on the home Wi-Fi can neither exhaust the
//! broker nor guess passwords at line rate.
//!
//! Back-off: the first `free_failures` consecutive failures from an
//! address cost nothing (a device with a typo retries); every failure after
//! that refuses the address — before a byte is read, the right password
//! included — for `backoff_min × 2^(n − free_failures)`, at most
//! `backoff_max`. A success resets the count; so does `forget_after`
//! without failures. Loopback peers (on the gateway itself) are not capped
//! per address (the broker's `max_connections` still applies) but do back
//! off.
//!
//! Pure: the caller passes a monotonic `now` (time since some start) and
//! owns the lock. Memory is bounded: at most `max_tracked` addresses are
//! remembered (expired ones first, then the least recently failed, go).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The limits (from `[local_broker]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Connections open at once from one (non-loopback) address.
    pub per_address: u32,
    /// Consecutive failures allowed before the back-off starts.
    pub free_failures: u32,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A failure count is forgotten after this long without failures.
    pub forget_after: Duration,
    /// Addresses remembered at most (failure records).
    pub max_tracked: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_address: 16,
            free_failures: 3,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
            max_tracked: 4096,
        }
    }
}

/// Why an address was refused before any byte was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Backing off after failures; may try again after `retry_after`.
    Throttled { retry_after: Duration },
    /// `per_address` connections are already open from this address.
    TooManyConnections,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Duration,
    blocked_until: Duration,
}

/// The limits' state.
#[derive(Debug, Default)]
pub struct Limits {
    cfg: LimitsConfig,
    open: HashMap<IpAddr, u32>,
    failures: HashMap<IpAddr, Failures>,
}

impl Limits {
    pub fn new(cfg: LimitsConfig) -> Limits {
        Limits {
            cfg,
            open: HashMap::new(),
            failures: HashMap::new(),
        }
    }

    /// A connection from `peer` arrived: admitted (and counted as open
    /// until [`Limits::closed`]) or refused.
    pub fn accept(&mut self, peer: IpAddr, now: Duration) -> Result<(), Refused> {
        self.check(peer, now)?;
        let open = self.open.entry(peer).or_insert(0);
        if *open >= self.cfg.per_address && !is_loopback(peer) {
            return Err(Refused::TooManyConnections);
        }
        *open += 1;
        Ok(())
    }

    /// Is `peer` backing off now? (Checked again at CONNECT: a connection
    /// opened before the back-off began must not get a free guess.)
    pub fn check(&self, peer: IpAddr, now: Duration) -> Result<(), Refused> {
        match self.failures.get(&peer) {
            Some(f) if f.blocked_until > now => Err(Refused::Throttled {
                retry_after: f.blocked_until - now,
            }),
            _ => Ok(()),
        }
    }

    /// A connection admitted by [`Limits::accept`] ended.
    pub fn closed(&mut self, peer: IpAddr) {
        if let Some(n) = self.open.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.open.remove(&peer);
            }
        }
    }

    /// `peer` failed to authenticate. Returns the back-off now in force
    /// (zero while the failure is still free).
    pub fn failed(&mut self, peer: IpAddr, now: Duration) -> Duration {
        if !self.failures.contains_key(&peer) && self.failures.len() >= self.cfg.max_tracked {
            self.make_room(now);
        }
        let forget = self.cfg.forget_after;
        let f = self.failures.entry(peer).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: Duration::ZERO,
        });
        if now.saturating_sub(f.last) >= forget {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count < self.cfg.free_failures {
            return Duration::ZERO;
        }
        let doublings = (f.count - self.cfg.free_failures).min(31);
        let wait = self
            .cfg
            .backoff_min
            .saturating_mul(1u32 << doublings)
            .min(self.cfg.backoff_max);
        f.blocked_until = now + wait;
        wait
    }

    /// `peer` authenticated: its failures are forgiven.
    pub fn succeeded(&mut self, peer: IpAddr) {
        self.failures.remove(&peer);
    }

    /// Addresses with a failure record (bounded by `max_tracked`).
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    /// Connections open from `peer`.
    pub fn open_from(&self, peer: IpAddr) -> u32 {
        self.open.get(&peer).copied().unwrap_or(0)
    }

    fn make_room(&mut self, now: Duration) {
        let forget = self.cfg.forget_after;
        self.failures
            .retain(|_, f| f.blocked_until > now || now.saturating_sub(f.last) < forget);
        while self.failures.len() >= self.cfg.max_tracked.max(1) {
            let Some(oldest) = self
                .failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(ip, _)| *ip)
            else {
                return;
            };
            self.failures.remove(&oldest);
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests;
