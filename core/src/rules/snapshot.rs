//! Persistence of the engine's state: every rule's slots (phases, clocks,
//! armed deadlines), learnt routines and the last reading per device and
//! kind, as JSON bytes the integrator stores (SQLite kv).
//!
//! Invariants: devices and rooms are named by id, never by the in-memory
//! index; the numbering itself (the order devices and rooms became known,
//! which orders timers due together) is saved as the lists of names in
//! index order and re-created on restore; a rule's state is restored only
//! into a rule with an identical spec (same id, same keys), so an edited
//! rule starts fresh; restoring then replaying gives the same alerts as
//! never stopping (property-tested in `tests_state`); the household's mode
//! and alerts held by pre-alarms are kept too.
//!
//! Format version 2 (2026-12) lists the slots and last readings of every
//! rule once, naming devices and rooms by their position in the saved
//! `devices` / `rooms` lists ([`SlotN`], [`SeenN`]): 132 bytes a panic
//! pendant instead of 288 with names (version 1, still read). At a care
//! site whose state grows with every new pendant, full snapshots were
//! the largest write of an alert burst. [`Snap::parse`] gives the named
//! form whatever the version, so merging and restoring see one shape.

use serde::{Deserialize, Serialize};

use super::routine::Routine;
use super::rule::{NO_DEV, OptMs, Phase, RULE_SUBJECT, Slot};
use super::spec::{Per, RuleSpec, RuleType};
use super::{Engine, RulesError};
use crate::model::{DeviceId, Kind, Time};

pub(super) const VERSION: u32 = 2;
/// The oldest format still read.
const OLDEST: u32 = 1;

#[derive(Serialize, Deserialize)]
pub(super) struct Snap {
    v: u32,
    /// The journal sequence number this state is at (see `journal.rs`):
    /// deltas `seq + 1, seq + 2, …` apply on top (absent before 2026-12: 0).
    #[serde(default)]
    pub(super) seq: u64,
    pub(super) now: i64,
    pub(super) rules: Vec<RuleSnap>,
    /// Format 1 (and the parsed form): the last readings, devices by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) seen: Vec<SeenSnap>,
    /// Format 2: every rule's slots and the last readings by number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nslots: Vec<SlotN>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nseen: Vec<SeenN>,
    /// Device ids and room names in index order (absent before 2026-11:
    /// such a snapshot restores with the numbering of the moment).
    #[serde(default)]
    pub(super) devices: Vec<String>,
    #[serde(default)]
    pub(super) rooms: Vec<String>,
    /// Open escalations (absent before 2026-12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) escalations: Vec<super::escalate::Esc>,
    /// The household's mode (absent before 2026-12: home).
    #[serde(default, skip_serializing_if = "is_home")]
    pub(super) mode: super::mode::ModeState,
    /// Alerts held back by pre-alarms (absent before 2026-12).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) prealarms: Vec<super::prealarm::Pre>,
}

pub(super) fn is_home(m: &super::mode::ModeState) -> bool {
    *m == super::mode::ModeState::default()
}

