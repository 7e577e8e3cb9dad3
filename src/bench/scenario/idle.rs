//! `idle`: logged-in connections held open; the server's memory for them and its clean-up.
//!
//! Holds `--connections` logged-in connections for `--duration` seconds and reports the
//! server's memory per connection (its VmRSS before connecting and once all are logged in,
//! given `--server-pid`). With `--drop`, then close them all at once and time how long until
//! the server has forgotten them: a sample of the dropped users log in again (a fresh
//! connection each try); the server refuses while it still counts one online.

use super::peer::Peer;
use super::reg::register_users;
use super::{round2, Scenario};
use crate::bench::driver::{Bench, Conn, User};
use crate::bench::stats::Report;
use crate::bench::wire::{read_frame, Incoming, Wire};
use crate::protocol::{msgid, Framer};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Dropped users that log in again to prove the server clean.
const PROBES: usize = 10;

/// What set-up leaves for the measurement: the users (the drop probes log some of them in)
/// and the server's memory before any of them connected.
#[derive(Default)]
pub struct Idle {
    users: Vec<User>,
    rss_before: Option<u64>,
}

impl Scenario for Idle {
    fn setup(&mut self, b: &mut Bench) -> Result<(), String> {
        let (n, target, pid) = (b.sh.cfg.connections, b.sh.cfg.target, b.sh.cfg.server_pid);
        self.users = register_users(b, n)?;
        self.rss_before = pid.map(vm_rss_kib).transpose()?;
        for user in &self.users {
            b.connect(target, Conn::new(Peer::receiver(), user.clone()))?;
        }
        b.wait_ready("logging in", n)
    }

    fn measure(&mut self, b: &mut Bench, setup_s: f64) -> Result<Report, String> {
        let cfg = b.sh.cfg.clone();
        let (n, target, pid) = (cfg.connections, cfg.target, cfg.server_pid);
        let rss_after = pid.map(vm_rss_kib).transpose()?;
        let hold_end = Instant::now() + cfg.duration;
        while Instant::now() < hold_end {
            b.check()?;
            std::thread::sleep((hold_end - Instant::now()).min(Duration::from_secs(1)));
            let closed = b.sh.stats.totals().closed;
            b.progress(format_args!("holding {} connections", n as u64 - closed));
        }
        let rss_end = pid.map(vm_rss_kib).transpose()?;

        let mut r = Report::new();
        r.set("scenario", "idle");
        r.set("target", target.to_string());
        r.set("legacy", cfg.legacy);
        r.set("client_threads", cfg.threads);
        r.set("connections", n);
        r.set("setup_s", round2(setup_s));
        r.set("held_s", round2(cfg.duration.as_secs_f64()));
        r.set("closed", b.sh.stats.totals().closed);
        if let (Some(before), Some(after), Some(end)) = (self.rss_before, rss_after, rss_end) {
            r.set("server_rss_before_kib", before);
            r.set("server_rss_logged_in_kib", after);
            r.set("server_rss_end_kib", end);
            let per_conn = (after as f64 - before as f64) * 1024.0 / n as f64;
            r.set("server_rss_per_conn_bytes", per_conn.round());
        }
        if cfg.drop {
            self.drop_all(b, &mut r)?;
        }
        Ok(r)
    }
}

impl Idle {
    /// `--drop`: closes every connection at once, then logs a sample of the users in again
    /// until the server takes them (it refuses a user it still counts online).
    fn drop_all(&self, b: &Bench, r: &mut Report) -> Result<(), String> {
        let cfg = &b.sh.cfg;
        let (n, target, pid) = (cfg.connections, cfg.target, cfg.server_pid);
        let started = Instant::now();
        b.broadcast(|_, lp, conn| {
            if let Some(c) = lp.context_mut::<Conn>(conn) {
                c.closing = true;
            }
            lp.force_close(conn);
        })?;
        let closed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let step = (n / PROBES).max(1);
        let sample: Vec<&User> = self.users.iter().rev().step_by(step).take(PROBES).collect();
        let wire = b.sh.wire;
        let password = b.sh.password.clone();
        let mut refused = 0;
        for user in &sample {
            refused += login_until_accepted(target, wire, user, &password, cfg.setup_timeout)?;
        }
        r.set("drop_close_ms", round2(closed_ms));
        r.set(
            "drop_clean_ms",
            round2(started.elapsed().as_secs_f64() * 1000.0),
        );
        r.set("drop_probes", sample.len());
        r.set("drop_probe_refusals", refused);
        if let Some(pid) = pid {
            r.set("server_rss_after_drop_kib", vm_rss_kib(pid)?);
        }
        Ok(())
    }
}

/// Logs `user` in (a new connection each try) until the server accepts; returns the refusals.
fn login_until_accepted(
    addr: SocketAddr,
    wire: Wire,
    user: &User,
    password: &str,
    limit: Duration,
) -> Result<u64, String> {
    let deadline = Instant::now() + limit;
    let mut refused = 0;
    loop {
        let reply = probe_login(addr, wire, user.id, password)
            .map_err(|e| format!("probe login of {}: {e}", user.id))?;
        match read_frame(&reply) {
            Incoming::Reply(r) if r.msgid == msgid::LOGIN_MSG_ACK && r.errno == 0 => {
                return Ok(refused)
            }
            Incoming::Reply(r) if r.msgid == msgid::LOGIN_MSG_ACK && r.errno == 2 => refused += 1,
            _ => {
                let text = String::from_utf8_lossy(&reply).into_owned();
                return Err(format!("probe login of {}: unexpected {text}", user.id));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("user {} still online after {limit:?}", user.id));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One blocking login on a fresh connection; returns the first frame of the answer.
fn probe_login(addr: SocketAddr, wire: Wire, id: i64, password: &str) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = Vec::new();
    wire.login(&mut request, id, password);
    stream.write_all(&request)?;
    let mut framer = Framer::new(16 * 1024 * 1024);
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        input.extend_from_slice(&chunk[..n]);
        let mut first = None;
        framer
            .drain(&mut input, |frame| {
                first = Some(frame.bytes.to_vec());
                ControlFlow::Break(())
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some(frame) = first {
            return Ok(frame);
        }
    }
}

/// The VmRSS line of /proc/PID/status, in KiB.
pub fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no VmRSS in {path}"))
}
