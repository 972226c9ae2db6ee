//! The engine's device table: interned device ids and rooms, registry facts
//! (name, room, role), the last reading per kind (for duplicate and
//! out-of-order detection) and the per-device route cache.
//!
//! Invariants: a device index, once given, is stable for the life of the
//! engine (indices are not persisted: snapshots name devices by id); a
//! device's route cache is dropped whenever its room or role changes or the
//! rules are reloaded, and rebuilt on the next reading.

use std::collections::HashMap;

use super::kinds_table::KindTable;
use crate::model::{DeviceId, DeviceInfo, Kind};
use std::hash::{BuildHasherDefault, Hasher};

/// A small fast hasher for the engine's integer and short-string keys
/// (FxHash); the keys are not attacker-chosen in bulk.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        // The multiply only carries entropy upwards; fold it back down so
        // the low bits (hashbrown's bucket index) vary too.
        let h = (self.0 ^ (self.0 >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

pub type FxBuild = BuildHasherDefault<Fx>;

/// Hasher for slot keys (device, room or rule-wide subject indices, dense
/// small integers): the low bits are the key itself, so consecutive keys sit
/// in consecutive buckets and a rule's slot table lies in subject order —
/// the order a storm of timers fires in (`due`), which then walks it
/// forwards. The top 7 bits (hashbrown's tag) are mixed. Measured against
/// the multiplicative hash: lookups of 100k dense keys 9 vs 68 ns. The
/// cost: keys that are a regular stride of a much larger index space
/// collide (1,000 keys 1,024 apart: 66–82 ns a lookup, vs 6) — that needs
/// a device table of a million, far beyond a gateway.
#[derive(Default, Clone, Copy)]
pub struct Ident(u64);

impl Hasher for Ident {
    fn finish(&self) -> u64 {
        let mixed = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed & 0xfe00_0000_0000_0000) | (self.0 & 0x01ff_ffff_ffff_ffff)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i);
    }
}

pub type IdentBuild = BuildHasherDefault<Ident>;

/// Number of reading kinds (route and seen tables are indexed by code).
pub const NK: usize = Kind::ALL.len();
/// Route not computed yet.
pub const NO_ROUTE: u32 = u32::MAX;
/// No reading of this kind seen yet.
pub const NEVER: i64 = i64::MIN;

/// A device's registry facts: what an alert names it by. Small and dense
/// (the per-kind table lives beside it in [`Devices`]): 100k timers firing
/// together read one of these per alert, and a compact table keeps those
/// reads within the TLB's reach (with the 576-byte per-kind table inline,
/// 100k devices spanned 60 MB and every alert cost a page walk).
///
/// Exactly one cache line: whichever field a reader touches first brings
/// in the others (at 72 bytes, the name and the id often sat in two lines).
#[derive(Debug)]
#[repr(align(64))]
pub struct Dev {
    pub id: DeviceId,
    pub name: Option<Box<str>>,
    pub room: Option<u32>,
    pub role: Option<Box<str>>,
}

/// What a device's table keeps per reading kind.
#[derive(Debug, Clone, Copy)]
pub struct PerKind {
    /// Last accepted reading's time (ms; [`NEVER`] when none yet) and value.
    pub at: i64,
    pub value: f64,
    /// When it arrived, by the engine clock (silence per reading kind;
    /// a device's own timestamps may be off).
    pub arrived: i64,
    /// The rules (indices, ascending) a reading of this kind must visit: an
    /// id in the engine's route table, or [`NO_ROUTE`].
    pub route: u32,
}

const FRESH: PerKind = PerKind {
    at: NEVER,
    value: 0.0,
    arrived: NEVER,
    route: NO_ROUTE,
};

#[derive(Debug, Default)]
pub struct Devices {
    list: Vec<Dev>,
    /// Per device (same index as `list`): the last reading and the route
    /// of each kind it has sent.
    kinds: KindTable,
    by_id: HashMap<DeviceId, u32, FxBuild>,
    rooms: Vec<String>,
    room_ids: HashMap<String, u32>,
    /// Check-in periods (ms) the device library knows, by device index
    /// (kept beside the one-cache-line `Dev`: few devices have one).
    checkins: HashMap<u32, i64, FxBuild>,
}

fn clear(kinds: &mut [PerKind]) {
    for k in kinds {
        k.route = NO_ROUTE;
    }
}

/// Whether a reading is new, a duplicate or older than one already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    New,
    Duplicate,
    Stale,
}

