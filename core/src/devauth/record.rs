//! Credential records as stored: who (a device id or a service account),
//! a random salt and the MAC of the secret under it — never the secret —,
//! when and by whom it was made. The shell computes and checks the MAC
//! (HMAC-SHA256 via ring, constant-time) and writes the file atomically,
//! 0600; this module owns the format and its validation.
//!
//! File (`<data_dir>/devauth/credentials.json`):
//! ```json
//! {"version": 1, "credentials": [
//!   {"holder": {"device": "pendant"}, "salt": "<32 hex>", "mac": "<64 hex>",
//!    "created_at": "2026-12-04T15:00:00Z", "created_by": "ui:ann"}]}
//! ```
//! A device's MQTT user name is its id; a service account's is its name
//! (only [`acl::HOME_ASSISTANT`](super::acl::HOME_ASSISTANT) today), so no
//! device may be called that.
//!
//! `cmd/config` can push records: `{"device_credentials": {"set": [...],
//! "revoke": [...]}}`, each `set` item a holder with either `secret` (at
//! least [`MIN_PUSHED_SECRET`] characters, hashed on arrival) or a
//! precomputed `salt` + `mac`; `revoke` lists user names ([`parse_push`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::acl::HOME_ASSISTANT;
use crate::model::{DeviceId, Time};

/// The file format version written and read.
pub const VERSION: u32 = 1;
/// Bytes of salt.
pub const SALT_LEN: usize = 16;
/// Bytes of MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// The shortest secret accepted from `cmd/config` (generated ones are 32
/// hex characters, 128 bits of randomness).
pub const MIN_PUSHED_SECRET: usize = 24;
/// Service accounts a credential can be made for.
pub const SERVICES: &[&str] = &[HOME_ASSISTANT];

/// Whom a credential is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holder {
    Device(DeviceId),
    Service(String),
}

impl Holder {
    /// The MQTT user name this holder logs in with.
    pub fn username(&self) -> &str {
        match self {
            Holder::Device(d) => d.as_str(),
            Holder::Service(s) => s,
        }
    }

    /// A holder from a user name: a service name, else a device id.
    pub fn from_username(name: &str) -> Result<Holder, RecordError> {
        if SERVICES.contains(&name) {
            return Ok(Holder::Service(name.to_string()));
        }
        DeviceId::new(name)
            .map(Holder::Device)
            .map_err(|e| RecordError::new("device", e.to_string()))
    }

    fn check(&self) -> Result<(), RecordError> {
        match self {
            Holder::Service(s) if !SERVICES.contains(&s.as_str()) => Err(RecordError::new(
                "service",
                format!(
                    "{s:?} is not a service account (known: {})",
                    SERVICES.join(", ")
                ),
            )),
            Holder::Device(d) if SERVICES.contains(&d.as_str()) => Err(RecordError::new(
                "device",
                format!("{d} is the name of a service account; choose another device id"),
            )),
            _ => Ok(()),
        }
    }
}

/// One stored credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub holder: Holder,
    /// Hex, [`SALT_LEN`] bytes.
    pub salt: String,
    /// Hex, [`MAC_LEN`] bytes: HMAC-SHA256(key = salt, secret).
    pub mac: String,
    pub created_at: Time,
    /// `ui:<user>` or `remote`.
    pub created_by: String,
}

impl Credential {
    /// The salt and MAC as bytes, checked.
    pub fn salt_mac(&self) -> Result<([u8; SALT_LEN], [u8; MAC_LEN]), RecordError> {
        let salt = <[u8; SALT_LEN]>::try_from(
            hex::decode(&self.salt)
                .map_err(|_| RecordError::new("salt", "not hex"))?
                .as_slice(),
        )
        .map_err(|_| RecordError::new("salt", format!("must be {SALT_LEN} bytes")))?;
        let mac = <[u8; MAC_LEN]>::try_from(
            hex::decode(&self.mac)
                .map_err(|_| RecordError::new("mac", "not hex"))?
                .as_slice(),
        )
        .map_err(|_| RecordError::new("mac", format!("must be {MAC_LEN} bytes")))?;
        Ok((salt, mac))
    }

    pub fn validate(&self) -> Result<(), RecordError> {
        self.holder.check()?;
        self.salt_mac()?;
        if self.created_by.len() > 128 {
            return Err(RecordError::new("created_by", "at most 128 characters"));
        }
        Ok(())
    }
}

/// A record or push that is not valid, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RecordError {
    pub field: String,
    pub reason: String,
}

impl RecordError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> RecordError {
        RecordError {
            field: field.into(),
            reason: reason.into(),
        }
    }
    fn within(self, at: &str) -> RecordError {
        RecordError {
            field: format!("{at}.{}", self.field),
            reason: self.reason,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    version: u32,
    credentials: Vec<Credential>,
}

/// The credentials, by user name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_user: BTreeMap<String, Credential>,
}