#[derive(Serialize, Deserialize)]
pub(super) struct RuleSnap {
    pub(super) spec: RuleSpec,
    pub(super) started: bool,
    /// Format 1 (and the parsed form); format 2 has them in `Snap::nslots`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) slots: Vec<SlotSnap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) routine: Option<Routine>,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(rename_all = "lowercase")]
pub(super) enum Subj {
    Rule,
    Device(String),
    Room(String),
}

#[derive(Serialize, Deserialize)]
pub(super) struct SlotSnap {
    pub(super) subject: Subj,
    phase: Phase,
    #[serde(default)]
    acked: bool,
    since: i64,
    last: i64,
    deadline: Option<i64>,
    value: f64,
    pub(super) dev: Option<String>,
    /// When the open alert was raised (its instance id; absent before 2026-12).
    #[serde(default)]
    opened: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SeenSnap {
    pub(super) device: String,
    pub(super) kind: Kind,
    at: i64,
    value: f64,
    /// When it arrived by the engine clock (absent before 2026-12: `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arrived: Option<i64>,
}

/// A slot in a journal delta (since 2026-12): the subject and the device by
/// number instead of by name — a device's (or, for a per-room rule, a
/// room's) index in the snapshot's `devices` (`rooms`) list with the
/// delta's own additions, `-1` for the rule itself. A JSON array, so a
/// panic press's slot is ~70 bytes, not ~170 (see `journal.rs`).
/// Fields: rule index, subject, phase, acked, since, last, deadline,
/// value, device, opened.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct SlotN(
    pub(super) u32,
    pub(super) i64,
    Phase,
    bool,
    i64,
    i64,
    Option<i64>,
    f64,
    pub(super) Option<u32>,
    i64,
);

/// A device's last reading of a kind in a journal delta, the device by
/// number (see [`SlotN`]): device, kind, at, value, arrived.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(super) struct SeenN(pub(super) u32, Kind, i64, f64, Option<i64>);

/// A subject's number in a snapshot: `-1` for the rule itself, else the
/// device's (room's) index.
pub(super) fn subject_number(subject: u32) -> i64 {
    if subject == RULE_SUBJECT {
        -1
    } else {
        i64::from(subject)
    }
}

impl SlotN {
    /// Rule `rule`'s slot `s` for `subject` (its in-memory number).
    pub(super) fn new(rule: u32, subject: u32, s: &Slot) -> SlotN {
        SlotN(
            rule,
            subject_number(subject),
            s.phase,
            s.acked,
            s.since,
            s.last,
            s.deadline.get(),
            s.value,
            (s.dev != NO_DEV).then_some(s.dev),
            s.opened,
        )
    }

    /// As saved in a snapshot, with the names `subject` and `dev` resolve to.
    pub(super) fn named(&self, subject: Subj, dev: Option<String>) -> SlotSnap {
        SlotSnap {
            subject,
            phase: self.2,
            acked: self.3,
            since: self.4,
            last: self.5,
            deadline: self.6,
            value: self.7,
            dev,
            opened: self.9,
        }
    }
}

impl SeenN {
    /// As saved in a snapshot, the device named `device`.
    pub(super) fn named(&self, device: String) -> SeenSnap {
        SeenSnap {
            device,
            kind: self.1,
            at: self.2,
            value: self.3,
            arrived: self.4,
        }
    }
}

impl Snap {
    /// A saved snapshot of any format, in the named form (numbered slots
    /// and readings resolved against its own lists, then ordered as
    /// [`Engine::snap`] orders them).
    pub(super) fn parse(bytes: &[u8]) -> Result<Snap, RulesError> {
        let mut snap: Snap =
            serde_json::from_slice(bytes).map_err(|e| RulesError::Snapshot(e.to_string()))?;
        snap.resolve()?;
        Ok(snap)
    }

