//! The access policy of `[local_broker]` as it always was: with `username`
//! and `password_file` set, a client must log in with them; without, anyone
//! who can reach the listener may connect. Every authenticated client may
//! publish and subscribe anywhere (readings go to the hub, the rest to the
//! embedded broker). `crate::devauth` replaces it with per-device
//! credentials and topic permissions.

use std::net::IpAddr;

use super::gate::{Gate, Identity, Refusal};

/// One optional shared login.
#[derive(Clone, Default)]
pub struct LocalGate {
    login: Option<(String, String)>,
}

impl std::fmt::Debug for LocalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGate")
            .field("username", &self.login.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl LocalGate {
    /// `password` is the content of `password_file` (trimmed by the caller);
    /// a login is required only when both are given.
    pub fn new(username: Option<&str>, password: Option<&str>) -> LocalGate {
        LocalGate {
            login: username
                .zip(password)
                .map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }
}

impl Gate for LocalGate {
    fn accept(&self, _peer: IpAddr) -> Result<(), Refusal> {
        Ok(())
    }

    fn connect(
        &self,
        _peer: IpAddr,
        _client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal> {
        let Some((user, pass)) = &self.login else {
            return Ok(Identity::Anonymous);
        };
        let ok = username == Some(user.as_str())
            && password.is_some_and(|p| same_secret(p, pass.as_bytes()));
        if ok {
            Ok(Identity::Service(user.clone()))
        } else {
            tracing::debug!("front door: wrong user name or password");
            Err(Refusal::BadCredentials)
        }
    }

    fn may_publish(&self, _who: &Identity, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _who: &Identity, _filter: &str) -> bool {
        true
    }

    fn disconnected(&self, _peer: IpAddr) {}
}

/// Compares without an early exit (no timing hint about the prefix).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn without_a_login_anyone_connects_anonymously() {
        let g = LocalGate::new(None, None);
        assert_eq!(g.connect(PEER, "d", None, None), Ok(Identity::Anonymous));
        assert_eq!(
            g.connect(PEER, "d", Some("x"), Some(b"y")),
            Ok(Identity::Anonymous)
        );
    }

    #[test]
    fn with_a_login_only_the_right_password_connects() {
        let g = LocalGate::new(Some("sensors"), Some("hunter22"));
        assert_eq!(
            g.connect(PEER, "d", Some("sensors"), Some(b"hunter22")),
            Ok(Identity::Service("sensors".into()))
        );
        for (u, p) in [
            (Some("sensors"), Some(&b"wrong"[..])),
            (Some("other"), Some(&b"hunter22"[..])),
            (Some("sensors"), None),
            (None, None),
        ] {
            assert_eq!(g.connect(PEER, "d", u, p), Err(Refusal::BadCredentials));
        }
    }
}
