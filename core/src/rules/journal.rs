//! Incremental persistence of the engine's state: a full snapshot now and
//! then, and in between small deltas holding only what changed — the slots
//! a reading or a timer touched, the last readings of the devices that
//! reported, devices and rooms that became known, and the small
//! household-wide parts (mode, escalations, pre-alarms, rule starts).
//!
//! Why: the hub saves the state in the same transaction as the alerts it
//! made (a restart never raises them twice nor forgets them). A full
//! snapshot grows with the number of devices, so at a care site with
//! thousands of pendants every alert batch paid for all of them (1.9 ms of
//! CPU per alert at 50 k devices). A delta costs what changed.
//!
//! Invariants: deltas carry consecutive sequence numbers after the full
//! snapshot's `seq`; applying them in order to that snapshot ([`merge`])
//! gives exactly the snapshot the engine would have made at the last one
//! (property-tested in `tests_journal`); anything not tracked slot by slot
//! (a reload, a clock step, an acknowledgement, a mode change, a start)
//! makes the next save a full one. The next save is also full when the
//! deltas written since the last full one outweigh [`JOURNAL_RATIO`]
//! snapshots (so the journal never holds more than about that many
//! snapshots' worth, read back once at a start, and the amortised write
//! stays within 1.25 times the changes), and the first save after a start
//! or restore is always full (it starts a new journal).

use serde::{Deserialize, Serialize};

use super::Engine;
use super::RulesError;
use super::routine::Routine;
use super::rule::{NO_DEV, RULE_SUBJECT};
use super::snapshot::{SeenN, SeenSnap, SlotN, SlotSnap, Snap, Subj, per_room};
use crate::model::Kind;

/// More dirty entries than this between two saves: save in full instead
/// (bounds the bookkeeping when nobody saves, e.g. a replay).
const DIRTY_MAX: usize = 1 << 16;
/// Deltas may add up to this much before a full save even for a tiny state.
const JOURNAL_MIN: usize = 64 * 1024;
/// Deltas may add up to this many snapshots' size before a full save. At
/// 1 (until 2026-12) a 50,000-alert burst from new pendants wrote a full
/// snapshot each time the state doubled; 4 writes a quarter as many.
const JOURNAL_RATIO: usize = 4;

/// What changed since the last save.
#[derive(Debug)]
pub(super) struct Journal {
    /// The next save must be full.
    full: bool,
    /// `(rule index, subject)` of slots touched (may repeat).
    slots: Vec<(u32, u32)>,
    /// Devices whose last readings changed (may repeat).
    devs: Vec<u32>,
    /// Devices and rooms known at the last save.
    devices_saved: usize,
    rooms_saved: usize,
    /// Sequence number of the last save (full or delta).
    pub(super) seq: u64,
    /// Bytes of deltas since the last full save, and that save's size.
    journal_bytes: usize,
    full_bytes: usize,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            full: true,
            slots: Vec::new(),
            devs: Vec::new(),
            devices_saved: 0,
            rooms_saved: 0,
            seq: 0,
            journal_bytes: 0,
            full_bytes: 0,
        }
    }
}

impl Journal {
    pub(super) fn slot(&mut self, rule: u32, subject: u32) {
        if !self.full {
            self.slots.push((rule, subject));
            if self.slots.len() > DIRTY_MAX {
                self.all();
            }
        }
    }

    pub(super) fn dev(&mut self, dev: u32) {
        if !self.full {
            self.devs.push(dev);
            if self.devs.len() > DIRTY_MAX {
                self.all();
            }
        }
    }

    /// Something changed that is not tracked slot by slot.
    pub(super) fn all(&mut self) {
        self.full = true;
        self.slots = Vec::new();
        self.devs = Vec::new();
    }

    /// State was restored at journal position `seq`: a new journal starts
    /// with the next (full) save.
    pub(super) fn restored(&mut self, seq: u64) {
        self.all();
        self.seq = self.seq.max(seq);
    }
}