impl Credentials {
    /// Parses and validates the file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Credentials, RecordError> {
        let doc: FileDoc =
            serde_json::from_slice(bytes).map_err(|e| RecordError::new("file", e.to_string()))?;
        if doc.version != VERSION {
            return Err(RecordError::new(
                "version",
                format!(
                    "{} is not a version this gateway reads ({VERSION})",
                    doc.version
                ),
            ));
        }
        let mut out = Credentials::default();
        for (i, c) in doc.credentials.into_iter().enumerate() {
            c.validate()
                .map_err(|e| e.within(&format!("credentials[{i}]")))?;
            out.by_user.insert(c.holder.username().to_string(), c);
        }
        Ok(out)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let doc = FileDoc {
            version: VERSION,
            credentials: self.by_user.values().cloned().collect(),
        };
        serde_json::to_vec_pretty(&doc).unwrap_or_default()
    }

    pub fn get(&self, username: &str) -> Option<&Credential> {
        self.by_user.get(username)
    }

    /// Adds or replaces the holder's credential (validated).
    pub fn set(&mut self, c: Credential) -> Result<(), RecordError> {
        c.validate()?;
        self.by_user.insert(c.holder.username().to_string(), c);
        Ok(())
    }

    /// Removes the credential of `username`; whether there was one.
    pub fn revoke(&mut self, username: &str) -> bool {
        self.by_user.remove(username).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Credential> {
        self.by_user.values()
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }
}

/// One credential pushed by `cmd/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The secret itself, to be hashed on arrival.
    Secret { holder: Holder, secret: String },
    /// A record made elsewhere (salt + MAC only).
    Record(Credential),
}

/// What `{"device_credentials": …}` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Push {
    pub set: Vec<Pushed>,
    pub revoke: Vec<String>,
}

/// Parses `device_credentials` of a `cmd/config` body; `now` and `by` stamp
/// records pushed with salt + MAC.
pub fn parse_push(v: &serde_json::Value, now: Time, by: &str) -> Result<Push, RecordError> {
    let f = |k: &str| RecordError::new(format!("device_credentials.{k}"), "");
    let obj = v.as_object().ok_or_else(|| RecordError {
        reason: "an object with set and/or revoke".into(),
        ..f("")
    })?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "set" | "revoke")) {
        return Err(RecordError::new(
            format!("device_credentials.{k}"),
            "unknown field (set, revoke)",
        ));
    }
    let mut out = Push::default();
    for (i, item) in list(obj.get("set"), "set")?.iter().enumerate() {
        let at = format!("device_credentials.set[{i}]");
        out.set
            .push(parse_item(item, now, by).map_err(|e| e.within(&at))?);
    }
    for (i, item) in list(obj.get("revoke"), "revoke")?.iter().enumerate() {
        let at = format!("device_credentials.revoke[{i}]");
        let name = item
            .as_str()
            .ok_or_else(|| RecordError::new(at.clone(), "a user name (device id or service)"))?;
        Holder::from_username(name).map_err(|e| RecordError::new(at, e.reason))?;
        out.revoke.push(name.to_string());
    }
    Ok(out)
}

fn list<'a>(
    v: Option<&'a serde_json::Value>,
    k: &str,
) -> Result<&'a [serde_json::Value], RecordError> {
    match v {
        None => Ok(&[]),
        Some(serde_json::Value::Array(a)) => Ok(a),
        Some(_) => Err(RecordError::new(
            format!("device_credentials.{k}"),
            "a list",
        )),
    }
}

fn parse_item(item: &serde_json::Value, now: Time, by: &str) -> Result<Pushed, RecordError> {
    let o = item
        .as_object()
        .ok_or_else(|| RecordError::new("", "an object"))?;
    let s = |k: &str| -> Result<Option<&str>, RecordError> {
        match o.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RecordError::new(k, "a string")),
        }
    };
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "device" | "service" | "secret" | "salt" | "mac"))
    {
        return Err(RecordError::new(
            k.clone(),
            "unknown field (device or service, then secret or salt + mac)",
        ));
    }
    let holder = match (s("device")?, s("service")?) {
        (Some(d), None) => {
            Holder::Device(DeviceId::new(d).map_err(|e| RecordError::new("device", e.to_string()))?)
        }
        (None, Some(svc)) => Holder::Service(svc.to_string()),
        _ => {
            return Err(RecordError::new(
                "device",
                "give device or service (one of them)",
            ));
        }
    };
    holder.check()?;
    match (s("secret")?, s("salt")?, s("mac")?) {
        (Some(secret), None, None) => {
            if secret.chars().count() < MIN_PUSHED_SECRET
                || secret.len() > 256
                || !secret.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(RecordError::new(
                    "secret",
                    format!(
                        "{MIN_PUSHED_SECRET} to 256 printable characters without spaces \
                         (generate at least 128 random bits)"
                    ),
                ));
            }
            Ok(Pushed::Secret {
                holder,
                secret: secret.to_string(),
            })
        }
        (None, Some(salt), Some(mac)) => {
            let c = Credential {
                holder,
                salt: salt.to_ascii_lowercase(),
                mac: mac.to_ascii_lowercase(),
                created_at: now,
                created_by: by.to_string(),
            };
            c.validate()?;
            Ok(Pushed::Record(c))
        }
        _ => Err(RecordError::new(
            "secret",
            "give secret, or salt and mac (not both)",
        )),
    }
}

#[cfg(test)]
mod tests;
