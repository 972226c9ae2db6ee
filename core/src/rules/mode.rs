//! The household's mode: `home`, `away` (she is out), `visitor` (she has
//! company) and the inferred `out` (a `gone_out` rule's open check).
//!
//! In `away` and `visitor` mode the rules that watch for her being still
//! or missing — `inactivity`, `absence`, `routine`, `dwell`, `gone_out`
//! ([`stands_down`]) — stand down: their open alerts are resolved ("— away
//! mode (web UI)"), readings do not reach them and their timers do not
//! fire. They stand up by themselves at `until` (expiry), or in away mode
//! when she is seen coming back (a door opening, then motion or
//! occupancy indoors), or when the mode is set back to `home`; their clocks
//! then start afresh (a window she was away for is not held against her).
//! In the inferred `out` mode nothing stands down (a guess must never
//! silence a rule): alerts of those rules go out softened to `info`,
//! "Probably out — …", until motion indoors clears the `gone_out` check.
//! Panic, fall, smoke, CO, leak and every other rule never stand down.
//!
//! Set from the web UI, `cmd/mode` and the replay story (`{"mode":…}`),
//! and by devices: role [`FOB_ROLE`] (`switch` 1 = away, 0 = home; a key
//! fob's On/Off) and role [`VISITOR_ROLE`] (`switch` 1 = visitor for 4 h,
//! 0 = home).
//! The mode is part of the persisted state and of the status document.

use serde::{Deserialize, Serialize};

use super::Engine;
use super::ctx::{Cause, Ctx};
use super::kind;
use super::rule::{Phase, RULE_SUBJECT};
use super::spec::RuleType;
use crate::model::{Alert, AlertState, Kind, Reading, Severity, Time};

/// A key fob that sets away (`switch` = 1) and home (`switch` = 0).
pub const FOB_ROLE: &str = "mode_fob";
/// A button that sets visitor mode (`switch` = 1) and home (`switch` = 0).
pub const VISITOR_ROLE: &str = "visitor_button";
/// Doors whose opening, followed by motion indoors, is her coming back.
pub const EXIT_ROLES: [&str; 3] = ["front_door", "back_door", "door"];
/// Away mode: a door opening this soon after the mode was set is her
/// leaving, not coming back.
pub const EXIT_DELAY_MS: i64 = 10 * 60_000;
/// Away mode: motion indoors this soon after an exit door opened is her
/// coming back.
pub const RETURN_MS: i64 = 10 * 60_000;
/// Visitor mode without `until` ends after this long.
pub const VISITOR_DEFAULT_MS: i64 = 4 * 3_600_000;
/// The longest a mode may be set for.
pub const MAX_MS: i64 = 30 * 86_400_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Home,
    Away,
    Visitor,
    /// Inferred: a `gone_out` check is open (cannot be set).
    Out,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Home => "home",
            Mode::Away => "away",
            Mode::Visitor => "visitor",
            Mode::Out => "out",
        }
    }

    /// Whether the rules of [`stands_down`] stand down in this mode.
    pub fn stands_down(self) -> bool {
        matches!(self, Mode::Away | Mode::Visitor)
    }
}

impl std::str::FromStr for Mode {
    type Err = ModeError;
    fn from_str(s: &str) -> Result<Mode, ModeError> {
        match s {
            "home" => Ok(Mode::Home),
            "away" => Ok(Mode::Away),
            "visitor" => Ok(Mode::Visitor),
            _ => Err(ModeError::Unknown(s.chars().take(32).collect())),
        }
    }
}

/// Why a mode could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    #[error("mode: {0:?} is not one of home, away, visitor")]
    Unknown(String),
    #[error("until: must be after now")]
    Past,
    #[error("until: at most 30 days ahead")]
    TooFar,
    #[error("until: not used with mode home")]
    UntilHome,
}

/// The mode, since when, until when and who set it (status document).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModeState {
    pub mode: Mode,
    /// When it was set (the epoch: never).
    pub since: Time,
    /// When it stands up by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Time>,
    /// Who or what set it: `web UI`, `cmd/mode`, `key fob (Fob)`,
    /// `expired`, `return detected: …`, `gone_out check`.
    #[serde(default)]
    pub source: String,
    /// Away mode: when an exit door opened (the first half of a return).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_at: Option<i64>,
}

/// The rule types that stand down in away and visitor mode.
pub fn stands_down(t: RuleType) -> bool {
    matches!(
        t,
        RuleType::Inactivity
            | RuleType::Absence
            | RuleType::Routine
            | RuleType::Dwell
            | RuleType::GoneOut
    )
}