/// One save of the engine's state ([`Engine::save`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// The whole state: replaces the saved snapshot and ends the journal.
    Full(Vec<u8>),
    /// What changed since the save numbered `seq - 1`: appended to the
    /// journal under `seq`.
    Delta { seq: u64, bytes: Vec<u8> },
}

#[derive(Serialize, Deserialize)]
struct Delta {
    /// Its sequence number: the one after the snapshot or delta before it.
    delta: u64,
    now: i64,
    /// How many rules the state has (rule indices below name them).
    rules: usize,
    started: Vec<bool>,
    /// Slots and last readings naming devices by id: deltas written before
    /// 2026-12 (still read, no longer written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    slots: Vec<(u32, SlotSnap)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routines: Vec<(u32, Routine)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<SeenSnap>,
    /// The same by number ([`SlotN`], [`SeenN`]): what is written now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nslots: Vec<SlotN>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nseen: Vec<SeenN>,
    devices_from: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    devices: Vec<String>,
    rooms_from: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rooms: Vec<String>,
    escalations: Vec<super::escalate::Esc>,
    mode: super::mode::ModeState,
    prealarms: Vec<super::prealarm::Pre>,
}

impl Journal {
    /// About the size of the next full save: the last one's plus what the
    /// deltas since carried (for sizing its buffer once).
    pub(super) fn full_size_hint(&self) -> usize {
        self.full_bytes
            .saturating_add(self.journal_bytes)
            .saturating_add(4096)
    }
}

impl Engine {
    /// Whether deltas were saved since the last full save (the saved state
    /// needs its journal to be complete).
    pub fn journal_open(&self) -> bool {
        self.journal.journal_bytes > 0
    }

    /// The whole state, ending the journal: for a clean stop, so what is
    /// stored is one snapshot any build can read (an update rolled back to
    /// a build without the journal still finds the latest state).
    pub fn save_full(&mut self) -> Saved {
        self.journal.all();
        self.save()
    }

    /// The state to persist now, full or as a delta (see the module doc),
    /// and marks it saved. Deltas must be stored in order after the full
    /// save before them; [`Engine::restore_journal`] reads them back.
    pub fn save(&mut self) -> Saved {
        let j = &self.journal;
        let limit = j.full_bytes.saturating_mul(JOURNAL_RATIO).max(JOURNAL_MIN);
        let saved = if j.full || j.journal_bytes >= limit {
            self.journal.seq += 1;
            let bytes = self.snapshot();
            self.journal.full_bytes = bytes.len();
            self.journal.journal_bytes = 0;
            Saved::Full(bytes)
        } else {
            self.journal.seq += 1;
            let bytes = serde_json::to_vec(&self.delta()).unwrap_or_default();
            self.journal.journal_bytes += bytes.len();
            Saved::Delta {
                seq: self.journal.seq,
                bytes,
            }
        };
        let j = &mut self.journal;
        j.full = false;
        j.slots.clear();
        j.devs.clear();
        j.devices_saved = self.devs.len();
        j.rooms_saved = self.devs.rooms().len();
        self.mark_saved();
        saved
    }

