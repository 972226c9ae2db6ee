//! Connection slots of the web server: who may hold how many connections,
//! so one host cannot make the UI unreachable for everyone.
//!
//! Policy (decided here, applied by the accept loop in [`super::server`]):
//! - at most [`MAX_CONNECTIONS`] connections in all and
//!   [`PER_ADDRESS`] from one address; a connection over either is closed
//!   as soon as it is accepted (the listener always keeps accepting, so the
//!   kernel's queue never fills up with a flood);
//! - the last [`RESERVED`] slots go only to addresses holding fewer than
//!   [`RESERVED_BELOW`] connections: a new client always finds a slot;
//! - when the free slots run short (into the reserve), the server is
//!   *squeezed*: connections of addresses holding more than one close as
//!   soon as they are idle between requests (see [`Table::squeezed`],
//!   [`Slot::should_yield`]).
//!
//! Plain struct, no I/O; [`Slot`] gives its place back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections at once, in all.
pub const MAX_CONNECTIONS: usize = 128;
/// Connections at once from one address (a browser opens about 6).
pub const PER_ADDRESS: usize = 16;
/// Slots kept for addresses holding fewer than [`RESERVED_BELOW`].
pub const RESERVED: usize = 32;
pub const RESERVED_BELOW: usize = 2;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds [`PER_ADDRESS`] already.
    PerAddress,
    /// Only reserved slots are left, and its address holds enough.
    Reserved,
    /// No slot at all.
    Full,
}

/// Who holds the slots now.
#[derive(Debug, Default)]
pub struct Table {
    total: usize,
    by_addr: HashMap<IpAddr, usize>,
    /// Connections refused since start, by cause.
    pub refused: [u64; 3],
}

impl Table {
    /// Takes a slot for `ip`, or says why not.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let held = self.by_addr.get(&ip).copied().unwrap_or(0);
        let why = if held >= PER_ADDRESS {
            Some(Refusal::PerAddress)
        } else if self.total >= MAX_CONNECTIONS {
            Some(Refusal::Full)
        } else if self.total >= MAX_CONNECTIONS - RESERVED && held >= RESERVED_BELOW {
            Some(Refusal::Reserved)
        } else {
            None
        };
        if let Some(r) = why {
            self.refused[r as usize] += 1;
            return Err(r);
        }
        self.total += 1;
        *self.by_addr.entry(ip).or_default() += 1;
        Ok(())
    }

    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.by_addr.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_addr.remove(&ip);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Free slots are short: idle connections of busy addresses should go.
    pub fn squeezed(&self) -> bool {
        self.total >= MAX_CONNECTIONS - RESERVED
    }

    /// Connections `ip` holds.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.by_addr.get(&ip).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

/// The shared table.
pub type Slots = Arc<Mutex<Table>>;

/// One admitted connection's slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    ip: IpAddr,
}

impl Slot {
    /// Admits a connection from `ip` into `slots`.
    pub fn take(slots: &Slots, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut t = slots.lock().map_err(|_| Refusal::Full)?;
        t.admit(ip)?;
        Ok(Slot {
            slots: slots.clone(),
            ip,
        })
    }

    /// Asked when the server was squeezed: should this connection close
    /// when idle? Yes when its address holds more than one. (Not whether
    /// the server is *still* squeezed: the squeeze itself frees slots, and
    /// a connection asked a moment later must not slip through.)
    pub fn should_yield(&self) -> bool {
        self.slots.lock().is_ok_and(|t| t.held(self.ip) > 1)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.slots.lock() {
            t.release(self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let mut t = Table::default();
        for _ in 0..PER_ADDRESS {
            t.admit(ip(1)).unwrap();
        }
        assert_eq!(t.admit(ip(1)), Err(Refusal::PerAddress));
        assert!(t.admit(ip(2)).is_ok());
        t.release(ip(1));
        assert!(t.admit(ip(1)).is_ok());
    }

    #[test]
    fn many_busy_addresses_leave_the_reserve_to_new_ones() {
        let mut t = Table::default();
        let mut a = 0;
        // Busy addresses (4 connections each) fill everything up to the reserve.
        while t.total() < MAX_CONNECTIONS - RESERVED {
            a += 1;
            for _ in 0..4 {
                t.admit(ip(a)).unwrap();
            }
        }
        assert!(t.squeezed());
        assert_eq!(t.admit(ip(1)), Err(Refusal::Reserved));
        // Each new address still gets in, up to the reserve.
        for n in 0..RESERVED as u32 {
            t.admit(ip(1000 + n)).unwrap();
        }
        assert_eq!(t.admit(ip(5000)), Err(Refusal::Full));
        assert_eq!(t.refused, [0, 1, 1]);
    }

    #[test]
    fn a_slot_is_given_back_when_dropped_and_yields_only_when_squeezed() {
        let slots: Slots = Arc::default();
        let s1 = Slot::take(&slots, ip(1)).unwrap();
        assert!(!s1.should_yield(), "a lone connection stays");
        let s2 = Slot::take(&slots, ip(1)).unwrap();
        assert!(!slots.lock().unwrap().squeezed(), "plenty of room");
        let others: Vec<_> = (0..(MAX_CONNECTIONS - RESERVED) as u32)
            .map(|n| Slot::take(&slots, ip(100 + n)).unwrap())
            .collect();
        assert!(slots.lock().unwrap().squeezed());
        assert!(s1.should_yield());
        assert!(!others[0].should_yield(), "a lone connection stays");
        drop((s1, s2, others));
        assert_eq!(slots.lock().unwrap().total(), 0);
    }
}