impl Engine {
    /// The household's mode (see the module header).
    pub fn mode(&self) -> &ModeState {
        &self.mode
    }

    /// Sets the mode (`home`, `away`, `visitor`; `until` optional, visitor
    /// mode defaults to 4 h); alerts resolved by standing down are appended
    /// to `out`. `source` says who set it.
    pub fn set_mode(
        &mut self,
        mode: Mode,
        until: Option<Time>,
        source: &str,
        now: Time,
        out: &mut Vec<Alert>,
    ) -> Result<(), ModeError> {
        self.on_tick(now, out);
        let now = self.now;
        let until = match (mode, until) {
            (Mode::Out, _) => return Err(ModeError::Unknown("out".into())),
            (Mode::Home, Some(_)) => return Err(ModeError::UntilHome),
            (_, Some(u)) if u.0 <= now => return Err(ModeError::Past),
            (_, Some(u)) if u.0 - now > MAX_MS => return Err(ModeError::TooFar),
            (Mode::Visitor, None) => Some(now + VISITOR_DEFAULT_MS),
            (_, u) => u.map(|t| t.0),
        };
        self.change_mode(mode, until, source, now, out);
        Ok(())
    }

    /// Moves to `mode` at `at`, standing rules down or up as needed.
    pub(super) fn change_mode(
        &mut self,
        mode: Mode,
        until: Option<i64>,
        source: &str,
        at: i64,
        out: &mut Vec<Alert>,
    ) {
        let was = self.mode.mode;
        self.mode = ModeState {
            mode,
            since: Time(at),
            until: until.map(Time),
            source: source.to_string(),
            door_at: None,
        };
        self.bump_all();
        match (was.stands_down(), mode.stands_down()) {
            (false, true) => self.stand_down(at, out),
            (true, false) => self.stand_up(at),
            _ => {}
        }
    }

    /// Away or visitor mode begins: open alerts of the rules that stand
    /// down are resolved, their timers disarmed.
    fn stand_down(&mut self, at: i64, out: &mut Vec<Alert>) {
        let how = format!("{} mode ({})", self.mode.mode.as_str(), self.mode.source);
        let from = out.len();
        for (ri, rule) in self.rules.iter_mut().enumerate() {
            if !stands_down(rule.spec.kind) {
                continue;
            }
            let ri = u32::try_from(ri).unwrap_or(u32::MAX);
            let c = &rule.compiled;
            for (&subject, slot) in rule.slots.iter_mut() {
                let mut ctx = Ctx::new(&self.devs, &self.tz, &mut self.timers, out, subject);
                ctx.arm(slot, ri, subject, None);
                if c.spec.kind == RuleType::Dwell {
                    kind::Dwell::forget(slot, ri, &mut ctx);
                }
                if slot.phase == Phase::Pending {
                    slot.phase = Phase::Idle;
                }
                if slot.phase != Phase::Raised {
                    continue;
                }
                let what = match c.spec.kind {
                    RuleType::Absence => c
                        .window()
                        .map_or_else(String::new, |w| kind::absence::absent(*w)),
                    RuleType::Routine => "No activity by the usual time".to_string(),
                    RuleType::Dwell => kind::dwell::what(c),
                    RuleType::GoneOut => kind::gone_out::what(c, &ctx, slot.since),
                    _ => c.what.clone(),
                };
                let cause = Cause::timer(c, slot.dev, at);
                ctx.resolve(slot, &cause, &what, &format!("stood down: {how}"));
            }
        }
        self.after_emit(out, from);
    }

    /// Home (or expiry, or return detected): the rules that stood down
    /// start afresh at `at`.
    fn stand_up(&mut self, at: i64) {
        for (ri, rule) in self.rules.iter_mut().enumerate() {
            if !stands_down(rule.spec.kind) {
                continue;
            }
            let ri = u32::try_from(ri).unwrap_or(u32::MAX);
            let mut none = Vec::new();
            let t = rule.spec.kind;
            let crate::rules::rule::Rule {
                compiled: c,
                slots,
                routine,
                ..
            } = rule;
            if matches!(t, RuleType::Absence | RuleType::Routine)
                && !slots.contains_key(&RULE_SUBJECT)
            {
                slots.insert(RULE_SUBJECT, super::rule::Slot::default());
            }
            for (&subject, slot) in slots.iter_mut() {
                let mut ctx = Ctx::new(&self.devs, &self.tz, &mut self.timers, &mut none, subject);
                match t {
                    RuleType::Inactivity => {
                        kind::Inactivity::restart(c, slot, ri, subject, &mut ctx, at);
                    }
                    RuleType::Absence => kind::Absence::restart(c, slot, ri, &mut ctx, at),
                    RuleType::Routine => {
                        kind::Routine::restart(c, routine.as_deref_mut(), slot, ri, &mut ctx, at);
                    }
                    RuleType::Dwell => kind::Dwell::forget(slot, ri, &mut ctx),
                    _ => ctx.arm(slot, ri, subject, None),
                }
            }
        }
        self.bump_all();
    }

