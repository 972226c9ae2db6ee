//! Alert rules: rule specs (TOML, see `RULES.md` beside this file), the
//! compiled engine, schedules in local time.
//!
//! Contract the hub relies on: the engine is pure and deterministic — no
//! I/O, no clock (`now` is passed in), no tokio. The same readings at the same
//! `now`s give the same alerts, in the same order, whether or not the engine
//! was snapshotted and restored in between.
//!
//! Layout:
//! - [`spec`]: the file format and its validation ([`RuleSet`], [`RulesError`]);
//! - [`window`]: daily local-time windows (midnight crossing, DST);
//! - `eval`: the `RuleKind` trait and the one dispatch from a rule's type
//!   to its kind; `kind`: one module per rule type (what it does with a
//!   reading or a timer); `held`: the pending/raised/cleared machine of
//!   threshold rules (window rules have their own, `kind/window.rs`);
//!   `escalate`: re-sends of unacknowledged alerts; `ctx`: what handlers may touch, timers and
//!   the one raise/clear helper (`Ctx::emit`) with the shared alert texts;
//! - `rule`: compiled rules and their slots; `routine`: what routine rules
//!   learn; `devices`: device table and route cache;
//! - [`mode`]: the household's mode (away, visitor, inferred out) and the
//!   rules that stand down in it; [`prealarm`]: alerts held back while a
//!   local warning sounds, and the warnings for the shell to carry out;
//! - `timers`: the lazy-deletion timer heap; `tick`: time passing (timers
//!   firing, escalations, mode expiry, clock steps); `ack`: acknowledging
//!   alerts; `snapshot`, `journal`: persistence;
//! - `cli` (shell crate): `carebridge rules check|replay`.
//!
//! Engine invariants:
//! - a reading visits only the rules routed to its `(device, kind)`: a route
//!   id cached inline in the device table, pointing into a table of shared
//!   rule lists built (on first use) from a by-room index (rules that name
//!   rooms) and a by-kind index (the rest), filtered by the full selectors;
//! - readings older than, or identical to, the last one of the same device
//!   and kind are dropped (counted in [`Engine::dropped`]);
//! - timers due at `now` fire before a reading at `now` is evaluated; timers
//!   due at the same instant fire in (rule order, subject index) order —
//!   the order devices and rooms became known, kept across restarts by the
//!   snapshot — which is also the order their state lies in memory (`due`);
//! - the engine clock never goes backwards (`now` is max-ed with the last),
//!   except by a wall-clock step the caller reports ([`Engine::shift`]),
//!   which moves the whole state with it.

mod ack;
mod ctx;
mod devices;
mod due;
mod escalate;
mod eval;
mod held;
mod journal;
mod kind;
mod kinds_table;
mod locate;
pub mod mode;
pub mod prealarm;
mod replay;
mod routine;
mod rule;
mod snapshot;
mod snapshot_write;
pub mod spec;
mod status;
mod tick;
mod timers;
pub mod window;

use std::path::PathBuf;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::{Alert, DeviceInfo, Kind, Reading, Time};
use crate::setting::Problem;
use ctx::Ctx;
use devices::{Devices, Freshness};
pub use journal::Saved;
pub use replay::{
    Event, EventsError, Order, OrderReport, order_story, parse_events, parse_story, replay_events,
};
use rule::{OptMs, Rule};
pub use spec::{RuleSet, RuleSpec, RuleType, RulesError};
pub use status::RuleStatus;
use timers::{Entry, Timers};

/// `[rules]`: where the rule set lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// A rules file (TOML). Without one, the built-in safety rules apply.
    pub file: Option<PathBuf>,
    /// The kinds every rule set must raise alerts for (see
    /// [`crate::life_safety`]); `None`: panic, fall, smoke and water leak.
    pub life_safety: Option<Vec<Kind>>,
}

impl RulesConfig {
    /// The life-safety kinds in force.
    pub fn life_safety(&self) -> Vec<Kind> {
        self.life_safety
            .clone()
            .unwrap_or_else(|| crate::life_safety::DEFAULT.to_vec())
    }

    pub fn validate(&self) -> Vec<Problem> {
        match &self.file {
            Some(f) if f.as_os_str().is_empty() => vec![Problem::new("file", "must not be empty")],
            _ => Vec::new(),
        }
    }
}

/// The built-in safety rules of [`Engine::minimal`].
pub const MINIMAL_RULES: &str = r#"
[[rule]]
id = "panic"
type = "immediate"
kinds = ["panic"]

[[rule]]
id = "fall"
type = "immediate"
kinds = ["fall"]

[[rule]]
id = "smoke"
type = "immediate"
kinds = ["smoke"]
clear = true