impl Devices {
    pub fn get(&self, i: u32) -> Option<&Dev> {
        self.list.get(i as usize)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Dev> {
        self.list.get_mut(i as usize)
    }

    pub fn find(&self, id: &DeviceId) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    pub fn intern(&mut self, id: &DeviceId) -> u32 {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        let i = u32::try_from(self.list.len()).unwrap_or(u32::MAX - 1);
        self.list.push(Dev {
            id: id.clone(),
            name: None,
            room: None,
            role: None,
        });
        self.kinds.push_device();
        self.by_id.insert(id.clone(), i);
        i
    }

    pub fn room_name(&self, dev: u32) -> Option<&str> {
        let r = self.get(dev)?.room?;
        self.rooms.get(r as usize).map(String::as_str)
    }

    pub fn room_by_index(&self, r: u32) -> Option<&str> {
        self.rooms.get(r as usize).map(String::as_str)
    }

    pub fn intern_room(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.room_ids.get(name) {
            return i;
        }
        let i = u32::try_from(self.rooms.len()).unwrap_or(u32::MAX - 1);
        self.rooms.push(name.to_string());
        self.room_ids.insert(name.to_string(), i);
        i
    }

    /// Merges registry facts; returns the device index.
    pub fn set(&mut self, info: &DeviceInfo) -> Option<u32> {
        let id = info.id.as_ref()?;
        let i = self.intern(id);
        let room = info.room.as_deref().map(|r| self.intern_room(r));
        let d = self.get_mut(i)?;
        if let Some(name) = &info.name {
            d.name = Some(name.as_str().into());
        }
        let mut moved = false;
        if room.is_some() && room != d.room {
            d.room = room;
            moved = true;
        }
        if let Some(role) = &info.role
            && d.role.as_deref() != Some(role.as_str())
        {
            d.role = Some(role.as_str().into());
            moved = true;
        }
        if moved {
            clear(self.kinds.entries_mut(i));
        }
        if let Some(s) = info.checkin_s {
            self.checkins.insert(i, i64::from(s) * 1000);
        }
        Some(i)
    }

    /// The device's check-in period in ms (0: unknown).
    pub fn checkin_ms(&self, i: u32) -> i64 {
        self.checkins.get(&i).copied().unwrap_or(0)
    }

    pub fn clear_routes(&mut self) {
        clear(self.kinds.all_mut());
    }

    /// The cached route id of `kind` for `dev` ([`NO_ROUTE`] if none yet).
    pub fn route(&self, dev: u32, kind: Kind) -> u32 {
        self.kind_entry(dev, kind).map_or(NO_ROUTE, |k| k.route)
    }

    pub fn set_route(&mut self, dev: u32, kind: Kind, route: u32) {
        if let Some(e) = self.kind_entry_mut(dev, kind) {
            e.route = route;
        }
    }

    /// Records when the last accepted reading of `kind` arrived (engine clock).
    pub fn set_arrived(&mut self, dev: u32, kind: Kind, now: i64) {
        if let Some(e) = self.kind_entry_mut(dev, kind) {
            e.arrived = now;
        }
    }

    /// When the last reading of `kind` from `dev` arrived (engine clock).
    pub fn last_arrival(&self, dev: u32, kind: Kind) -> Option<i64> {
        self.kind_entry(dev, kind)
            .filter(|e| e.arrived != NEVER)
            .map(|e| e.arrived)
    }

    /// Last accepted `(kind, at, value)` of each kind `dev` has sent.
    pub fn seen(&self, dev: u32) -> impl Iterator<Item = (Kind, i64, f64)> + '_ {
        self.kinds
            .iter(dev)
            .filter(|(_, k)| k.at != NEVER)
            .filter_map(|(code, k)| {
                Some((Kind::from_code(u8::try_from(code).ok()?)?, k.at, k.value))
            })
    }

    /// Restores the last accepted reading of `kind` (from a snapshot).
    pub fn set_seen(&mut self, dev: u32, kind: Kind, at: i64, value: f64) {
        if let Some(e) = self.kind_entry_mut(dev, kind) {
            e.at = at;
            e.value = value;
            e.arrived = at;
        }
    }

    fn kind_entry(&self, dev: u32, kind: Kind) -> Option<&PerKind> {
        self.kinds.get(dev, usize::from(kind.code()))
    }

    /// The entry of a known device's `kind`, made fresh if it has none.
    fn kind_entry_mut(&mut self, dev: u32, kind: Kind) -> Option<&mut PerKind> {
        self.kinds
            .get_or_insert(dev, usize::from(kind.code()), FRESH)
    }

    /// Records a reading's time and value; says whether it is new.
    /// The last accepted value and time of a device's `kind`, if any.
    pub fn last(&self, dev: u32, kind: Kind) -> Option<(i64, f64)> {
        self.kind_entry(dev, kind)
            .filter(|e| e.at != NEVER)
            .map(|e| (e.at, e.value))
    }

