//! chat-bench: load generator for the chat server. Parses arguments, runs, prints the report.

use chatserver::bench::{self, BenchConfig, ScenarioKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: chat-bench SCENARIO --target HOST:PORT [options]

Drives a chat server (protocol v1, or the seeds' server with --legacy) from event-loop
threads of this crate's own net layer, and prints what it measured: progress on stderr
once a second, a table on stdout at the end (or JSON with --json). Loopback targets only
make sense: the generator, the server and its database share the machine.

scenarios:
  reg      registrations/s: --connections connections, one REG_MSG in flight each
  login    logins/s: each connection logs in, logs out, logs in again (kept connection;
           with --legacy a new connection per login). Its users are registered first.
           With --token: resume-token logins/s (each user logs in once with its password
           in the set-up to get a token; then close, reconnect, log in with the token).
  chat     --pairs one-to-one pairs; a sender keeps --inflight messages in flight to its
           receiver (1: closed loop; N: pipelined). Rate: messages delivered/s.
  group    one group of --members members, --senders of them sending (--inflight each);
           rate: deliveries/s (messages received by members).
  idle     hold --connections logged-in connections for --duration; with --server-pid,
           the server's RSS per connection; with --drop, then close them all at once and
           time until dropped users can log in again (the server's online set is clean).
  echo     the baseline: --pairs connections to an echo server (examples/echo, not a chat
           server), each with --inflight chat frames of --size in flight to itself; the
           raw pingpong rate of the network core for the chat path's very bytes

Users are registered by the tool itself (names: PREFIX_<random>_<n>). Password hashing on
the server is slow at its default cost: for reg/login measurements the server's
--argon2-m-cost-kib / --argon2-t-cost flags decide the result; chat, group and idle
register and log their users in first (not measured), which also takes a while at the
default cost.

options:
  --target HOST:PORT     the server (or nginx in front of a cluster)       [required]
  --target2 HOST:PORT    chat: receivers connect here; group: the members who do not send
                         (senders stay on --target): messages cross servers
  --threads N            client event loops (default: CPU count)
  --connections N        reg, login, idle: connections (default 100)
  --pairs K              chat: sender/receiver pairs (default 100)
  --members G            group: members, senders included (default 50)
  --senders S            group: members who send (default 1)
  --inflight N           messages in flight per sender (default 1)
  --size BYTES           bytes of msg text per chat message (default 32)
  --duration SECS        measured window; idle: how long to hold (default 10)
  --warmup SECS          load before the measured window, not counted (default 1)
  --legacy               the seeds' protocol only: NUL-terminated frames, one in flight,
                         no extension acks (logins reconnect; no group scenario)
  --acks                 users log in with acknowledged delivery (acks: true) and send a
                         cumulative DELIVERY_ACK after each read that brought messages
  --token                login: measure resume-token logins instead of password logins
  --server-pid PID       the server: its VmRSS (/proc/PID/status) and its CPU time in the
                         measured window (/proc/PID/task/*/schedstat), per unit in the report
  --cpu-pid PID          another process whose CPU time is reported (repeatable: the other
                         server of a cluster, Redis)
  --drop                 idle: drop every connection at the end and time the clean-up
  --prefix NAME          user name prefix (default bench)
  --setup-timeout SECS   limit of each set-up step (default 300)
  --json                 print the report as one JSON object
  --quiet                no progress on stderr
  -h, --help             this text

examples:
  chat-bench chat --target 127.0.0.1:6000 --pairs 100 --inflight 1 --duration 10
  chat-bench chat --target 127.0.0.1:6000 --target2 127.0.0.1:6002 --pairs 50 --inflight 8
  chat-bench idle --target 127.0.0.1:6000 --connections 10000 --server-pid 1234 --drop
";

fn main() -> ExitCode {
    let cfg = match parse(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chat-bench: {e}\n(try --help)");
            return ExitCode::from(2);
        }
    };
    let json = cfg.json;
    match bench::run(cfg) {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line as a config; `Ok(None)` for --help.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<BenchConfig>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut scenario = None;
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long(name @ ("legacy" | "acks" | "token" | "json" | "drop" | "quiet")) => {
                flags.push((name.to_owned(), None))
            }
            Long(name) => {
                let name = name.to_owned();
                let value = parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .into_string()
                    .map_err(|_| format!("--{name}: not UTF-8"))?;
                flags.push((name, Some(value)));
            }
            Value(v) if scenario.is_none() => {
                let name = v.into_string().unwrap_or_default();
                scenario =
                    Some(ScenarioKind::parse(&name).ok_or(format!("unknown scenario '{name}'"))?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    let scenario = scenario.ok_or("which scenario? reg, login, chat, group or idle")?;
    let target = flags
        .iter()
        .find(|(k, _)| k == "target")
        .and_then(|(_, v)| v.as_deref())
        .ok_or("--target HOST:PORT is required")?;
    let mut cfg = BenchConfig::new(scenario, address("target", target)?);
    for (name, value) in flags {
        let v = value.as_deref().unwrap_or("");
        match name.as_str() {
            "target" => {}
            "target2" => cfg.target2 = Some(address(&name, v)?),
            "threads" => cfg.threads = number(&name, v)?,
            "connections" => cfg.connections = number(&name, v)?,
            "pairs" => cfg.pairs = number(&name, v)?,
            "members" => cfg.members = number(&name, v)?,
            "senders" => cfg.senders = number(&name, v)?,
            "inflight" => cfg.inflight = number(&name, v)?,
            "size" => cfg.size = number(&name, v)?,
            "duration" => cfg.duration = seconds(&name, v)?,
            "warmup" => cfg.warmup = seconds(&name, v)?,
            "server-pid" => cfg.server_pid = Some(number(&name, v)?),
            "cpu-pid" => cfg.cpu_pids.push(number(&name, v)?),
            "prefix" => cfg.prefix = v.to_owned(),
            "setup-timeout" => cfg.setup_timeout = seconds(&name, v)?,
            "legacy" => cfg.legacy = true,
            "acks" => cfg.acks = true,
            "token" => cfg.token = true,
            "json" => cfg.json = true,
            "drop" => cfg.drop = true,
            "quiet" => cfg.quiet = true,
            _ => return Err(format!("unknown option --{name}")),
        }
    }
    Ok(Some(cfg))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("--{flag}: invalid number '{value}'"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = number(flag, value)?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("--{flag}: invalid seconds '{value}'"))
}

fn address(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or(format!("--{flag}: cannot resolve '{value}'"))
}
