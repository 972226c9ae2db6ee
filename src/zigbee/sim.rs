//! A Z-Stack 3.x coordinator simulator speaking real ZNP frames over a
//! pseudo-terminal (`serialport::TTYPort::pair()`), for tests and demos.
//!
//! [`Simulator::start`] creates the pty, points a symlink (like udev's
//! `/dev/carebridge-zigbee`) at its slave side, and runs the stick on its
//! own thread. The [`SimHandle`] adds devices, triggers their sensors and
//! injects faults: bit errors on the stick's output, a silent stick, MT RPC
//! error frames, garbage bytes, and the port vanishing and coming back
//! (a new pty behind the same symlink path).
//!
//! Invariant: the simulator never panics on host input; stopping the handle
//! (or dropping it) ends the thread and removes the symlink.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

use super::frame::{Decoder, Frame};
pub use super::sim_stick::{COORD_IEEE, SimDeviceKind, Stick, StickStats};

/// Fault injection settings.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability that a byte written by the stick has one bit flipped.
    pub bit_error_rate: f64,
    /// The stick neither answers nor sends anything.
    pub silent: bool,
}

#[derive(Debug)]
struct Inner {
    stick: Stick,
    faults: Faults,
    /// Frames (already encoded) or raw bytes waiting to go to the host.
    outbox: Vec<u8>,
    master: Option<TTYPort>,
    slave: Option<TTYPort>,
    rng: u64,
    bytes_out: u64,
    bits_flipped: u64,
    frames_in: u64,
}