    /// The last accepted value of a device's `kind`, if any.
    pub fn last_value(&self, dev: u32, kind: Kind) -> Option<f64> {
        self.last(dev, kind).map(|(_, v)| v)
    }

    pub fn check_fresh(&mut self, dev: u32, kind: Kind, at: i64, value: f64) -> Freshness {
        let Some(e) = self.kind_entry_mut(dev, kind) else {
            return Freshness::New;
        };
        if e.at != NEVER && at < e.at {
            Freshness::Stale
        } else if at == e.at && value.to_bits() == e.value.to_bits() {
            Freshness::Duplicate
        } else {
            e.at = at;
            e.value = value;
            Freshness::New
        }
    }

    /// The wall clock stepped by `delta`: arrival stamps (engine clock,
    /// per-kind silence clocks) move with it, like every rule clock.
    pub fn shift_arrived(&mut self, delta: i64) {
        if delta == 0 {
            return;
        }
        for k in self.kinds.all_mut() {
            if k.arrived != NEVER {
                k.arrived = k.arrived.saturating_add(delta);
            }
        }
    }

    /// The wall clock stepped by `delta`: last-reading times move with it.
    pub fn shift_seen(&mut self, delta: i64) {
        if delta == 0 {
            return;
        }
        for k in self.kinds.all_mut() {
            if k.at != NEVER {
                k.at = k.at.saturating_add(delta);
            }
        }
    }

    /// Room names in index order.
    pub fn rooms(&self) -> &[String] {
        &self.rooms
    }

    /// Renumbers the table: `rooms` and `ids` take the first indices, in
    /// the order given (a snapshot's order, so a restored engine numbers
    /// devices and rooms as the saved one did), then every other device and
    /// room in its current order. Registry facts and last readings move
    /// with their device; routes are dropped. Returns the old → new index
    /// maps of devices and rooms.
    pub fn renumber(&mut self, ids: &[DeviceId], rooms: &[String]) -> (Vec<u32>, Vec<u32>) {
        let old = std::mem::take(self);
        for r in rooms {
            self.intern_room(r);
        }
        for id in ids {
            self.intern(id);
        }
        let room_map: Vec<u32> = old.rooms.iter().map(|r| self.intern_room(r)).collect();
        let mut dev_map = Vec::with_capacity(old.list.len());
        for (was, d) in (0u32..).zip(old.list) {
            let i = self.intern(&d.id);
            dev_map.push(i);
            let room = d.room.and_then(|r| room_map.get(r as usize).copied());
            if let Some(new) = self.list.get_mut(i as usize) {
                *new = Dev { room, ..d };
            }
            if let Some(&ms) = old.checkins.get(&was) {
                self.checkins.insert(i, ms);
            }
            let (mask, entries) = old.kinds.of(was);
            self.kinds.set(i, mask, entries);
            clear(self.kinds.entries_mut(i));
        }
        (dev_map, room_map)
    }