[[rule]]
id = "co"
type = "immediate"
kinds = ["co"]
clear = true

[[rule]]
id = "water_leak"
type = "immediate"
kinds = ["water_leak"]
clear = true
"#;

/// What [`Engine::reload`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Rules whose spec did not change: their state was kept.
    pub kept: usize,
    /// New or changed rules, starting fresh.
    pub fresh: usize,
    /// Rules that are gone (with their state).
    pub removed: usize,
}

/// The rule engine the hub drives.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Rule ids of disabled rules (for status only).
    disabled: Vec<RuleSpec>,
    devs: Devices,
    tz: TimeZone,
    timers: Timers,
    /// Rules that can see each kind (by `Kind::code`), and rules that see any kind.
    by_kind: Vec<Vec<u32>>,
    any_kind: Vec<u32>,
    /// Distinct route lists (rule indices, ascending); devices point here.
    route_lists: Vec<Box<[u32]>>,
    route_ids: std::collections::HashMap<Box<[u32]>, u32>,
    /// `route`'s working list, kept between calls.
    route_scratch: Vec<u32>,
    /// Rules that select by room, by room name (these are not in `by_kind`).
    by_room: std::collections::HashMap<String, Vec<u32>>,
    now: i64,
    needs_start: bool,
    generation: u64,
    saved_generation: u64,
    /// What changed since the last save (`journal.rs`).
    journal: journal::Journal,
    dropped: u64,
    /// `on_tick`'s buffer for timers due at one instant and the radix
    /// sort's scratch (reused).
    batch: Vec<Entry>,
    scratch: Vec<Entry>,
    /// Open alerts of rules that escalate (`escalate`).
    escalations: escalate::Escalations,
    /// Home, away, visitor or the inferred out (`mode.rs`).
    mode: mode::ModeState,
    /// Alerts held back by pre-alarms, and the local warnings for the
    /// shell to carry out (`prealarm.rs`).
    prealarms: Vec<prealarm::Pre>,
    warnings: Vec<prealarm::Warning>,
    /// Whether any rule is `gone_out` / has a `prealarm` (set by
    /// `install`): without them, emitted alerts skip those checks (a timer
    /// storm of 100k alerts pays nothing for them).
    any_gone_out: bool,
    any_prealarm: bool,
}

/// Largest timer batch whose buffers `on_tick` keeps for the next tick.
const KEEP_BATCH: usize = 1 << 17;

impl Engine {
    /// The built-in safety rules: panic, fall, smoke, CO and water leak raise
    /// an urgent alert (smoke, CO and leak clear when the sensor goes idle).
    pub fn minimal() -> Engine {
        let set = RuleSet::parse(MINIMAL_RULES, "built-in").unwrap_or_default();
        Engine::build(
            &set,
            TimeZone::get("Europe/London").unwrap_or(TimeZone::UTC),
        )
    }

    /// Compiles a rule set; windows are read in `tz`.
    pub fn new(set: &RuleSet, tz: TimeZone) -> Result<Engine, RulesError> {
        Ok(Engine::build(set, tz))
    }

    fn build(set: &RuleSet, tz: TimeZone) -> Engine {
        let mut e = Engine {
            rules: Vec::new(),
            disabled: Vec::new(),
            devs: Devices::default(),
            tz,
            timers: Timers::default(),
            by_kind: Vec::new(),
            any_kind: Vec::new(),
            by_room: std::collections::HashMap::new(),
            route_lists: Vec::new(),
            route_ids: std::collections::HashMap::new(),
            route_scratch: Vec::new(),
            now: i64::MIN,
            needs_start: true,
            generation: 0,
            saved_generation: 0,
            journal: journal::Journal::default(),
            dropped: 0,
            batch: Vec::new(),
            scratch: Vec::new(),
            escalations: escalate::Escalations::default(),
            mode: mode::ModeState::default(),
            prealarms: Vec::new(),
            warnings: Vec::new(),
            any_gone_out: false,
            any_prealarm: false,
        };
        e.install(set, Vec::new());
        e
    }

    /// Replaces the rules; rules with the same id and an identical spec keep
    /// their state (raised alerts, clocks, learnt routine); others start fresh.
    pub fn reload(&mut self, set: &RuleSet) -> ReloadSummary {
        let old = std::mem::take(&mut self.rules);
        let n_old = old.len();
        let kept = self.install(set, old);
        self.bump_all();
        ReloadSummary {
            kept,
            fresh: self.rules.len() - kept,
            removed: n_old - kept,
        }
    }

