//! The invariants, checked after every step, and the expectations they
//! need: a small model of what the engine must have seen (saved and
//! restored with the engine's snapshot, because it is engine state), and
//! the outbox-side bookkeeping (which survives restarts, like the outbox).

use std::collections::{BTreeMap, HashMap};

use carebridge::model::{Alert, AlertState, Kind};

use super::home::{self, DEVICES, HOUR, MIN};

/// Rules without a clear: a raise is closed by an acknowledgement (or, once
/// the cooldown has passed, may be raised again).
pub const NO_CLEAR: &[&str] = &["panic", "fall"];
pub const COOLDOWN_MS: i64 = 2 * MIN;
/// Rules with one subject for the whole rule (their raise and clear may
/// name different devices: the last active one, the one that resumed).
pub const RULE_SCOPED: &[&str] = &["no-movement", "no-breakfast"];

/// What the engine must know at this point, for lower bounds on timer
/// alerts. Engine time throughout (the gateway's wall clock, never back).
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Last accepted reading per (device, kind): (at, value) — mirrors the
    /// engine's duplicate / out-of-order filter.
    seen: HashMap<(usize, Kind), (i64, u64)>,
    last_motion: Option<i64>,
    cold_since: Option<i64>,
    last_msg: [Option<i64>; DEVICES.len()],
    /// Last temperature per device (the silent rule watches temperature
    /// on its own: `intervals = { temperature = "1h" }`).
    last_temp: [Option<i64>; DEVICES.len()],
    bed_exit: Option<i64>,
    door_open: Option<i64>,
}

impl Expect {
    /// Whether the engine will accept this reading (not stale, not a duplicate).
    pub fn fresh(&self, dev: usize, kind: Kind, value: f64, at: i64) -> bool {
        match self.seen.get(&(dev, kind)) {
            Some(&(a, _)) if at < a => false,
            Some(&(a, v)) => !(at == a && v == value.to_bits()),
            None => true,
        }
    }

    /// A reading the engine got at engine time `now`; false if it must
    /// have dropped it (stale or duplicate).
    pub fn reading(&mut self, dev: usize, kind: Kind, value: f64, at: i64, now: i64) -> bool {
        let bits = value.to_bits();
        match self.seen.get(&(dev, kind)) {
            Some(&(a, _)) if at < a => return false,
            Some(&(a, v)) if at == a && v == bits => return false,
            _ => {}
        }
        self.seen.insert((dev, kind), (at, bits));
        self.last_msg[dev] = Some(now);
        if kind == Kind::Temperature {
            self.last_temp[dev] = Some(now);
        }
        match (dev, kind) {
            (_, Kind::Motion) if value >= 0.5 => self.last_motion = Some(now),
            (home::TEMP, Kind::Temperature) => {
                if value < 16.0 {
                    self.cold_since.get_or_insert(now);
                } else if value >= 17.0 {
                    self.cold_since = None;
                }
            }
            (home::BED, Kind::Bed) if value < 0.5 => self.bed_exit = Some(now),
            // Only a change into "open" starts the window rule's clock (the
            // contact repeats its state with its battery reports).
            (home::DOOR, Kind::Contact) => {
                if value < 0.5 {
                    self.door_open = None;
                } else if self.door_open.is_none() {
                    self.door_open = Some(now);
                }
            }
            _ => {}
        }
        true
    }

    /// The wall clock stepped by `d` and the engine followed it
    /// (`Engine::shift`): its clocks move with the step, the last readings'
    /// times only when it stepped back.
    pub fn shift(&mut self, d: i64) {
        for v in self.seen.values_mut() {
            v.0 += d.min(0);
        }
        let clocks = [
            &mut self.last_motion,
            &mut self.cold_since,
            &mut self.bed_exit,
            &mut self.door_open,
        ];
        for t in clocks
            .into_iter()
            .chain(self.last_msg.iter_mut())
            .chain(self.last_temp.iter_mut())
            .flatten()
        {
            *t += d;
        }
    }

