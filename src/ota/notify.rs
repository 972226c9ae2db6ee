//! systemd `sd_notify` without a crate: READY=1, WATCHDOG=1, STATUS=…
//! sent as one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for an
//! abstract socket).
//!
//! Every function is a no-op returning `Ok(false)` when not run under
//! systemd, so the daemon calls them unconditionally. The integrator sends
//! READY=1 once the UI and broker serve, and WATCHDOG=1 from the main loop
//! every [`watchdog_interval`] (half of `WatchdogSec=`), so a hung loop is
//! killed and restarted by systemd (which counts as a failed trial start).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

fn socket_addr(spec: &str) -> io::Result<SocketAddr> {
    match spec.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(spec),
    }
}

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to the given socket.
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// Sends `state` to `$NOTIFY_SOCKET`; `Ok(false)` when it is not set.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var("NOTIFY_SOCKET") {
        Ok(s) if !s.is_empty() => notify_to(&s, state).map(|()| true),
        _ => Ok(false),
    }
}

/// Start-up finished: systemd marks the unit active.
pub fn notify_ready() -> io::Result<bool> {
    notify("READY=1")
}

/// The main loop is alive.
pub fn notify_watchdog() -> io::Result<bool> {
    notify("WATCHDOG=1")
}

/// A one-line status shown by `systemctl status`. Newlines are replaced so
/// the text cannot inject other assignments.
pub fn notify_status(text: &str) -> io::Result<bool> {
    let clean: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    notify(&format!("STATUS={clean}"))
}

/// How often to send WATCHDOG=1: half of `$WATCHDOG_USEC`, when the watchdog
/// is enabled for this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// Pure part of [`watchdog_interval`].
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(p) = pid
        && p.trim().parse::<u32>().ok() != Some(my_pid)
    {
        return None;
    }
    let us: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(us / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_our_pid() {
        assert_eq!(
            watchdog_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn sends_datagrams_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        let name = format!("carebridge-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
