//! Writing the engine's state ([`Engine::snapshot`]): format 2 of
//! `snapshot.rs` (which reads it, and keeps the parsed form), serialised
//! straight from the engine — a full save holds no copy of the state but
//! its JSON.

use serde::Serialize;

use super::Engine;
use super::routine::Routine;
use super::rule::{NO_DEV, RULE_SUBJECT, Slot};
use super::snapshot::{SlotN, VERSION, is_home, per_room, subject_number};
use super::spec::RuleSpec;

impl Engine {
    /// The engine's state as bytes (JSON, format 2: slots and readings by
    /// number, built from the engine's own numbering without a name per
    /// slot), for storage across restarts. `Snap::parse` of it equals
    /// `Engine::snap` (tested).
    pub fn snapshot(&self) -> Vec<u8> {
        let known = |i: u32, room: bool| {
            if room {
                self.devs.room_by_index(i).is_some()
            } else {
                self.devs.get(i).is_some()
            }
        };
        // Each rule's slots in subject order (the rule-wide one first), the
        // order `SlotN` numbers them; one rule's slots held at a time.
        let nslots = (0u32..).zip(&self.rules).flat_map(move |(ri, r)| {
            let room = per_room(&r.spec);
            let mut slots: Vec<(u32, &Slot)> = r
                .slots
                .iter()
                .filter(|&(&subject, s)| {
                    (subject == RULE_SUBJECT || known(subject, room))
                        && (s.dev == NO_DEV || known(s.dev, false))
                })
                .map(|(&subject, s)| (subject, s))
                .collect();
            slots.sort_unstable_by_key(|&(subject, _)| subject_number(subject));
            slots
                .into_iter()
                .map(move |(subject, s)| SlotN::new(ri, subject, s))
        });
        let out = SnapOut {
            v: VERSION,
            seq: self.journal.seq,
            now: self.now,
            rules: Each::new(self.rules.iter().map(|r| RuleOut {
                spec: &r.spec,
                started: r.started,
                routine: r.routine.as_deref(),
            })),
            nslots: Each::new(nslots),
            nseen: Each::new(self.devs.iter().flat_map(|(i, _)| self.seen_numbered(i))),
            devices: Each::new(self.devs.iter().map(|(_, d)| d.id.as_str())),
            rooms: self.devs.rooms(),
            escalations: &self.escalations.open,
            mode: &self.mode,
            prealarms: &self.prealarms,
        };
        // One allocation, not a doubling series (untouched capacity of a
        // block this size costs no memory: it is mapped on demand).
        let mut bytes = Vec::with_capacity(self.journal.full_size_hint());
        match serde_json::to_writer(&mut bytes, &out) {
            Ok(()) => bytes,
            Err(_) => Vec::new(),
        }
    }
}

/// `Snap` as [`Engine::snapshot`] writes it: the same fields in the same
/// order, borrowed from the engine or produced while serialising
/// ([`Each`]). A full save then holds no copy of the state besides its
/// JSON: building a `Snap` first cost ~8 MB at 50,000 pendants (a
/// `SlotN`, a `SeenN` and a `String` per pendant), on top of the 3 MB of
/// JSON, at the height of a burst. `nslots` and `nseen` are written even
/// when empty (read with `default` since format 2 began).
#[derive(Serialize)]
#[serde(bound = "Each<R>: Serialize, Each<S>: Serialize, Each<N>: Serialize, Each<D>: Serialize")]
struct SnapOut<'a, R, S, N, D> {
    v: u32,
    seq: u64,
    now: i64,
    rules: Each<R>,
    nslots: Each<S>,
    nseen: Each<N>,
    devices: Each<D>,
    rooms: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    escalations: &'a [super::escalate::Esc],
    #[serde(skip_serializing_if = "is_home_ref")]
    mode: &'a super::mode::ModeState,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    prealarms: &'a [super::prealarm::Pre],
}

fn is_home_ref(m: &&super::mode::ModeState) -> bool {
    is_home(m)
}

/// `RuleSnap` as written (format 2: its slots are in `nslots`).
#[derive(Serialize)]
struct RuleOut<'a> {
    spec: &'a RuleSpec,
    started: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    routine: Option<&'a Routine>,
}

/// A JSON array of what an iterator yields, produced as it is written.
/// Serialising it a second time is an error (the iterator is spent).
struct Each<I>(std::cell::Cell<Option<I>>);

impl<I> Each<I> {
    fn new(items: I) -> Each<I> {
        Each(std::cell::Cell::new(Some(items)))
    }
}

impl<I> Serialize for Each<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.take() {
            Some(items) => s.collect_seq(items),
            None => Err(serde::ser::Error::custom("a snapshot list written twice")),
        }
    }
}
