//! Is a new password easy to guess? NIST SP 800-63B §5.1.1.2 asks a
//! verifier to refuse passwords that are commonly used, expected or
//! compromised — dictionary words, repetitive or sequential characters,
//! context-specific words — rather than to impose composition rules.
//!
//! Checked here, on the lower-cased password: one of the most common
//! passwords of 10+ characters ([`COMMON`], from the public leaked-password
//! top lists); a common base word ([`WORDS`]) once digits and symbols
//! around it are stripped and look-alike characters undone (`P@ssw0rd!1`);
//! a short pattern repeated (`aaaaaaaaaa`, `abcabcabca`); a run of
//! consecutive letters, digits or keyboard keys (`0123456789`,
//! `qwertyuiop`, `1q2w3e4r5t`); fewer than four different characters; the
//! account's own name or the product's. Pure; no I/O.

/// The most common passwords of at least 10 characters.
#[rustfmt::skip]
const COMMON: &[&str] = &[
    "1234567890", "0987654321", "1q2w3e4r5t", "qwertyuiop", "1qaz2wsx3edc", "password123",
    "password12", "password1234", "passw0rd123", "qwerty1234", "qwerty12345", "qwerty123456",
    "123456789a", "a123456789", "12345678910", "1234567891", "123456789q", "q123456789",
    "1111111111", "0000000000", "1234512345", "1122334455", "1212121212", "123123123123",
    "iloveyou12", "iloveyou123", "iloveyou1234", "1q2w3e4r5t6y", "q1w2e3r4t5", "q1w2e3r4t5y6",
    "zaq12wsxcde3", "zaq1xsw2cde3", "1qazxsw23edc", "123qweasdzxc", "qweasdzxc123", "asdfghjkl1",
    "asdfghjkl123", "zxcvbnm123", "abcd123456", "abc1234567", "abcdef1234", "administrator",
    "letmein123", "welcome123", "welcome1234", "changeme123", "trustno1234", "football123",
    "baseball123", "sunshine123", "princess123", "superman123", "liverpool1", "liverpool123",
    "manchester", "chocolate1", "basketball", "starwars123", "pokemon123", "computer123",
    "internet123", "whatever123", "michael123", "charlie123", "jennifer123", "samsung123",
    "blink182blink", "spiderman1", "1234567890q", "9876543210", "5555555555", "7777777777",
    "987654321a", "123654789a", "147258369a", "1472583690", "3692581470", "1357924680",
    "qwerty123qwerty", "password!1", "password1!", "p@ssw0rd123", "passwordpassword",
    "raspberrypi", "raspberry1", "carebridge1", "homecare123",
];

/// Common base words: refused when the password is one of them with only
/// digits or symbols around it.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "password", "passwort", "passwd", "pass", "qwerty", "qwertz", "azerty", "letmein", "welcome",
    "admin", "administrator", "root", "login", "guest", "user", "test", "tester", "testing",
    "default", "changeme", "secret", "iloveyou", "loveyou", "love", "monkey", "dragon", "master",
    "shadow", "football", "baseball", "soccer", "basketball", "sunshine", "princess", "superman",
    "batman", "spiderman", "trustno", "hello", "freedom", "whatever", "computer", "internet",
    "starwars", "pokemon", "cookie", "summer", "winter", "spring", "autumn", "family", "michael",
    "jennifer", "jordan", "hunter", "ranger", "buster", "charlie", "thomas", "daniel", "jessica",
    "liverpool", "everton", "arsenal", "chelsea", "manchester", "london", "england", "chocolate",
    "samsung", "google", "abc", "abcd", "abcdef", "qwe", "asd", "zxc", "carebridge", "care",
    "carer", "caregiver", "installer", "nurse", "homecare", "health", "gateway", "raspberry",
    "raspberrypi", "pi", "mother", "father", "mummy", "grandma", "grandad", "nana",
];

/// Runs that count as sequential (and their reverses).
const RUNS: &[&str] = &[
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "q1w2e3r4t5y6u7i8o9p0",
    "1q2w3e4r5t6y7u8i9o0p",
    "!@#$%^&*()_+",
];

/// Why `password` (for account `user`) is easy to guess, if it is.
pub fn weakness(password: &str, user: &str) -> Option<&'static str> {
    let p = password.to_lowercase();
    let chars: Vec<char> = p.chars().collect();
    if chars.iter().all(|c| *c == chars[0]) {
        return Some("one character repeated");
    }
    if repeats(&chars) {
        return Some("a short pattern repeated");
    }
    if sequential(&p) {
        return Some("a run of consecutive letters, digits or keyboard keys");
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Some("too few different characters");
    }
    if COMMON.contains(&p.as_str()) {
        return Some("one of the most common passwords");
    }
    let core = core_word(&p);
    if !user.is_empty() && (p == user.to_lowercase() || core == user.to_lowercase()) {
        return Some("it is the user name");
    }
    if WORDS.contains(&core.as_str()) || (!core.is_empty() && repeats_word(&core)) {
        return Some("a common word with digits or symbols added");
    }
    if core.is_empty() && !p.chars().any(char::is_alphabetic) && sequential_digits_block(&p) {
        return Some("a run of consecutive letters, digits or keyboard keys");
    }
    None
}

