//! What one run of chat-bench is told: the scenario, its sizes, the targets, the output form.

use std::net::SocketAddr;
use std::time::Duration;

/// Which workload runs, by its command-line name; [`crate::bench::scenario::of`] gives its
/// [`Scenario`](crate::bench::scenario::Scenario).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// Registrations per second over `connections` connections, one request in flight each.
    Reg,
    /// Logins per second; each connection logs in, logs out and logs in again (legacy:
    /// reconnects for each login).
    Login,
    /// `pairs` one-to-one conversations, `inflight` messages in flight per pair.
    Chat,
    /// One group of `members` members, `senders` of them sending.
    Group,
    /// `connections` logged-in connections held open; server memory and drop clean-up.
    Idle,
    /// The ceiling of the chat path: `pairs` connections to an echo server (examples/echo),
    /// each keeping `inflight` chat frames of the same bytes in flight to itself.
    Echo,
}

impl ScenarioKind {
    pub fn parse(name: &str) -> Option<ScenarioKind> {
        Some(match name {
            "reg" => ScenarioKind::Reg,
            "login" => ScenarioKind::Login,
            "chat" => ScenarioKind::Chat,
            "group" => ScenarioKind::Group,
            "idle" => ScenarioKind::Idle,
            "echo" => ScenarioKind::Echo,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Reg => "reg",
            ScenarioKind::Login => "login",
            ScenarioKind::Chat => "chat",
            ScenarioKind::Group => "group",
            ScenarioKind::Idle => "idle",
            ScenarioKind::Echo => "echo",
        }
    }
}

/// Every knob of a run; `bin/chat-bench` fills it from the command line.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub scenario: ScenarioKind,
    /// The server (or nginx) that senders, registrars and idle connections use.
    pub target: SocketAddr,
    /// Receivers (chat) or the members who do not send (group) connect here when given.
    pub target2: Option<SocketAddr>,
    /// Client event loops.
    pub threads: usize,
    /// reg, login, idle: connections.
    pub connections: usize,
    /// chat: sender/receiver pairs.
    pub pairs: usize,
    /// group: members (the sender included).
    pub members: usize,
    /// group: how many members send.
    pub senders: usize,
    /// Messages in flight per sender (1: closed loop).
    pub inflight: usize,
    /// Bytes of `msg` text in each chat message.
    pub size: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Seeds' protocol only: NUL-terminated frames, one request in flight, no extension acks.
    pub legacy: bool,
    /// Users log in with `"acks":true` and acknowledge what they receive (DELIVERY_ACK_MSG,
    /// cumulative, once per read).
    pub acks: bool,
    /// login: measure logins with a resume token (each user logs in with its password once,
    /// in the set-up, to get one), a new connection per login.
    pub token: bool,
    pub json: bool,
    /// The server's pid, to read its VmRSS (idle) and its CPU time.
    pub server_pid: Option<u32>,
    /// More server processes whose CPU time counts (a cluster's other nodes, Redis).
    pub cpu_pids: Vec<u32>,
    /// idle: after holding, close every connection at once and time the server's clean-up.
    pub drop: bool,
    /// User names start with this, then a random tag and a counter.
    pub prefix: String,
    /// Limit for each set-up step (registering, logging in, joining).
    pub setup_timeout: Duration,
    /// No progress lines on stderr.
    pub quiet: bool,
}

impl BenchConfig {
    /// Defaults for `scenario` against `target`.
    pub fn new(scenario: ScenarioKind, target: SocketAddr) -> BenchConfig {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        BenchConfig {
            scenario,
            target,
            target2: None,
            threads: cores,
            connections: 100,
            pairs: 100,
            members: 50,
            senders: 1,
            inflight: 1,
            size: 32,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            legacy: false,
            acks: false,
            token: false,
            json: false,
            server_pid: None,
            cpu_pids: Vec::new(),
            drop: false,
            prefix: "bench".to_owned(),
            setup_timeout: Duration::from_secs(300),
            quiet: false,
        }
    }

    /// Checks the combination; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.inflight == 0 {
            return Err("--inflight must be at least 1".into());
        }
        if self.legacy && self.inflight > 1 {
            return Err("--legacy allows one message in flight (--inflight 1)".into());
        }
        if self.legacy && (self.acks || self.token) {
            return Err("--legacy speaks the seeds' protocol: no --acks, no --token".into());
        }
        if self.token && self.scenario != ScenarioKind::Login {
            return Err("--token is a mode of the login scenario".into());
        }
        if self.scenario == ScenarioKind::Echo && self.target2.is_some() {
            return Err("echo has one target: the echo server".into());
        }
        if self.legacy && self.scenario == ScenarioKind::Group {
            return Err(
                "--legacy cannot run group: the seeds' server sends no group ack to learn the id"
                    .into(),
            );
        }
        match self.scenario {
            ScenarioKind::Reg | ScenarioKind::Login | ScenarioKind::Idle
                if self.connections == 0 =>
            {
                Err("--connections must be at least 1".into())
            }
            ScenarioKind::Chat | ScenarioKind::Echo if self.pairs == 0 => {
                Err("--pairs must be at least 1".into())
            }
            ScenarioKind::Group if self.members < 2 => Err("--members must be at least 2".into()),
            ScenarioKind::Group if self.senders == 0 || self.senders > self.members => {
                Err("--senders must be between 1 and --members".into())
            }
            _ if self.prefix.len() > 30 => Err("--prefix: at most 30 characters".into()),
            _ => Ok(()),
        }
    }

    /// Where connection number `i` of a role connects: the second target for receivers.
    pub fn receiver_target(&self) -> SocketAddr {
        self.target2.unwrap_or(self.target)
    }
}