    /// Devices with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Dev)> {
        (0u32..).zip(self.list.iter())
    }

    /// How many devices are known.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Devices from index `from` on, with their indices (O(1) to reach).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = (u32, &Dev)> {
        (u32::try_from(from).unwrap_or(u32::MAX)..).zip(self.list.get(from..).unwrap_or(&[]).iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_record_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Dev>(), 64);
    }

    fn id(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    #[test]
    fn duplicates_and_older_readings_are_recognised() {
        let mut d = Devices::default();
        let i = d.intern(&id("a"));
        assert_eq!(d.check_fresh(i, Kind::Motion, 10, 1.0), Freshness::New);
        assert_eq!(
            d.check_fresh(i, Kind::Motion, 10, 1.0),
            Freshness::Duplicate
        );
        assert_eq!(d.check_fresh(i, Kind::Motion, 10, 0.0), Freshness::New);
        assert_eq!(d.check_fresh(i, Kind::Motion, 5, 1.0), Freshness::Stale);
        assert_eq!(d.check_fresh(i, Kind::Contact, 5, 1.0), Freshness::New);
    }

    #[test]
    fn renumbering_puts_the_given_order_first_and_keeps_what_devices_carry() {
        let mut d = Devices::default();
        let a = d.intern(&id("a"));
        d.set(&DeviceInfo {
            id: Some(id("b")),
            room: Some("hall".into()),
            name: Some("Hall PIR".into()),
            ..Default::default()
        });
        d.check_fresh(a, Kind::Motion, 10, 1.0);
        d.set_route(a, Kind::Motion, 3);
        let (devs, rooms) = d.renumber(
            &[id("c"), id("b")],
            &["kitchen".to_string(), "hall".to_string()],
        );
        // c, b first as given; a (known before) after them.
        assert_eq!(devs, vec![2, 1]);
        assert_eq!(rooms, vec![1]);
        let order: Vec<&str> = d.iter().map(|(_, x)| x.id.as_str()).collect();
        assert_eq!(order, ["c", "b", "a"]);
        assert_eq!(d.room_name(1), Some("hall"));
        assert_eq!(d.get(1).and_then(|x| x.name.as_deref()), Some("Hall PIR"));
        assert_eq!(d.seen(2).collect::<Vec<_>>(), vec![(Kind::Motion, 10, 1.0)]);
        assert_eq!(d.route(2, Kind::Motion), NO_ROUTE);
        assert_eq!(d.find(&id("a")), Some(2));
    }

    #[test]
    fn renumbering_keeps_each_devices_check_in_period() {
        let mut d = Devices::default();
        d.intern(&id("a"));
        d.set(&DeviceInfo {
            id: Some(id("b")),
            checkin_s: Some(3600),
            ..Default::default()
        });
        let (devs, _) = d.renumber(&[id("b")], &[]);
        assert_eq!(devs, vec![1, 0]);
        assert_eq!(d.checkin_ms(0), 3_600_000);
        assert_eq!(d.checkin_ms(1), 0);
    }

    #[test]
    fn a_device_keeps_entries_only_for_the_kinds_it_sent_each_found_in_any_order() {
        let mut d = Devices::default();
        let i = d.intern(&id("pendant"));
        assert_eq!(d.kinds.of(i).1.len(), 0);
        d.check_fresh(i, Kind::Panic, 10, 1.0);
        assert_eq!(d.kinds.of(i).1.len(), 1);
        // Kinds arriving out of code order land in code order; every
        // entry keeps its own values.
        let sent = [Kind::Battery, Kind::Motion, Kind::Temperature];
        for (n, &k) in sent.iter().enumerate() {
            d.check_fresh(i, k, 20 + n as i64, n as f64);
            d.set_arrived(i, k, 100 + n as i64);
            d.set_route(i, k, n as u32);
        }
        assert_eq!(d.kinds.of(i).1.len(), 4);
        let mut want: Vec<(Kind, i64, f64)> = vec![(Kind::Panic, 10, 1.0)];
        want.extend(
            sent.iter()
                .enumerate()
                .map(|(n, &k)| (k, 20 + n as i64, n as f64)),
        );
        want.sort_by_key(|w| w.0.code());
        assert_eq!(d.seen(i).collect::<Vec<_>>(), want);
        for (n, &k) in sent.iter().enumerate() {
            assert_eq!(d.last(i, k), Some((20 + n as i64, n as f64)));
            assert_eq!(d.last_arrival(i, k), Some(100 + n as i64));
            assert_eq!(d.route(i, k), n as u32);
        }
        assert_eq!(d.route(i, Kind::Panic), NO_ROUTE);
        assert_eq!(d.last(i, Kind::Smoke), None);
        assert_eq!(d.last_arrival(i, Kind::Smoke), None);
        // Asking does not make an entry; unknown devices have none.
        assert_eq!(d.kinds.of(i).1.len(), 4);
        assert_eq!(d.last(i + 1, Kind::Panic), None);
        assert_eq!(d.check_fresh(i + 1, Kind::Panic, 1, 1.0), Freshness::New);
        // Every kind code has a place in the mask.
        for &k in Kind::ALL {
            assert_eq!(d.check_fresh(i, k, 1_000, 2.0), Freshness::New, "{k:?}");
        }
        assert_eq!(d.kinds.of(i).1.len(), NK);
        assert!(d.seen(i).all(|(_, at, v)| at == 1_000 && v == 2.0));
    }

    #[test]
    fn fifty_thousand_pendants_take_under_a_hundred_bytes_each_in_the_kind_table() {
        let mut d = Devices::default();
        for n in 0..50_000 {
            let i = d.intern(&id(&format!("pendant-{n:06}")));
            d.check_fresh(i, Kind::Panic, n, 1.0);
        }
        let (entries, bytes) = d.kinds.footprint();
        assert_eq!(entries, 50_000);
        assert!(bytes / 50_000 < 100, "{} bytes a pendant", bytes / 50_000);
    }

    #[test]
    fn moving_a_device_to_another_room_drops_its_routes() {
        let mut d = Devices::default();
        let i = d.intern(&id("a"));
        d.set_route(i, Kind::Motion, 7);
        d.set(&DeviceInfo {
            id: Some(id("a")),
            room: Some("hall".into()),
            ..Default::default()
        });
        assert!(Kind::ALL.iter().all(|&k| d.route(i, k) == NO_ROUTE));
        assert_eq!(d.room_name(i), Some("hall"));
    }
}