    /// A reading may change the mode (fob, visitor button, a return home)
    /// before the rules see it. `changed`: the reading is news.
    pub(super) fn mode_reading(
        &mut self,
        dev: u32,
        r: &Reading,
        changed: bool,
        now: i64,
        out: &mut Vec<Alert>,
    ) {
        if !changed {
            return;
        }
        let mode = self.mode.mode;
        // Hot path: most readings are neither a mode device's nor away.
        if r.kind != Kind::Switch && mode != Mode::Away {
            return;
        }
        let Some(d) = self.devs.get(dev) else { return };
        let role = d.role.as_deref().unwrap_or("");
        let name = d.name.as_deref().unwrap_or(d.id.as_str()).to_string();
        if role == FOB_ROLE && r.kind == Kind::Switch {
            let to = if r.is_active() {
                Mode::Away
            } else {
                Mode::Home
            };
            if to != mode {
                self.change_mode(to, None, &format!("key fob ({name})"), now, out);
            }
            return;
        }
        if role == VISITOR_ROLE && r.kind == Kind::Switch {
            let (to, until) = if r.is_active() {
                (Mode::Visitor, Some(now + VISITOR_DEFAULT_MS))
            } else {
                (Mode::Home, None)
            };
            if to != mode {
                self.change_mode(to, until, &format!("visitor button ({name})"), now, out);
            }
            return;
        }
        if mode != Mode::Away || !r.is_active() {
            return;
        }
        if r.kind == Kind::Contact && EXIT_ROLES.contains(&role) {
            if now >= self.mode.since.0.saturating_add(EXIT_DELAY_MS) {
                self.mode.door_at = Some(now);
                self.generation += 1;
            }
        } else if matches!(r.kind, Kind::Motion | Kind::Occupancy)
            && let Some(door) = self.mode.door_at
            && now <= door.saturating_add(RETURN_MS)
        {
            let at = crate::rules::window::local_secs(&self.tz, Time(door))
                .map_or_else(String::new, crate::rules::window::fmt_hhmm);
            let room = self.devs.room_name(dev).unwrap_or("home").to_string();
            let source = format!(
                "return detected: door at {at}, then {} in the {room}",
                r.kind
            );
            self.change_mode(Mode::Home, None, &source, now, out);
        }
    }

    /// Alerts just emitted (from `from` on): a `gone_out` raise or clear
    /// moves the inferred `out` mode; in `out` mode, alerts of the rules
    /// that would stand down go out softened; pre-alarms hold back what
    /// they must; escalations start and end.
    pub(super) fn after_emit(&mut self, out: &mut Vec<Alert>, from: usize) {
        let Some(new) = out.get_mut(from..) else {
            return;
        };
        if new.is_empty() {
            return;
        }
        let watch = self.any_gone_out || self.mode.mode == Mode::Out;
        for a in new.iter_mut().filter(|_| watch) {
            let Some(rule) = self.rules.iter().find(|r| r.spec.id == a.rule) else {
                continue;
            };
            let t = rule.spec.kind;
            if t == RuleType::GoneOut {
                match a.state {
                    AlertState::Raised if self.mode.mode == Mode::Home => {
                        self.mode = ModeState {
                            mode: Mode::Out,
                            since: a.at,
                            until: None,
                            source: "gone_out check".into(),
                            door_at: None,
                        };
                    }
                    AlertState::Cleared if self.mode.mode == Mode::Out => {
                        self.mode = ModeState {
                            mode: Mode::Home,
                            since: a.at,
                            until: None,
                            source: "movement indoors".into(),
                            door_at: None,
                        };
                    }
                    _ => {}
                }
            } else if self.mode.mode == Mode::Out && stands_down(t) && a.state == AlertState::Raised
            {
                a.severity = Severity::Info;
                a.message = format!("Probably out — {}", a.message);
            }
        }
        self.hold_prealarms(out, from);
        self.observe(out, from);
    }
}