    /// The earliest `at` a timer-driven raise of `rule` may carry.
    fn earliest(&self, a: &Alert, dev: Option<usize>) -> Option<i64> {
        match &*a.rule {
            "no-movement" => self.last_motion.map(|t| t + 4 * HOUR),
            "cold-home" => Some(self.cold_since? + 30 * MIN),
            "possible-fall" => self.bed_exit.map(|t| t + 30 * MIN),
            "wandering" => self.door_open.map(|t| t + 5 * MIN),
            "silent" if a.kind == Some(Kind::Temperature) => self.last_temp[dev?].map(|t| t + HOUR),
            "silent" => {
                let d = dev?;
                let iv = if d == home::TEMP { HOUR } else { 6 * HOUR };
                self.last_msg[d].map(|t| t + iv)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Open {
    uid: String,
    /// The alert instance the raise named (its clear must name the same).
    instance: Option<String>,
    raised_at: i64,
    acked: bool,
}

/// Outbox-side bookkeeping and the upstream (cloud) receiver.
#[derive(Debug, Default)]
pub struct Books {
    /// Open situations by (rule, device or "*").
    open: BTreeMap<(String, String), Open>,
    /// Every alert ever raised into the outbox: uid → (rule, state, device).
    pub raised: BTreeMap<String, (String, AlertState, String)>,
    /// Upstream: uid → times received (de-duplicated by uid).
    pub upstream: BTreeMap<String, u32>,
    pub acked_rows: u64,
    /// Raises upstream saw for the first time (rule, device): the carer's to-do.
    pub newly_received: Vec<(String, String)>,
    /// Changes to `open` since the engine's state was last saved: what a
    /// crash would take back (see `unsaved`).
    journal: Vec<((String, String), Option<Open>)>,
    /// Raises resolved by their own clear (paired by key) or an ack.
    resolved: std::collections::HashSet<String>,
    /// Violations found where they cannot be returned at once.
    pub broken: Vec<String>,
}

pub fn key(a: &Alert) -> (String, String) {
    let dev = if RULE_SCOPED.contains(&&*a.rule) {
        "*".to_string()
    } else {
        a.device.to_string()
    };
    (a.rule.to_string(), dev)
}

fn dev_index(a: &Alert) -> Option<usize> {
    DEVICES.iter().position(|d| d.0 == a.device.as_str())
}

impl Books {
    /// An alert the engine emitted at engine time `now`, on its way into
    /// the outbox as `uid`.
    pub fn on_alert(&mut self, a: &Alert, uid: &str, now: i64, ex: &Expect) -> Result<(), String> {
        if a.at.0 > now {
            return Err(format!(
                "alert {} {} dated {} after the engine's now {now}",
                a.rule, a.device, a.at.0
            ));
        }
        if self
            .raised
            .insert(
                uid.to_string(),
                (a.rule.to_string(), a.state, a.device.to_string()),
            )
            .is_some()
        {
            return Err(format!("uid {uid} used twice"));
        }
        let k = key(a);
        match a.state {
            AlertState::Raised => {
                if let Some(min) = ex.earliest(a, dev_index(a))
                    && a.at.0 < min
                {
                    return Err(format!(
                        "timer fired early: {} {} at {} before its deadline {min} ({} ms early)",
                        a.rule,
                        a.device,
                        a.at.0,
                        min - a.at.0
                    ));
                }
                if let Some(o) = self.open.get(&k) {
                    let again = NO_CLEAR.contains(&&*a.rule)
                        && (o.acked || now >= o.raised_at + COOLDOWN_MS);
                    if !again {
                        return Err(format!(
                            "{} {} raised twice (open since {}: {})",
                            k.0, k.1, o.raised_at, o.uid
                        ));
                    }
                }
                let before = self.open.insert(
                    k.clone(),
                    Open {
                        uid: uid.to_string(),
                        instance: a.instance.as_ref().map(|i| i.instance.to_string()),
                        raised_at: now,
                        acked: false,
                    },
                );
                if let Some(o) = &before {
                    // KNOWN: a raise again after the cooldown takes over the
                    // slot; an ack names rule + device, not this instance,
                    // so it answers for both (instance ids: another issue).
                    self.resolved.insert(o.uid.clone());
                }
                self.journal.push((k, before));
            }
            AlertState::Cleared => {
                if NO_CLEAR.contains(&&*a.rule) {
                    return Err(format!("{} cleared but has no clear", a.rule));
                }
                // Paired by rule + device (clears are named after the
                // raise's device), and the clear must close the raise's own
                // instance.
                match self.open.remove(&k) {
                    Some(o) => {
                        let closes = a.instance.as_ref().map(|i| i.instance.to_string());
                        if o.instance.is_some() && closes != o.instance {
                            return Err(format!(
                                "{} {} clear names instance {closes:?}, the open alert is {:?}",
                                k.0, k.1, o.instance
                            ));
                        }
                        self.resolved.insert(o.uid.clone());
                        self.journal.push((k, Some(o)));
                    }
                    None => return Err(format!("{} {} cleared without an open raise", k.0, k.1)),
                }
            }
        }
        Ok(())
    }

    /// The carer acknowledged (rule, device) and the engine found it.
    pub fn on_ack(&mut self, rule: &str, device: &str) {
        let k = (
            rule.to_string(),
            if RULE_SCOPED.contains(&rule) {
                "*".into()
            } else {
                device.to_string()
            },
        );
        let before = self.open.get(&k).cloned();
        if let Some(o) = &before {
            self.resolved.insert(o.uid.clone());
        }
        if NO_CLEAR.contains(&rule) {
            self.open.remove(&k);
        } else if let Some(o) = self.open.get_mut(&k) {
            o.acked = true;
        }
        self.journal.push((k, before));
    }

    pub fn open_rule(&self, rule: &str) -> bool {
        self.open.keys().any(|k| k.0 == rule)
    }

    pub fn is_open(&self, rule: &str, device: &str) -> bool {
        self.open
            .contains_key(&(rule.to_string(), device.to_string()))
    }

    /// The engine's state was saved: the journal is committed.
    pub fn saved(&mut self) {
        self.journal.clear();
    }

    /// Alert changes (raises, clears, acks) since the engine's state was
    /// last saved: what a crash would take back. The hub commits the rule
    /// state with every alert and saves it after every ack, so this is 0 at
    /// any crash. (It was not: the state was saved only every 10 s, so a
    /// crash right after an alert replayed it under a new uid, or forgot a
    /// clear and hid the next leak: `SIM_SEED=115`.)
    pub fn unsaved(&self) -> usize {
        self.journal.len()
    }

    pub fn receive(&mut self, uid: &str) -> Result<(), String> {
        if !self.raised.contains_key(uid) {
            return Err(format!("upstream got {uid}, which was never raised"));
        }
        let n = self.upstream.entry(uid.to_string()).or_default();
        *n += 1;
        if *n == 1
            && let Some((rule, AlertState::Raised, dev)) = self.raised.get(uid)
        {
            self.newly_received.push((rule.clone(), dev.clone()));
        }
        Ok(())
    }

    /// The outbox deletes a row: only after upstream acknowledged it.
    pub fn on_delete(&mut self, uid: &str) -> Result<(), String> {
        if !self.upstream.contains_key(uid) {
            return Err(format!("outbox row {uid} deleted before upstream had it"));
        }
        self.acked_rows += 1;
        Ok(())
    }

    /// At the end of the run (after the calm days and the drain).
    pub fn at_end(&self, outbox_rows: usize) -> Result<(), String> {
        let missing: Vec<&String> = self
            .raised
            .keys()
            .filter(|u| !self.upstream.contains_key(*u))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} alerts never delivered upstream, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(3)]
            ));
        }
        if outbox_rows != 0 {
            return Err(format!(
                "{outbox_rows} rows still in the outbox after the drain"
            ));
        }
        let unresolved = self
            .raised
            .iter()
            .find(|(u, r)| r.1 == AlertState::Raised && !self.resolved.contains(*u));
        if let Some((u, (rule, _, dev))) = unresolved {
            return Err(format!(
                "{rule} {dev} raised ({u}) never cleared or acknowledged"
            ));
        }
        if let Some((k, o)) = self.open.iter().next() {
            return Err(format!(
                "{} {} still open in the engine ({})",
                k.0, k.1, o.uid
            ));
        }
        Ok(())
    }
}