/// Made of one unit, at most half as long, repeated (the tail may be cut).
fn repeats(c: &[char]) -> bool {
    (1..=c.len() / 2).any(|p| (p..c.len()).all(|i| c[i] == c[i - p]))
}

/// A common word said twice or more (`passwordpassword`).
fn repeats_word(core: &str) -> bool {
    WORDS.iter().any(|w| {
        w.len() >= 3
            && core.len() > w.len()
            && core.len().is_multiple_of(w.len())
            && core == w.repeat(core.len() / w.len())
    })
}

/// The whole password is a piece of a run (or of a reversed run).
fn sequential(p: &str) -> bool {
    RUNS.iter().any(|r| {
        let rev: String = r.chars().rev().collect();
        r.contains(p) || rev.contains(p)
    })
}

/// Digits only, made of consecutive runs of at least three (`123456123456`,
/// `1234598765`).
fn sequential_digits_block(p: &str) -> bool {
    let d: Vec<i32> = p
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| d as i32)
        .collect();
    if d.len() != p.chars().count() {
        return false;
    }
    let mut run = 1;
    let mut short_runs = 0;
    for w in d.windows(2) {
        if (w[1] - w[0]).abs() == 1 {
            run += 1;
        } else {
            if run < 3 {
                short_runs += 1;
            }
            run = 1;
        }
    }
    if run < 3 {
        short_runs += 1;
    }
    short_runs == 0
}

/// The letters in the middle: leading/trailing digits and symbols cut,
/// look-alikes undone (`P@ssw0rd!23` → `password`).
fn core_word(p: &str) -> String {
    let undone: String = p
        .chars()
        .map(|c| match c {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '!' | '|' => 'i',
            '3' => 'e',
            '$' | '5' => 's',
            '7' => 't',
            c => c,
        })
        .collect();
    // Cut the tails on the original (digits there are decoration, not
    // look-alikes), then map the middle.
    let is_deco = |c: char| !c.is_alphabetic();
    let start = p.find(|c: char| !is_deco(c));
    let end = p.rfind(|c: char| !is_deco(c));
    match (start, end) {
        (Some(s), Some(e)) => {
            let skip = p[..s].chars().count();
            let len = p[s..=e].chars().count();
            undone.chars().skip(skip).take(len).collect()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_sequential_passwords_are_refused_with_the_reason() {
        assert_eq!(weakness("aaaaaaaaaa", ""), Some("one character repeated"));
        assert_eq!(weakness("abcabcabca", ""), Some("a short pattern repeated"));
        assert_eq!(weakness("ababababab", ""), Some("a short pattern repeated"));
        for seq in [
            "0123456789",
            "9876543210",
            "abcdefghij",
            "qwertyuiop",
            "1q2w3e4r5t6y",
            "zyxwvutsrq",
        ] {
            assert_eq!(
                weakness(seq, ""),
                Some("a run of consecutive letters, digits or keyboard keys"),
                "{seq}"
            );
        }
        assert_eq!(
            weakness("1234598765", ""),
            Some("a run of consecutive letters, digits or keyboard keys")
        );
        assert_eq!(
            weakness("aabbaabbab", ""),
            Some("too few different characters")
        );
    }

    #[test]
    fn common_passwords_and_decorated_common_words_are_refused() {
        assert_eq!(
            weakness("password123", ""),
            Some("one of the most common passwords")
        );
        assert_eq!(
            weakness("Password1!", ""),
            Some("one of the most common passwords")
        );
        for p in [
            "P@ssw0rd!2024",
            "!!Liverpool99",
            "Welcome#2026",
            "carebridge2026",
            "passwordpassword1",
        ] {
            assert!(weakness(p, "").is_some(), "{p}");
        }
        assert_eq!(
            weakness("annsmith1985", "annsmith"),
            Some("it is the user name")
        );
    }

    #[test]
    fn ordinary_passphrases_pass() {
        for ok in [
            "correct horse battery",
            "0123456789ab",
            "tulip kettle lantern",
            "mum's blue teapot 42",
            "Xk7#pQ2!vR9z",
        ] {
            assert_eq!(weakness(ok, "admin"), None, "{ok}");
        }
    }
}