    fn delta(&mut self) -> Delta {
        let mut slots = std::mem::take(&mut self.journal.slots);
        slots.sort_unstable();
        slots.dedup();
        let mut devs = std::mem::take(&mut self.journal.devs);
        devs.sort_unstable();
        devs.dedup();
        let mut routines: Vec<(u32, Routine)> = Vec::new();
        let mut out = Vec::with_capacity(slots.len());
        for &(ri, subject) in &slots {
            let Some(rule) = self.rules.get(ri as usize) else {
                continue;
            };
            if let Some(r) = rule.routine.as_deref()
                && routines.last().is_none_or(|(i, _)| *i != ri)
            {
                routines.push((ri, r.clone()));
            }
            // Only numbers the snapshot's lists resolve (always so for live
            // state; a delta that names an unknown one would end the journal).
            let room = per_room(&rule.spec);
            let known = |i: u32, room: bool| {
                if room {
                    self.devs.room_by_index(i).is_some()
                } else {
                    self.devs.get(i).is_some()
                }
            };
            if let Some(s) = rule.slots.get(&subject)
                && (subject == RULE_SUBJECT || known(subject, room))
                && (s.dev == NO_DEV || known(s.dev, false))
            {
                out.push(SlotN::new(ri, subject, s));
            }
        }
        let seen = devs
            .iter()
            .filter(|&&d| self.devs.get(d).is_some())
            .flat_map(|&d| self.seen_numbered(d))
            .collect();
        let devices_from = self.journal.devices_saved;
        let rooms_from = self.journal.rooms_saved;
        Delta {
            delta: self.journal.seq,
            now: self.now,
            rules: self.rules.len(),
            started: self.rules.iter().map(|r| r.started).collect(),
            slots: Vec::new(),
            routines,
            seen: Vec::new(),
            nslots: out,
            nseen: seen,
            devices_from,
            devices: self
                .devs
                .iter_from(devices_from)
                .map(|(_, d)| d.id.to_string())
                .collect(),
            rooms_from,
            rooms: self.devs.rooms().get(rooms_from..).unwrap_or(&[]).to_vec(),
            escalations: self.escalations.open.clone(),
            mode: self.mode.clone(),
            prealarms: self.prealarms.clone(),
        }
    }

    /// Restores a full snapshot and the deltas saved after it, in order.
    /// A delta that does not follow (a gap in the numbers) or does not
    /// parse ends the journal there: the state is the last consistent one.
    /// Returns how many rules got state and how many deltas were applied.
    pub fn restore_journal(
        &mut self,
        full: &[u8],
        deltas: &[Vec<u8>],
        now: crate::model::Time,
    ) -> Result<(usize, usize), RulesError> {
        let (snap, applied) = merge(full, deltas)?;
        Ok((self.restore_snap(snap, now)?, applied))
    }
}

/// The full snapshot `full` with `deltas` applied in order (stopping at the
/// first that does not follow or does not fit), and how many were applied.
pub(super) fn merge(full: &[u8], deltas: &[Vec<u8>]) -> Result<(Snap, usize), RulesError> {
    use std::collections::BTreeMap;
    let mut snap = Snap::parse(full)?;
    if deltas.is_empty() {
        return Ok((snap, 0));
    }
    // Keyed copies while merging (a Vec insert per new device would be
    // quadratic over a journal of thousands of new devices).
    let mut slots: Vec<BTreeMap<Subj, SlotSnap>> = snap
        .rules
        .iter_mut()
        .map(|r| {
            std::mem::take(&mut r.slots)
                .into_iter()
                .map(|s| (s.subject.clone(), s))
                .collect()
        })
        .collect();
    let mut seen: BTreeMap<(String, Kind), SeenSnap> = std::mem::take(&mut snap.seen)
        .into_iter()
        .map(|s| ((s.device.clone(), s.kind), s))
        .collect();
    let mut applied = 0;
    for bytes in deltas {
        let Ok(mut d) = serde_json::from_slice::<Delta>(bytes) else {
            break;
        };
        // Numbers resolve against the lists with this delta's additions.
        let Some((nslots, nseen)) = resolve(&snap, &d) else {
            break;
        };
        d.slots.extend(nslots);
        d.seen.extend(nseen);
        if d.delta != snap.seq + 1
            || d.rules != snap.rules.len()
            || d.started.len() != snap.rules.len()
            || d.devices_from != snap.devices.len()
            || d.rooms_from != snap.rooms.len()
            || d.slots.iter().any(|(ri, _)| *ri as usize >= slots.len())
            || d.routines.iter().any(|(ri, _)| *ri as usize >= slots.len())
            || !fits(&snap, &d)
        {
            break;
        }
        snap.seq = d.delta;
        snap.now = d.now;
        for (r, started) in snap.rules.iter_mut().zip(d.started) {
            r.started = started;
        }
        for (ri, s) in d.slots {
            if let Some(m) = slots.get_mut(ri as usize) {
                m.insert(s.subject.clone(), s);
            }
        }
        for (ri, routine) in d.routines {
            if let Some(r) = snap.rules.get_mut(ri as usize) {
                r.routine = Some(routine);
            }
        }
        for s in d.seen {
            seen.insert((s.device.clone(), s.kind), s);
        }
        snap.devices.extend(d.devices);
        snap.rooms.extend(d.rooms);
        snap.escalations = d.escalations;
        snap.mode = d.mode;
        snap.prealarms = d.prealarms;
        applied += 1;
    }
    for (r, m) in snap.rules.iter_mut().zip(slots) {
        r.slots = m.into_values().collect();
    }
    snap.seen = seen.into_values().collect();
    Ok((snap, applied))
}