impl Inner {
    fn send(&mut self, frames: Vec<Frame>) {
        if self.faults.silent {
            return;
        }
        for f in frames {
            super::frame::encode(&f, &mut self.outbox);
        }
    }
    fn next_rand(&mut self) -> u64 {
        // xorshift64*: deterministic per simulator, good enough for fault injection.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Entry point: `Simulator::start(path)`.
#[derive(Debug)]
pub struct Simulator;

/// Controls a running simulator.
#[derive(Debug)]
pub struct SimHandle {
    link: PathBuf,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn open_pair(link: &Path) -> std::io::Result<(TTYPort, TTYPort)> {
    let (mut master, slave) = TTYPort::pair().map_err(std::io::Error::other)?;
    let _ = master.set_timeout(Duration::from_millis(5));
    let name = slave
        .name()
        .ok_or_else(|| std::io::Error::other("pty has no name"))?;
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(name, link)?;
    Ok((master, slave))
}

impl Simulator {
    /// Starts a blank stick behind a new pty, reachable at `link`.
    pub fn start(link: &Path) -> std::io::Result<SimHandle> {
        Self::start_with(link, Stick::new())
    }

    /// Starts with a given stick state (e.g. one taken from a previous run).
    pub fn start_with(link: &Path, stick: Stick) -> std::io::Result<SimHandle> {
        let (master, slave) = open_pair(link)?;
        let inner = Arc::new(Mutex::new(Inner {
            stick,
            faults: Faults::default(),
            outbox: Vec::new(),
            master: Some(master),
            slave: Some(slave),
            rng: 0x9E37_79B9_7F4A_7C15,
            bytes_out: 0,
            bits_flipped: 0,
            frames_in: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (i2, s2) = (inner.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("zigbee-sim".into())
            .spawn(move || run(i2, s2))?;
        Ok(SimHandle {
            link: link.to_path_buf(),
            inner,
            stop,
            thread: Some(thread),
        })
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(inner: Arc<Mutex<Inner>>, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut dec = Decoder::new();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let now_ms = start.elapsed().as_millis() as u64;
        let mut guard = lock(&inner);
        let g = &mut *guard;
        let Some(master) = g.master.as_mut() else {
            // Vanished: the host sees a hang-up until the port comes back.
            dec.clear();
            drop(guard);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let n: usize = master.read(&mut buf).unwrap_or_default();
        if !g.faults.silent && n > 0 {
            dec.push(&buf[..n]);
            while let Some(f) = dec.next_frame() {
                g.frames_in += 1;
                let rsp = g.stick.handle(&f, now_ms);
                g.send(rsp);
            }
        }
        let joins = g.stick.tick(now_ms);
        g.send(joins);
        if !g.outbox.is_empty() {
            let mut out = std::mem::take(&mut g.outbox);
            if g.faults.bit_error_rate > 0.0 {
                for b in out.iter_mut() {
                    let r = g.next_rand();
                    if ((r >> 11) as f64 / (1u64 << 53) as f64) < g.faults.bit_error_rate {
                        *b ^= 1 << (r & 7);
                        g.bits_flipped += 1;
                    }
                }
            }
            g.bytes_out += out.len() as u64;
            if let Some(m) = g.master.as_mut() {
                write_patiently(m, &out, &stop);
            }
        }
        drop(guard);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Writes everything unless the pty is gone: a slow reader fills the pty
/// buffer and the short port timeout would otherwise drop bytes.
fn write_patiently(m: &mut TTYPort, mut b: &[u8], stop: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !b.is_empty() && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match m.write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

impl SimHandle {
    /// The path the host opens (a symlink to the current pty slave).
    pub fn path(&self) -> &Path {
        &self.link
    }

    /// Adds a device; it joins the next time permit join is open. Returns its IEEE.
    pub fn add_device(&self, kind: SimDeviceKind) -> u64 {
        lock(&self.inner).stick.add_device(kind)
    }

    /// Puts every waiting device into the network without a join (see
    /// [`Stick::pair_all`]): a simulator restarted behind a gateway that
    /// already knows them.
    pub fn pair_all(&self) {
        lock(&self.inner).stick.pair_all();
    }

    /// Devices are (from the next network start on, or at once if the
    /// stick runs one) in the network without joining: a replaced stick
    /// restored from the gateway's backup. See [`Stick::auto_pair`].
    pub fn set_auto_pair(&self, on: bool) {
        let mut g = lock(&self.inner);
        g.stick.auto_pair = on;
        if on && g.stick.is_up() {
            g.stick.pair_all();
        }
    }

    /// Every device: (IEEE, kind, network address once joined, IAS enrolled).
    pub fn devices(&self) -> Vec<(u64, SimDeviceKind, Option<u16>, bool)> {
        lock(&self.inner)
            .stick
            .devices
            .iter()
            .map(|d| (d.ieee, d.kind, d.nwk, d.enrolled))
            .collect()
    }

    /// Whether the stick runs a network (formed or restored, started).
    pub fn is_up(&self) -> bool {
        lock(&self.inner).stick.is_up()
    }

    /// The device's network address once joined.
    pub fn device_nwk(&self, ieee: u64) -> Option<u16> {
        lock(&self.inner)
            .stick
            .devices
            .iter()
            .find(|d| d.ieee == ieee)
            .and_then(|d| d.nwk)
    }

    /// Whether the host enrolled the device's IAS zone (CIE written and enroll response seen).
    pub fn is_enrolled(&self, ieee: u64) -> bool {
        lock(&self.inner)
            .stick
            .devices
            .iter()
            .any(|d| d.ieee == ieee && d.enrolled && d.cie == Some(COORD_IEEE))
    }

    /// Clusters the host bound on the device.
    pub fn bound_clusters(&self, ieee: u64) -> Vec<u16> {
        let g = lock(&self.inner);
        let mut v: Vec<u16> = g
            .stick
            .devices
            .iter()
            .find(|d| d.ieee == ieee)
            .map(|d| d.bound.iter().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Presses a panic button (IAS alarm1 set).
    pub fn press_panic(&self, ieee: u64) {
        self.zone_alarm(ieee, true);
    }

    /// Sets an IAS device's alarm1 (motion seen, door open, …).
    pub fn zone_alarm(&self, ieee: u64, active: bool) {
        let mut g = lock(&self.inner);
        if let Some(f) = g.stick.zone_alarm(ieee, active, false) {
            g.send(vec![f]);
        }
    }

    /// The Aqara door's 0xFF01 keep-alive (3.005 V, the door closed).
    pub fn xiaomi_keepalive(&self, ieee: u64) {
        let mut g = lock(&self.inner);
        if let Some(f) = g.stick.xiaomi_keepalive(ieee, 3005, false) {
            g.send(vec![f]);
        }
    }

    /// Reports temperature and humidity from a temperature device.
    pub fn report_temperature(&self, ieee: u64, celsius: f64, humidity: f64) {
        let mut g = lock(&self.inner);
        let f = g.stick.temperature(ieee, celsius, humidity);
        g.send(f);
    }

    /// The network the stick holds: (PAN id, extended PAN id, channel, key).
    pub fn network(&self) -> Option<(u16, u64, u8, [u8; 16])> {
        lock(&self.inner).stick.network()
    }

    /// The identify time of the last ZCL Identify `ieee` received.
    pub fn identified(&self, ieee: u64) -> Option<u16> {
        let g = lock(&self.inner);
        g.stick
            .devices
            .iter()
            .find(|d| d.ieee == ieee)
            .and_then(|d| d.identify_secs)
    }

    /// What the siren `ieee` was told (IAS WD commands it received).
    pub fn siren(&self, ieee: u64) -> Option<super::sim_stick::SirenLog> {
        let g = lock(&self.inner);
        g.stick
            .devices
            .iter()
            .find(|d| d.ieee == ieee)
            .map(|d| d.siren.clone())
    }

    pub fn stats(&self) -> StickStats {
        lock(&self.inner).stick.stats.clone()
    }

    /// (bytes written to the host, bits flipped, frames received).
    pub fn io_counts(&self) -> (u64, u64, u64) {
        let g = lock(&self.inner);
        (g.bytes_out, g.bits_flipped, g.frames_in)
    }

    pub fn set_faults(&self, f: Faults) {
        lock(&self.inner).faults = f;
    }
    pub fn set_bit_error_rate(&self, rate: f64) {
        lock(&self.inner).faults.bit_error_rate = rate;
    }
    pub fn set_silent(&self, silent: bool) {
        lock(&self.inner).faults.silent = silent;
    }
    /// Answer every request with an MT RPC error frame.
    pub fn set_rpc_errors(&self, on: bool) {
        lock(&self.inner).stick.rpc_errors = on;
    }
    /// Writes raw bytes to the host (garbage, partial frames).
    pub fn inject_bytes(&self, bytes: &[u8]) {
        lock(&self.inner).outbox.extend_from_slice(bytes);
    }

    /// Replaces the stick with a blank one (a new stick in the same port);
    /// joined devices stay paired to the network, as in real life.
    pub fn replace_stick(&self) {
        let mut g = lock(&self.inner);
        let devices = std::mem::take(&mut g.stick.devices);
        g.stick = Stick::new();
        g.stick.devices = devices;
    }

    /// The port vanishes: the pty is closed and the symlink removed.
    pub fn vanish(&self) {
        let mut g = lock(&self.inner);
        g.master = None;
        g.slave = None;
        g.outbox.clear();
        let _ = std::fs::remove_file(&self.link);
    }

    /// The port comes back (a new pty behind the same path). The stick
    /// state survives, as a USB stick's NV does when it is replugged; it
    /// is reset like a power cycle.
    pub fn reappear(&self) -> std::io::Result<()> {
        let (m, s) = open_pair(&self.link)?;
        let mut g = lock(&self.inner);
        g.master = Some(m);
        g.slave = Some(s);
        g.stick.power_cycle();
        Ok(())
    }

    /// Stops the simulator and removes the symlink.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.link);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