    fn resolve(&mut self) -> Result<(), RulesError> {
        if self.nslots.is_empty() && self.nseen.is_empty() {
            return Ok(());
        }
        let unknown = |what: &str, i: i64| {
            RulesError::Snapshot(format!("{what} number {i} is not in the snapshot's list"))
        };
        let dev = |devices: &[String], i: u32| {
            devices
                .get(i as usize)
                .cloned()
                .ok_or_else(|| unknown("device", i64::from(i)))
        };
        for n in std::mem::take(&mut self.nslots) {
            let Some(rule) = self.rules.get_mut(n.0 as usize) else {
                return Err(unknown("rule", i64::from(n.0)));
            };
            let subject = match n.1 {
                -1 => Subj::Rule,
                i => {
                    let at = u32::try_from(i).map_err(|_| unknown("subject", i))?;
                    if per_room(&rule.spec) {
                        Subj::Room(
                            self.rooms
                                .get(at as usize)
                                .cloned()
                                .ok_or_else(|| unknown("room", i))?,
                        )
                    } else {
                        Subj::Device(dev(&self.devices, at)?)
                    }
                }
            };
            let device = n.8.map(|i| dev(&self.devices, i)).transpose()?;
            rule.slots.push(n.named(subject, device));
        }
        for r in &mut self.rules {
            r.slots.sort_by(|a, b| a.subject.cmp(&b.subject));
        }
        for n in std::mem::take(&mut self.nseen) {
            self.seen.push(n.named(dev(&self.devices, n.0)?));
        }
        self.seen
            .sort_by(|a, b| (&a.device, a.kind).cmp(&(&b.device, b.kind)));
        Ok(())
    }
}

pub(super) fn per_room(spec: &RuleSpec) -> bool {
    spec.kind == RuleType::Inactivity && spec.per == Some(Per::Room)
}

impl Engine {
    /// Gives devices and rooms the numbering of a snapshot (see
    /// `Devices::renumber`); the subjects of state already held move along.
    /// The timer heap still names old subjects: the caller rebuilds it.
    fn renumber(&mut self, ids: &[DeviceId], rooms: &[String]) {
        let (dev_map, room_map) = self.devs.renumber(ids, rooms);
        let map = |m: &[u32], i: u32| m.get(i as usize).copied().unwrap_or(i);
        for r in &mut self.rules {
            if r.slots.is_empty() {
                continue;
            }
            let room = per_room(&r.spec);
            r.slots = std::mem::take(&mut r.slots)
                .into_iter()
                .map(|(k, mut s)| {
                    let k = match k {
                        RULE_SUBJECT => k,
                        _ if room => map(&room_map, k),
                        _ => map(&dev_map, k),
                    };
                    if s.dev != NO_DEV {
                        s.dev = map(&dev_map, s.dev);
                    }
                    (k, s)
                })
                .collect();
        }
    }

    /// One slot as saved: its subject and the device it names by id
    /// (`None` when a name is unknown, which never happens for live state).
    #[cfg(test)]
    pub(super) fn slot_snap(&self, room: bool, subject: u32, s: &Slot) -> Option<SlotSnap> {
        let dev_name = |i: u32| self.devs.get(i).map(|d| d.id.to_string());
        let subj = if subject == RULE_SUBJECT {
            Subj::Rule
        } else if room {
            Subj::Room(self.devs.room_by_index(subject)?.to_string())
        } else {
            Subj::Device(dev_name(subject)?)
        };
        Some(SlotSnap {
            subject: subj,
            phase: s.phase,
            acked: s.acked,
            since: s.since,
            last: s.last,
            deadline: s.deadline.get(),
            value: s.value,
            opened: s.opened,
            dev: if s.dev == NO_DEV {
                None
            } else {
                dev_name(s.dev)
            },
        })
    }

    /// The last readings of device `i`, one per kind, by number (a delta's).
    pub(super) fn seen_numbered(&self, i: u32) -> impl Iterator<Item = SeenN> + '_ {
        self.devs.seen(i).map(move |(kind, at, value)| {
            SeenN(i, kind, at, value, self.devs.last_arrival(i, kind))
        })
    }