/// A delta's slots (with their rule index) and last readings, named.
type Named = (Vec<(u32, SlotSnap)>, Vec<SeenSnap>);

/// The numbered slots and last readings of `d` with the names their numbers
/// have in `snap`'s lists plus `d`'s additions; `None` when a number names
/// nothing (or a room for a device rule, or the reverse): the delta does
/// not fit.
fn resolve(snap: &Snap, d: &Delta) -> Option<Named> {
    fn name<'a>(base: &'a [String], added: &'a [String], from: usize, i: u32) -> Option<&'a str> {
        let i = i as usize;
        match i.checked_sub(base.len()) {
            None => base.get(i),
            // `from` is checked against `base.len()` by the caller too.
            Some(j) if from == base.len() => added.get(j),
            Some(_) => None,
        }
        .map(String::as_str)
    }
    let dev = |i: u32| name(&snap.devices, &d.devices, d.devices_from, i).map(str::to_string);
    let room = |i: u32| name(&snap.rooms, &d.rooms, d.rooms_from, i).map(str::to_string);
    let mut slots = Vec::with_capacity(d.nslots.len());
    for s in &d.nslots {
        let per = per_room(&snap.rules.get(s.0 as usize)?.spec);
        let subject = match s.1 {
            -1 => Subj::Rule,
            i => {
                let i = u32::try_from(i).ok()?;
                if per {
                    Subj::Room(room(i)?)
                } else {
                    Subj::Device(dev(i)?)
                }
            }
        };
        let device = match s.8 {
            Some(i) => Some(dev(i)?),
            None => None,
        };
        slots.push((s.0, s.named(subject, device)));
    }
    let mut seen = Vec::with_capacity(d.nseen.len());
    for n in &d.nseen {
        seen.push(n.named(dev(n.0)?));
    }
    Some((slots, seen))
}

/// Every slot of `d` fits its rule (a room subject only for a per-room
/// rule) and every device it names is a valid id: a delta that does not
/// fit is never half applied.
fn fits(snap: &Snap, d: &Delta) -> bool {
    let id_ok = |s: &str| crate::model::DeviceId::new(s).is_ok();
    d.slots.iter().all(|(ri, s)| {
        let Some(rule) = snap.rules.get(*ri as usize) else {
            return false;
        };
        let subject = match &s.subject {
            Subj::Rule => true,
            Subj::Room(_) => per_room(&rule.spec),
            Subj::Device(id) => !per_room(&rule.spec) && id_ok(id),
        };
        subject && s.dev.as_deref().is_none_or(id_ok)
    }) && d.seen.iter().all(|s| id_ok(&s.device))
        && d.devices.iter().all(|s| id_ok(s))
}

#[cfg(test)]
#[path = "tests_journal.rs"]
mod tests_journal;