    fn install(&mut self, set: &RuleSet, mut old: Vec<Rule>) -> usize {
        let mut kept = 0;
        self.rules.clear();
        self.disabled.clear();
        for spec in &set.rules {
            if !spec.enabled {
                self.disabled.push(spec.clone());
                continue;
            }
            match old.iter().position(|r| r.spec == *spec) {
                Some(i) => {
                    let mut r = old.swap_remove(i);
                    for s in r.slots.values_mut() {
                        s.queued = OptMs::NONE;
                    }
                    self.rules.push(r);
                    kept += 1;
                }
                None => self.rules.push(Rule::compile(spec)),
            }
        }
        self.by_kind = vec![Vec::new(); Kind::ALL.len()];
        self.any_kind.clear();
        self.by_room.clear();
        for (i, r) in self.rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            // Most rules name a room: index those by room, the rest by kind.
            let everywhere = matches!(
                r.spec.kind,
                RuleType::Sequence | RuleType::Dwell | RuleType::GoneOut
            );
            if !everywhere && !r.spec.rooms.0.is_empty() {
                for room in &r.spec.rooms.0 {
                    self.by_room.entry(room.clone()).or_default().push(i);
                }
                // Evidence of being back inside comes from any room.
                if r.inside {
                    for k in rule::EVIDENCE {
                        if let Some(v) = self.by_kind.get_mut(usize::from(k.code())) {
                            v.push(i);
                        }
                    }
                }
                continue;
            }
            match &r.route_kinds {
                Some(kinds) => {
                    for k in kinds {
                        if let Some(v) = self.by_kind.get_mut(usize::from(k.code())) {
                            v.push(i);
                        }
                    }
                }
                None => self.any_kind.push(i),
            }
        }
        self.any_gone_out = self.rules.iter().any(|r| r.spec.kind == RuleType::GoneOut);
        self.any_prealarm = self.rules.iter().any(|r| r.prealarm_ms > 0);
        self.devs.clear_routes();
        self.route_lists.clear();
        self.route_ids.clear();
        self.rebuild_timers();
        self.needs_start = true;
        kept
    }

    /// Re-queues exactly one heap entry per armed slot.
    fn rebuild_timers(&mut self) {
        let mut entries = Vec::new();
        for (ri, r) in self.rules.iter_mut().enumerate() {
            let ri = u32::try_from(ri).unwrap_or(u32::MAX);
            for (&subject, s) in r.slots.iter_mut() {
                s.queued = s.deadline;
                if let Some(d) = s.deadline.get() {
                    entries.push(Entry {
                        at: Time(d),
                        rule: ri,
                        subject,
                    });
                }
            }
        }
        self.timers.rebuild(entries);
    }

    /// Registry facts (room, name, role) changed for a device.
    pub fn set_device(&mut self, info: &DeviceInfo) {
        self.devs.set(info);
    }

    /// Seeds routine rules from stored history (call after `set_device` for
    /// every device, before live readings). Only learning happens: no alert,
    /// no other rule state changes.
    /// Whether any rule learns from history (a routine rule): without one,
    /// start-up need not read the history at all.
    pub fn learns_routines(&self) -> bool {
        self.rules.iter().any(|r| r.routine.is_some())
    }

    pub fn learn_from_history<'a>(&mut self, readings: impl Iterator<Item = &'a Reading>) {
        if !self.learns_routines() {
            return;
        }
        for r in readings {
            let dev = self.devs.intern(&r.device);
            let rid = self.route(dev, r.kind);
            let route = self.route_lists.get(rid).map_or(&[][..], |v| &v[..]);
            for &ri in route.iter() {
                if let Some(rule) = self.rules.get_mut(ri as usize)
                    && rule.routine.is_some()
                    && r.value >= rule.min_value
                    && routine::learn(rule, &self.tz, r.at, true)
                {
                    rule.started = false;
                    self.needs_start = true;
                }
            }
        }
        self.bump_all();
    }

    /// The rules a reading of `kind` from `dev` must visit (cached).
    fn route(&mut self, dev: u32, kind: Kind) -> usize {
        let id = self.devs.route(dev, kind);
        if id != devices::NO_ROUTE {
            return id as usize;
        }
        let by_kind = self
            .by_kind
            .get(usize::from(kind.code()))
            .map_or(&[][..], |v| v.as_slice());
        let by_room = self
            .devs
            .room_name(dev)
            .and_then(|room| self.by_room.get(room))
            .map_or(&[][..], |v| v.as_slice());
        // Looked up by slice: a device whose rules match an existing
        // list (all but the first of a kind, at a care site of thousands
        // of pendants) allocates nothing.
        let mut list = std::mem::take(&mut self.route_scratch);
        list.clear();
        list.extend(
            by_kind
                .iter()
                .chain(self.any_kind.iter())
                .chain(by_room.iter())
                .copied()
                .filter(|&ri| {
                    self.rules
                        .get(ri as usize)
                        .is_some_and(|r| r.matches(&self.devs, dev, kind))
                }),
        );
        list.sort_unstable();
        list.dedup();
        let id = match self.route_ids.get(list.as_slice()) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.route_lists.len()).unwrap_or(devices::NO_ROUTE - 1);
                let owned: Box<[u32]> = list.as_slice().into();
                self.route_lists.push(owned.clone());
                self.route_ids.insert(owned, id);
                id
            }
        };
        self.route_scratch = list;
        self.devs.set_route(dev, kind, id);
        id as usize
    }

    /// A reading arrived; alerts it causes are appended to `out`.
    pub fn on_reading(&mut self, now: Time, r: &Reading, out: &mut Vec<Alert>) {
        self.on_tick(now, out);
        let now = self.now;
        let dev = self.devs.intern(&r.device);
        self.journal.dev(dev);
        let prev = self.devs.last_value(dev, r.kind);
        if self.devs.check_fresh(dev, r.kind, r.at.0, r.value) != Freshness::New {
            self.dropped += 1;
            return;
        }
        self.devs.set_arrived(dev, r.kind, now);
        let changed = eval::is_news(r.kind, prev, r.value);
        self.mode_reading(dev, r, changed, now, out);
        if !self.prealarms.is_empty()
            && prealarm::is_cancel_press(r, self.devs.get(dev).and_then(|d| d.role.as_deref()))
        {
            let how = format!("button press {}", self.where_is(dev));
            self.cancel_prealarms(&how, now, out);
        }
        // What the rules emit for this reading (the mode change and the
        // cancel records above are final already).
        let from = out.len();
        let paused = self.mode.mode.stands_down();
        let rid = self.route(dev, r.kind);
        let route = self.route_lists.get(rid).map_or(&[][..], |v| &v[..]);
        if route.is_empty() {
            return;
        }
        let mut ctx = Ctx::new(
            &self.devs,
            &self.tz,
            &mut self.timers,
            out,
            rule::RULE_SUBJECT,
        );
        for &ri in route.iter() {
            if let Some(rule) = self.rules.get_mut(ri as usize) {
                if paused && mode::stands_down(rule.spec.kind) {
                    continue;
                }
                if let Some(subject) = eval::on_reading(rule, ri, &mut ctx, dev, r, (now, changed))
                {
                    self.journal.slot(ri, subject);
                }
            }
        }
        for (ri, subject) in ctx.touched {
            self.journal.slot(ri, subject);
        }
        self.after_emit(out, from);
        self.generation += 1;
    }

    /// "in the hall (Pendant)": where a device is, for texts.
    fn where_is(&self, dev: u32) -> String {
        let d = self.devs.get(dev);
        let name = d.map_or("a device", |d| d.name.as_deref().unwrap_or(d.id.as_str()));
        match self.devs.room_name(dev) {
            Some(r) => format!("in the {r} ({name})"),
            None => format!("({name})"),
        }
    }

    /// Starts and ends escalations for the alerts emitted from `from` on.
    pub(crate) fn observe(&mut self, out: &[Alert], from: usize) {
        if let Some(new) = out.get(from..)
            && !new.is_empty()
        {
            self.escalations.observe(&self.rules, new);
        }
    }

    /// The engine's clock: the latest `now` it was given (or restored).
    pub fn now(&self) -> Time {
        Time(self.now)
    }

    /// Increases whenever rule state changes; persist when it differs from
    /// the value at the last save.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// State changed since [`Engine::mark_saved`].
    pub fn state_dirty(&self) -> bool {
        self.generation != self.saved_generation
    }

    /// State changed in a way not tracked slot by slot: the next
    /// [`Engine::save`] is a full one.
    pub(crate) fn bump_all(&mut self) {
        self.journal.all();
        self.generation += 1;
    }

    /// Call after storing [`Engine::snapshot`].
    pub fn mark_saved(&mut self) {
        self.saved_generation = self.generation;
    }

    /// Readings dropped as duplicates or out of order.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Each enabled rule's id and type (`silent`, `inactivity`, …): what
    /// the alarm receiving centre path maps an alert's rule to.
    pub fn rule_types(&self) -> Vec<(std::sync::Arc<str>, spec::RuleType)> {
        self.rules
            .iter()
            .map(|r| (r.compiled.spec.id.clone(), r.compiled.spec.kind))
            .collect()
    }

    /// Number of compiled (enabled) rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Number of armed timers.
    pub fn armed_timers(&self) -> usize {
        self.timers.live
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_care;
#[cfg(test)]
mod tests_modes;
#[cfg(test)]
mod tests_state;
#[cfg(test)]
mod tests_step;
#[cfg(test)]
mod tests_time;