    /// The last readings of device `i`, one per kind, as saved.
    #[cfg(test)]
    pub(super) fn seen_snaps(&self, i: u32) -> impl Iterator<Item = SeenSnap> + '_ {
        let id = self.devs.get(i).map(|d| d.id.to_string());
        self.devs.seen(i).filter_map(move |(kind, at, value)| {
            Some(SeenSnap {
                device: id.clone()?,
                kind,
                at,
                value,
                arrived: self.devs.last_arrival(i, kind),
            })
        })
    }

    /// The engine's whole state (see [`Engine::snapshot`]).
    #[cfg(test)]
    pub(super) fn snap(&self) -> Snap {
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let room = per_room(&r.spec);
                let mut slots: Vec<SlotSnap> = r
                    .slots
                    .iter()
                    .filter_map(|(&subject, s)| self.slot_snap(room, subject, s))
                    .collect();
                slots.sort_by(|a, b| a.subject.cmp(&b.subject));
                RuleSnap {
                    spec: r.spec.clone(),
                    started: r.started,
                    slots,
                    routine: r.routine.as_deref().cloned(),
                }
            })
            .collect();
        let mut seen: Vec<SeenSnap> = self
            .devs
            .iter()
            .flat_map(|(i, _)| self.seen_snaps(i))
            .collect();
        seen.sort_by(|a, b| (&a.device, a.kind).cmp(&(&b.device, b.kind)));
        Snap {
            v: VERSION,
            seq: self.journal.seq,
            now: self.now,
            rules,
            seen,
            nslots: Vec::new(),
            nseen: Vec::new(),
            devices: self.devs.iter().map(|(_, d)| d.id.to_string()).collect(),
            rooms: self.devs.rooms().to_vec(),
            escalations: self.escalations.open.clone(),
            mode: self.mode.clone(),
            prealarms: self.prealarms.clone(),
        }
    }

    /// Restores state saved by [`Engine::snapshot`] into this engine (built
    /// from the current rule set). State of rules that no longer exist or
    /// whose spec changed is dropped. Timers that fell due while stopped fire
    /// on the next `on_tick`/`on_reading`. Returns how many rules got state.
    pub fn restore(&mut self, bytes: &[u8], now: Time) -> Result<usize, RulesError> {
        let snap = Snap::parse(bytes)?;
        self.restore_snap(snap, now)
    }

    /// Restores a parsed (and possibly journal-merged) state.
    pub(super) fn restore_snap(&mut self, snap: Snap, now: Time) -> Result<usize, RulesError> {
        if !(OLDEST..=VERSION).contains(&snap.v) {
            return Err(RulesError::Snapshot(format!(
                "format version {} is not one of {OLDEST}..={VERSION}",
                snap.v
            )));
        }
        let bad = |s: &str| RulesError::Snapshot(format!("invalid device id {s:?}"));
        let ids = snap
            .devices
            .iter()
            .map(|s| DeviceId::new(s).map_err(|_| bad(s)))
            .collect::<Result<Vec<_>, _>>()?;
        self.renumber(&ids, &snap.rooms);
        let mut restored = 0;
        for rs in snap.rules {
            let Some(ri) = self.rules.iter().position(|r| r.spec == rs.spec) else {
                continue;
            };
            let room = per_room(&rs.spec);
            let mut slots = Vec::with_capacity(rs.slots.len());
            for s in rs.slots {
                let subject = match &s.subject {
                    Subj::Rule => RULE_SUBJECT,
                    Subj::Room(name) if room => self.devs.intern_room(name),
                    Subj::Device(id) if !room => {
                        self.devs.intern(&DeviceId::new(id).map_err(|_| bad(id))?)
                    }
                    _ => {
                        return Err(RulesError::Snapshot(
                            "slot subject does not fit its rule".into(),
                        ));
                    }
                };
                let dev = match &s.dev {
                    Some(id) => self.devs.intern(&DeviceId::new(id).map_err(|_| bad(id))?),
                    None => NO_DEV,
                };
                slots.push((
                    subject,
                    Slot {
                        phase: s.phase,
                        acked: s.acked,
                        since: s.since,
                        last: s.last,
                        deadline: s.deadline.into(),
                        queued: OptMs::NONE,
                        value: s.value,
                        dev,
                        opened: s.opened,
                    },
                ));
            }
            if let Some(rule) = self.rules.get_mut(ri) {
                rule.slots = slots.into_iter().collect();
                rule.started = rs.started;
                if let (Some(dst), Some(src)) = (rule.routine.as_mut(), rs.routine) {
                    **dst = src;
                }
                restored += 1;
            }
        }
        for s in snap.seen {
            let dev = self
                .devs
                .intern(&DeviceId::new(&s.device).map_err(|_| bad(&s.device))?);
            self.devs.set_seen(dev, s.kind, s.at, s.value);
            if let Some(a) = s.arrived {
                self.devs.set_arrived(dev, s.kind, a);
            }
        }
        self.escalations.open = snap
            .escalations
            .into_iter()
            .filter(|e| {
                self.rules
                    .iter()
                    .any(|r| r.spec.id == e.alert.rule && r.escalate_ms > 0)
            })
            .collect();
        self.mode = snap.mode;
        self.prealarms = snap.prealarms;
        // The clock never goes back; rules without saved state start at the
        // next event, like after a reload.
        self.now = self.now.max(snap.now).max(now.0);
        self.rebuild_timers();
        self.needs_start = true;
        self.journal.restored(snap.seq);
        self.generation += 1;
        Ok(restored)
    }
}
