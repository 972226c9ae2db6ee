//! Release versions: `MAJOR.MINOR.PATCH` with an optional `-pre.release`
//! suffix, ordered like SemVer (a pre-release sorts before its release;
//! pre-release identifiers compare numerically when both are numbers).
//!
//! A version is also a directory name under `releases/`, so the accepted
//! alphabet is deliberately small: digits, ASCII letters, `.` and `-`.

use std::cmp::Ordering;
use std::fmt;

/// A parsed release version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release identifiers after `-`, empty for a release.
    pub pre: Vec<String>,
}

impl Version {
    /// Parses `1.4.2` or `1.5.0-rc.1`. At most 64 characters.
    pub fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("version {s:?} must be 1 to 64 characters"));
        }
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.len() != 3 {
            return Err(format!("version {s:?} must look like MAJOR.MINOR.PATCH"));
        }
        let mut n = [0u64; 3];
        for (slot, part) in n.iter_mut().zip(&nums) {
            if part.is_empty()
                || !part.bytes().all(|b| b.is_ascii_digit())
                || (part.len() > 1 && part.starts_with('0'))
            {
                return Err(format!("version {s:?}: {part:?} is not a plain number"));
            }
            *slot = part
                .parse()
                .map_err(|_| format!("version {s:?}: {part:?} is too large"))?;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(p) => {
                let ids: Vec<String> = p.split('.').map(str::to_string).collect();
                if ids
                    .iter()
                    .any(|i| i.is_empty() || !i.bytes().all(|b| b.is_ascii_alphanumeric()))
                {
                    return Err(format!(
                        "version {s:?}: pre-release must be dot-separated letters and digits"
                    ));
                }
                ids
            }
        };
        Ok(Version {
            major: n[0],
            minor: n[1],
            patch: n[2],
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Version::parse(s)
    }
}

fn cmp_pre_id(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

impl Ord for Version {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(&o.pre) {
                        let c = cmp_pre_id(a, b);
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    self.pre.len().cmp(&o.pre.len())
                }
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn orders_like_semver() {
        assert!(v("1.2.3") < v("1.2.4"));
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("2.0.0-rc.1") < v("2.0.0"));
        assert!(v("2.0.0-rc.2") < v("2.0.0-rc.10"));
        assert!(v("2.0.0-alpha") < v("2.0.0-beta"));
        assert_eq!(v("0.1.0"), v("0.1.0"));
    }

    #[test]
    fn refuses_path_like_or_sloppy_versions() {
        for bad in [
            "",
            "1.2",
            "1.2.3.4",
            "../1.2.3",
            "1.2.3-",
            "1.2.3-a/b",
            "01.2.3",
            "1.2.x",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(a in 0u64..1000, b in 0u64..1000, c in 0u64..1000, pre in proptest::option::of("[a-z0-9]{1,5}")) {
            let s = match &pre { Some(p) => format!("{a}.{b}.{c}-{p}"), None => format!("{a}.{b}.{c}") };
            if let Ok(parsed) = Version::parse(&s) {
                prop_assert_eq!(parsed.to_string(), s);
            }
        }
    }
}
