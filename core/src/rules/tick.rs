//! Time passing in the engine: timers due at `now` fire in their
//! restart-proof order (`due`), escalations and pre-alarms fall due, the
//! household's mode expires, and wall-clock steps move the whole state
//! ([`Engine::shift`]). Split from `mod.rs`; the invariants are the
//! engine's (see there).

use super::ctx::Ctx;
use super::rule::{OptMs, Rule};
use super::timers::Entry;
use super::{Engine, KEEP_BATCH, due, eval, mode, rule};
use crate::model::{Alert, Time};

impl Engine {
    pub(super) fn advance(&mut self, now: Time, out: &mut Vec<Alert>) -> i64 {
        let now = self.now.max(now.0);
        self.now = now;
        if self.needs_start {
            self.needs_start = false;
            let mut ctx = Ctx::new(
                &self.devs,
                &self.tz,
                &mut self.timers,
                out,
                rule::RULE_SUBJECT,
            );
            for (ri, rule) in self.rules.iter_mut().enumerate() {
                if !rule.started {
                    eval::start(rule, u32::try_from(ri).unwrap_or(u32::MAX), &mut ctx, now);
                }
            }
            self.bump_all();
        }
        now
    }

    /// Time passed; timer-driven alerts are appended to `out`.
    pub fn on_tick(&mut self, now: Time, out: &mut Vec<Alert>) {
        let now = self.advance(now, out);
        if let Some(u) = self.mode.until
            && u.0 <= now
        {
            self.change_mode(mode::Mode::Home, None, "expired", u.0, out);
        }
        self.send_due_prealarms(now, out);
        // Reused between ticks: a large batch allocates (and faults in)
        // its buffer once, not on every tick.
        let mut batch = std::mem::take(&mut self.batch);
        loop {
            let esc = self.escalations.next().filter(|&d| d <= now);
            let Some(at) = self.timers.peek().filter(|&at| at.0 <= now) else {
                if esc.is_some() && self.escalations.fire(now, out) {
                    self.generation += 1;
                }
                break;
            };
            if let Some(d) = esc
                && d < at.0
            {
                if self.escalations.fire(at.0 - 1, out) {
                    self.generation += 1;
                }
                continue;
            }
            let from = out.len();
            // Everything due at the same instant, in the restart-proof
            // order that is also memory order (see `due`).
            batch.clear();
            self.timers.take_due_at(at, &mut batch, |e| e);
            due::order(&mut batch, &mut self.scratch);
            out.reserve(batch.len());
            let mut fired = false;
            for chunk in batch.chunks(due::TOUCH_CHUNK) {
                if batch.len() > due::TOUCH_CHUNK {
                    due::touch(&self.rules, &self.devs, chunk);
                }
                for &e in chunk {
                    fired |= self.fire(e, now, out);
                }
            }
            if fired {
                self.after_emit(out, from);
                self.generation += 1;
            }
        }
        self.send_due_prealarms(now, out);
        // Keep the buffer, but not a huge one after a rare storm.
        if batch.capacity() <= KEEP_BATCH {
            batch.clear();
            self.batch = batch;
        }
        if self.scratch.capacity() > KEEP_BATCH {
            self.scratch = Vec::new();
        }
        if self.timers.needs_compaction() {
            self.rebuild_timers();
        }
    }

    fn fire(&mut self, e: Entry, now: i64, out: &mut Vec<Alert>) -> bool {
        let Some(rule) = self.rules.get_mut(e.rule as usize) else {
            return false;
        };
        let Rule {
            compiled,
            slots,
            routine,
            ..
        } = rule;
        let Some(slot) = slots.get_mut(&e.subject) else {
            return false;
        };
        if slot.queued.get() != Some(e.at.0) {
            return false; // stale entry
        }
        slot.queued = OptMs::NONE;
        self.journal.slot(e.rule, e.subject);
        self.timers.live = self.timers.live.saturating_sub(1);
        if self.mode.mode.stands_down() && mode::stands_down(compiled.spec.kind) {
            // Stood down: the clock starts afresh when the mode ends.
            slot.deadline = OptMs::NONE;
            return false;
        }
        let mut ctx = Ctx::new(&self.devs, &self.tz, &mut self.timers, out, e.subject);
        match slot.deadline.get() {
            None => false,
            // The deadline moved later than this entry: re-queue it, even if
            // already past, so timers fire in deadline order.
            Some(d) if d > e.at.0 => {
                let mut s = slot.clone();
                ctx.arm(&mut s, e.rule, e.subject, Some(d));
                *slot = s;
                false
            }
            Some(_) => {
                let at = eval::At {
                    ri: e.rule,
                    subject: e.subject,
                    now,
                    changed: false,
                };
                eval::on_timer(compiled, routine.as_deref_mut(), slot, at, &mut ctx);
                true
            }
        }
    }

    /// The wall clock stepped by `delta_ms` (the hub follows steps: see
    /// `clock::Clock::follow`); `now` is the time after it. Durations keep
    /// their true elapsed time (stored stamps and deadlines move with the
    /// step), timers at local-time instants (window ends, routine checks,
    /// in-window clocks) are recomputed from `now`, pending window states
    /// are re-checked against their window, and after a step back the last
    /// readings' times move too (so new readings are not taken for stale).
    /// Nothing fires here: call `on_tick(now)` next.
    pub fn shift(&mut self, delta_ms: i64, now: Time) {
        if delta_ms == 0 {
            return;
        }
        if self.now != i64::MIN {
            self.now = self.now.saturating_add(delta_ms);
        }
        self.devs.shift_seen(delta_ms.min(0));
        self.devs.shift_arrived(delta_ms);
        self.escalations.shift(delta_ms);
        let mut out = Vec::new();
        let ctx = Ctx::new(&self.devs, &self.tz, &mut self.timers, &mut out, 0);
        for (ri, rule) in self.rules.iter_mut().enumerate() {
            let ri = u32::try_from(ri).unwrap_or(u32::MAX);
            eval::shift(rule, ri, &ctx, delta_ms, now.0);
        }
        self.rebuild_timers();
        self.bump_all();
    }

    /// When `on_tick` next needs to be called, if ever. (May be early: a
    /// wake-up that finds nothing due is harmless.)
    pub fn next_deadline(&self) -> Option<Time> {
        let esc = self.escalations.next().map(Time);
        let pre = self.prealarms.iter().map(|p| Time(p.due)).min();
        let until = self.mode.until;
        [self.timers.peek(), esc, pre, until]
            .into_iter()
            .flatten()
            .min()
    }
}
