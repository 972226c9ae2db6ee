//! Input validation for everything a browser sends. Each check names the
//! field in its message; the HTTP layer returns it as
//! `{"error": "...", "field": "..."}` with status 400.

/// A refused input, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &str, reason: impl Into<String>) -> Invalid {
        Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A JSON object body, checked field by field so that every error names
/// its field (wrong type, missing, unknown).
#[derive(Debug)]
pub struct Obj(serde_json::Map<String, serde_json::Value>);

impl Obj {
    /// Parses `body` as a JSON object whose keys are all in `allowed`.
    pub fn parse(body: &[u8], allowed: &[&str]) -> Result<Obj, Invalid> {
        if body.is_empty() {
            return Err(Invalid::new("body", "a JSON object is required"));
        }
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Invalid::new("body", format!("not valid JSON ({e})")))?;
        let serde_json::Value::Object(m) = v else {
            return Err(Invalid::new("body", "must be a JSON object"));
        };
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = k.chars().take(40).collect();
            return Err(Invalid::new(
                &shown,
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            ));
        }
        Ok(Obj(m))
    }

    /// An optional string field (`null` counts as absent).
    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, Invalid> {
        match self.0.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Invalid::new(
                field,
                format!("must be a string, not {}", type_name(other)),
            )),
        }
    }

    /// An optional boolean field (`null` or absent: `false`).
    pub fn flag(&self, field: &str) -> Result<bool, Invalid> {
        match self.0.get(field) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(Invalid::new(
                field,
                format!("must be true or false, not {}", type_name(other)),
            )),
        }
    }

    /// Whether the body has `field` (even as `null`).
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn str(&self, field: &str) -> Result<&str, Invalid> {
        self.opt_str(field)?
            .ok_or_else(|| Invalid::new(field, "is required"))
    }

    /// A required whole number within `min..=max`.
    pub fn int(&self, field: &str, min: u64, max: u64) -> Result<u64, Invalid> {
        let v = self
            .0
            .get(field)
            .ok_or_else(|| Invalid::new(field, "is required"))?;
        let n = v.as_u64().ok_or_else(|| {
            Invalid::new(
                field,
                format!("must be a whole number, not {}", type_name(v)),
            )
        })?;
        if !(min..=max).contains(&n) {
            return Err(Invalid::new(
                field,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(n)
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Characters refused in free text: markup and shell metacharacters. The
/// UI renders text safely, but names travel on (alert messages, the cloud
/// app), so they are kept inert everywhere.
const TEXT_FORBIDDEN: &[char] = &['<', '>', '`', '$', ';', '|', '\\', '"', '{', '}'];

/// Invisible format characters: bidirectional overrides and isolates
/// (U+202A–202E, U+2066–2069: "Trojan Source" and file-name spoofing, e.g.
/// a name that shows `Kitchen` but is `nehctiK`), zero-width characters,
/// the byte-order mark and tag characters. A name never needs them (the
/// zero-width joiners U+200C/U+200D stay: Persian, Indic scripts and emoji
/// use them).
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Free text shown to people (device names): 1..=max characters, no
/// control characters, no invisible or direction-changing characters, no
/// markup or shell metacharacters.
pub fn text(field: &str, s: &str, max: usize) -> Result<String, Invalid> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    if let Some(c) = t.chars().find(|c| is_invisible_format(*c)) {
        return Err(Invalid::new(
            field,
            format!(
                "must not contain invisible or text-direction characters (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if let Some(c) = t.chars().find(|c| TEXT_FORBIDDEN.contains(c)) {
        return Err(Invalid::new(
            field,
            format!("must not contain {c:?} (not allowed: < > ` $ ; | \\ \" {{ }})"),
        ));
    }
    Ok(t.to_string())
}

/// A machine word (room ids, roles, user names): 1..=max of
/// `[a-z0-9_.-]`, starting with a letter or digit. Shell metacharacters,
/// spaces and upper case are refused.
pub fn word(field: &str, s: &str, max: usize) -> Result<String, Invalid> {
    if s.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    let ok_first = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'));
    if !ok || !ok_first {
        return Err(Invalid::new(
            field,
            "use lower-case letters, digits, '_', '.' or '-', starting with a letter or digit",
        ));
    }
    Ok(s.to_string())
}

/// A new password: 10..=128 characters, not easy to guess (see
/// [`super::passwords`]), not the account's own name.
pub fn password(field: &str, s: &str) -> Result<(), Invalid> {
    password_for(field, s, "")
}

/// [`password`] for the account `user`.
pub fn password_for(field: &str, s: &str, user: &str) -> Result<(), Invalid> {
    let n = s.chars().count();
    if n < 10 {
        return Err(Invalid::new(field, "must be at least 10 characters"));
    }
    if n > 128 {
        return Err(Invalid::new(field, "must be at most 128 characters"));
    }
    if let Some(why) = super::passwords::weakness(s, user) {
        return Err(Invalid::new(
            field,
            format!(
                "is too easy to guess ({why}): use a longer phrase, e.g. three or four unrelated words"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_json_types_and_fields_are_named() {
        let allowed = ["name", "seconds"];
        let o = Obj::parse(br#"{"name": 5, "seconds": "1"}"#, &allowed).unwrap();
        assert_eq!(
            o.str("name").unwrap_err().to_string(),
            "name: must be a string, not a number"
        );
        assert_eq!(o.int("seconds", 1, 10).unwrap_err().field, "seconds");
        let o = Obj::parse(br#"{"seconds": 300}"#, &allowed).unwrap();
        assert_eq!(o.str("name").unwrap_err().to_string(), "name: is required");
        assert!(o.int("seconds", 1, 254).is_err());
        let e = Obj::parse(br#"{"name": "x", "rm": "-rf"}"#, &allowed).unwrap_err();
        assert_eq!(e.field, "rm");
        assert_eq!(Obj::parse(b"not json", &allowed).unwrap_err().field, "body");
        assert_eq!(Obj::parse(b"[1]", &allowed).unwrap_err().field, "body");
        assert_eq!(Obj::parse(b"", &allowed).unwrap_err().field, "body");
    }

    #[test]
    fn shell_metacharacters_and_long_strings_are_refused() {
        for bad in [
            "a;rm -rf /",
            "$(reboot)",
            "`id`",
            "a|b",
            "a b",
            "Kitchen",
            "-x",
            "../etc",
        ] {
            assert!(word("room", bad, 32).is_err(), "{bad}");
        }
        assert_eq!(word("room", "living_room-2", 32).unwrap(), "living_room-2");
        let long = "x".repeat(100_000);
        assert_eq!(
            text("name", &long, 64).unwrap_err().to_string(),
            "name: must be at most 64 characters"
        );
        assert!(text("name", "Front door\u{0}", 64).is_err());
        assert_eq!(text("name", "  Front door ", 64).unwrap(), "Front door");
        assert_eq!(
            text("name", "Mum's room & hall (2)", 64).unwrap(),
            "Mum's room & hall (2)"
        );
        for bad in ["$(reboot)", "<script>", "a;b", "`id`", "a|b"] {
            let e = text("name", bad, 64).unwrap_err();
            assert!(e.to_string().starts_with("name: must not contain"), "{e}");
        }
    }

    #[test]
    fn direction_overrides_and_invisible_characters_are_refused_in_names() {
        for bad in [
            "Kitchen\u{202E}gnp.exe",
            "\u{2066}Hall\u{2069}",
            "Bath\u{200B}room",
            "\u{FEFF}Door",
            "Lounge\u{E0041}",
        ] {
            let e = text("name", bad, 64).unwrap_err();
            assert!(e.to_string().contains("text-direction"), "{bad:?}: {e}");
            assert!(e.to_string().contains("U+"), "{e}");
        }
        assert_eq!(
            text("name", "Chambre d'Élodie", 64).unwrap(),
            "Chambre d'Élodie"
        );
        assert_eq!(text("name", "غرفة النوم", 64).unwrap(), "غرفة النوم");
    }

    #[test]
    fn passwords_need_ten_to_128_characters() {
        assert!(password("password", "short").is_err());
        assert!(password("password", "long enough pw").is_ok());
        assert!(password("password", &"p".repeat(129)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn accepted_words_hold_only_safe_characters(s in ".{0,80}") {
            if let Ok(w) = word("room", &s, 32) {
                proptest::prop_assert!(w.len() <= 32);
                proptest::prop_assert!(w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)));
            }
        }

        #[test]
        fn any_bytes_parse_or_fail_with_a_named_field(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            match Obj::parse(&b, &["name"]) {
                Ok(o) => { let _ = o.opt_str("name"); let _ = o.int("name", 0, 10); }
                Err(e) => proptest::prop_assert!(!e.field.is_empty()),
            }
        }

        #[test]
        fn string_fields_round_trip_through_json(s in "\\PC{0,100}") {
            let body = serde_json::json!({ "name": s }).to_string();
            let o = Obj::parse(body.as_bytes(), &["name"]).unwrap();
            proptest::prop_assert_eq!(o.str("name").unwrap(), s.as_str());
        }
    }
}
