//! The World's rule-state persistence: the hub's periodic save, its save
//! with every alert commit and ack (`commit_alerts`), and the snapshot
//! bytes a crash restarts from (made lazily: see `save`).

use carebridge::model::Kind;

use super::{Fault, World};

impl World {
    /// The hub's periodic save. Serialising on every save would cost most
    /// of the run (a snapshot is ~0.5 ms in a debug build), and the bytes
    /// matter only to a crash before the next save: they are made only in
    /// the minute before a scheduled crash, or later while the engine is
    /// still clean (its state is then exactly the saved one).
    pub(super) fn save(&mut self) {
        self.save_at = None;
        if self.engine.state_dirty() {
            self.engine.mark_saved();
            self.saved = Some((self.expect.clone(), self.en));
            self.save_no += 1;
            self.saved_gen = self.save_no;
            self.books.saved();
            self.count("saves");
            self.trap =
                self.t < self.month.calm_from && self.alert_likely() && self.rng.chance(0.04);
            if self.trap || self.crash_near() {
                self.serialise();
            }
        }
    }

    /// Whether the next change of rule state (which ends the trap: the
    /// save after it re-rolls it) may be an alert: a timer due before the
    /// next reading, or a reading that can raise or clear something.
    /// (Serialising at every save for the trap would cost most of the run.)
    pub(super) fn alert_likely(&self) -> bool {
        let Some(e) = self.month.events.get(self.next_ev) else {
            return false;
        };
        if self
            .true_of(self.engine.next_deadline())
            .is_some_and(|d| d <= e.t)
        {
            return true;
        }
        let open = |r: &str| self.books.open_rule(r);
        match e.kind {
            Kind::Panic
            | Kind::Fall
            | Kind::WaterLeak
            | Kind::Tamper
            | Kind::Contact
            | Kind::Bed => true,
            Kind::Motion => open("no-movement") || open("no-breakfast"),
            Kind::Temperature => e.value < 16.0 || open("cold-home"),
            Kind::Battery => e.value < 20.0 || open("silent") || open("battery"),
            _ => false,
        }
    }

    /// The hub commits the rule state with its alerts (one transaction)
    /// and saves it after an ack: alert changes are never left unsaved.
    pub(super) fn commit_alerts(&mut self) {
        if std::mem::take(&mut self.unsaved_alerts) {
            self.save();
        }
    }

    pub(super) fn serialise(&mut self) {
        if self.bytes_gen != Some(self.saved_gen) {
            self.saved_bytes = self.engine.snapshot();
            self.bytes_gen = Some(self.saved_gen);
            self.count("snapshots");
        }
    }

    /// While the engine is clean its state is the saved one: make the bytes
    /// now if a crash is near (before anything makes it dirty again).
    pub(super) fn serialise_if_clean(&mut self) {
        if self.saved.is_some()
            && self.down_until.is_none()
            && !self.engine.state_dirty()
            && self.bytes_gen != Some(self.saved_gen)
            && self.crash_near()
        {
            self.serialise();
        }
    }

    pub(super) fn crash_near(&self) -> bool {
        self.faults
            .iter()
            .take_while(|f| f.0 <= self.t + 60_000)
            .any(|f| matches!(f.1, Fault::Restart { crash: true, .. }))
    }
}
