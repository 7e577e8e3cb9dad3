//! Server settings: defaults, then `--config FILE` (TOML), then command-line flags.
//!
//! Every setting is one flag and one key of conf/server.toml (`--login-idle-secs` is
//! `login_idle_secs`): both go through [`Config::apply`], so a setting is parsed in one place.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Everything `bin/server` can be told; each field is a flag and a key of conf/server.toml.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// I/O loops besides the accepting base loop (0: everything on the base loop).
    pub threads: usize,
    /// `sqlite:PATH` or `mysql://USER:PASS@HOST:PORT/DB`.
    pub db: String,
    pub store_workers: usize,
    pub max_frame: usize,
    /// A connection that is not logged in is closed after this long without a complete frame.
    pub login_idle: Duration,
    /// A connection is closed this long after connecting (or logging out) if it has not logged
    /// in, whatever it sends. None: no such bound.
    pub login_deadline: Option<Duration>,
    /// Least time between two frames to a client of the seeds' dialect.
    pub seeds_frame_gap: Duration,
    /// Bytes of chat messages a connection may hold undelivered before the rest is stored.
    pub output_high_water: usize,
    /// A connection that makes no progress on its backlog this long is closed.
    pub slow_reader_deadline: Duration,
    /// Heartbeat to a silent modern client after the first, close the second later if it
    /// stays silent. None: off.
    pub heartbeat: Option<(Duration, Duration)>,
    /// How long a resume token stays good; zero: no tokens.
    pub token_ttl: Duration,
    /// How long an offline message the store refuses is retried.
    pub store_retry: Duration,
    /// Bytes of chat messages waiting for the store (or another I/O loop) past which chat
    /// senders are not read.
    pub store_queue_high: usize,
    pub argon2_m_cost_kib: u32,
    pub argon2_t_cost: u32,
    pub argon2_p_cost: u32,
    /// Log filter (env_logger syntax): error, warn, info, debug, trace.
    pub log: String,
    /// `redis://HOST:PORT`: join the cluster through this Redis. None: a single node.
    pub redis: Option<String>,
    /// This server's name in the cluster (default: its listen address).
    pub server_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 6000)),
            threads: cores,
            db: "sqlite:data/chat.db".to_owned(),
            store_workers: cores.max(2),
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            login_idle: crate::chat::DEFAULT_LOGIN_IDLE,
            login_deadline: None,
            seeds_frame_gap: crate::chat::DEFAULT_SEEDS_FRAME_GAP,
            output_high_water: crate::chat::DEFAULT_OUTPUT_HIGH_WATER,
            slow_reader_deadline: crate::chat::DEFAULT_SLOW_READER_DEADLINE,
            heartbeat: Some(crate::chat::DEFAULT_HEARTBEAT),
            token_ttl: crate::chat::DEFAULT_TOKEN_TTL,
            store_retry: crate::chat::DEFAULT_STORE_RETRY,
            store_queue_high: crate::chat::DEFAULT_STORE_QUEUE_HIGH,
            argon2_m_cost_kib: 19 * 1024,
            argon2_t_cost: 2,
            argon2_p_cost: 1,
            log: "info".to_owned(),
            redis: None,
            server_id: None,
        }
    }
}

pub const USAGE: &str = "\
usage: server [IP PORT] [options]

  IP PORT                  listen address, the seeds' form (same as --listen IP:PORT)
  --listen ADDR            listen address (default 127.0.0.1:6000)
  --threads N              I/O threads besides the accepting one (default: CPU count; 0: one thread)
  --db URL                 sqlite:PATH (default sqlite:data/chat.db) or mysql://USER:PASS@HOST:PORT/DB
  --config FILE            read settings from a TOML file (keys as these flags, with _ for -);
                           flags given on the command line win
  --store-workers N        threads for database calls and password hashing (default: CPU count, at least 2)
  --max-frame BYTES        largest request a client may send (default 65536)
  --login-idle-secs S      close a connection that is not logged in after S seconds without a
                           complete frame (default 600)
  --login-deadline-secs S  also close it S seconds after connecting or logging out if it has not
                           logged in by then, whatever it sends (default 0: no such bound)
  --seeds-frame-gap-ms MS  least time between two frames to a client of the seeds' dialect (default 20)
  --output-high-water-kib K  chat messages a connection may hold undelivered (queued, or not yet
                           acknowledged) before the rest is stored for it (default 256)
  --slow-reader-deadline-secs S  close a connection that makes no progress on its backlog for S
                           seconds (default 60)
  --heartbeat-interval-secs S  send a heartbeat to a modern client silent for S seconds
                           (default 25; 0: no heartbeats)
  --heartbeat-timeout-secs S   and close it if still silent S seconds later (default 8)
  --store-retry-secs S     retry an offline message the database refuses for S seconds
                           before telling its sender it is lost (default 30)
  --store-queue-high-kib K  while more than K KiB of chat messages wait for the store workers
                           (offline) or for another I/O thread, a connection that sends a chat
                           message is not read until half of that is left: TCP slows the
                           sender (default 4096)
  --resume-token-ttl-secs S    a modern client's login ack carries a resume token good for
                           S seconds, until logout (default 604800, 7 days; 0: no tokens)
  --argon2-m-cost-kib K    password hashing memory cost (default 19456)
  --argon2-t-cost T        password hashing iterations (default 2)
  --argon2-p-cost P        password hashing lanes (default 1)
  --redis URL              join a cluster through Redis (redis://HOST:PORT); without it, one node
  --server-id NAME         this server's name in the cluster (default: the listen address)
  --log LEVEL              error, warn, info, debug or trace (default info; RUST_LOG wins)
  -h, --help               this text
";

fn parse<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value '{value}'"))
}

fn seconds(value: &str) -> Result<Duration, String> {
    parse(value).map(Duration::from_secs)
}

impl Config {
    /// The server's cluster name: `--server-id`, else its listen address (with the process
    /// id when the port is 0, since several servers may then share "127.0.0.1:0").
    pub fn server_name(&self) -> String {
        match &self.server_id {
            Some(id) => id.clone(),
            None if self.listen.port() == 0 => format!("{}-{}", self.listen, std::process::id()),
            None => self.listen.to_string(),
        }
    }

    /// Reads settings from the command line (and the config file it names). `Ok(None)`: --help.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
        use lexopt::prelude::*;
        let mut parser = lexopt::Parser::from_args(args);
        let mut flags: Vec<(String, String)> = Vec::new();
        let mut positional = Vec::new();
        let mut config_file = None;
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(None),
                Long("config") => config_file = Some(value_of(&mut parser)?),
                Long(name) => {
                    let name = name.to_owned();
                    let value = value_of(&mut parser)?;
                    flags.push((name, value));
                }
                Value(v) => positional.push(
                    v.into_string()
                        .map_err(|_| "arguments must be UTF-8".to_owned())?,
                ),
                Short(c) => return Err(format!("unknown option -{c}")),
            }
        }
        let mut config = Config::default();
        if let Some(path) = config_file {
            config.apply_file(Path::new(&path))?;
        }
        match positional.as_slice() {
            [] => {}
            [ip, port] => {
                config.listen =
                    parse(&format!("{ip}:{port}")).map_err(|e| format!("IP PORT: {e}"))?
            }
            _ => return Err("expected either no positional arguments or IP PORT".to_owned()),
        }
        for (name, value) in flags {
            config.apply(&name, &value).map_err(|e| match e {
                Unknown => format!("unknown option --{name} (see --help)"),
                Invalid(why) => format!("--{name}: {why}"),
            })?;
        }
        Ok(Some(config))
    }

    /// Sets one setting, named as its flag without the dashes (`login-idle-secs`).
    fn apply(&mut self, name: &str, value: &str) -> Result<(), SettingError> {
        let invalid = SettingError::Invalid;
        match name {
            "listen" => self.listen = parse(value).map_err(invalid)?,
            "threads" => self.threads = parse(value).map_err(invalid)?,
            "db" => self.db = value.to_owned(),
            "store-workers" => self.store_workers = parse(value).map_err(invalid)?,
            "max-frame" => self.max_frame = parse(value).map_err(invalid)?,
            "login-idle-secs" => self.login_idle = seconds(value).map_err(invalid)?,
            "login-deadline-secs" => {
                let bound = seconds(value).map_err(invalid)?;
                self.login_deadline = (!bound.is_zero()).then_some(bound);
            }
            "seeds-frame-gap-ms" => {
                self.seeds_frame_gap = Duration::from_millis(parse(value).map_err(invalid)?)
            }
            "output-high-water-kib" => {
                let kib: usize = parse(value).map_err(invalid)?;
                self.output_high_water = kib.max(1).saturating_mul(1024);
            }
            "slow-reader-deadline-secs" => {
                self.slow_reader_deadline =
                    seconds(value).map_err(invalid)?.max(Duration::from_secs(1))
            }
            "heartbeat-interval-secs" => {
                let interval = seconds(value).map_err(invalid)?;
                let timeout = self
                    .heartbeat
                    .map_or(crate::chat::DEFAULT_HEARTBEAT.1, |h| h.1);
                self.heartbeat = (!interval.is_zero()).then_some((interval, timeout));
            }
            "heartbeat-timeout-secs" => {
                let timeout = seconds(value).map_err(invalid)?.max(Duration::from_secs(1));
                if let Some(heartbeat) = &mut self.heartbeat {
                    heartbeat.1 = timeout;
                }
            }
            "store-retry-secs" => self.store_retry = seconds(value).map_err(invalid)?,
            "store-queue-high-kib" => {
                let kib: usize = parse(value).map_err(invalid)?;
                self.store_queue_high = kib.max(1).saturating_mul(1024);
            }
            "resume-token-ttl-secs" => self.token_ttl = seconds(value).map_err(invalid)?,
            "argon2-m-cost-kib" => self.argon2_m_cost_kib = parse(value).map_err(invalid)?,
            "argon2-t-cost" => self.argon2_t_cost = parse(value).map_err(invalid)?,
            "argon2-p-cost" => self.argon2_p_cost = parse(value).map_err(invalid)?,
            "log" => self.log = value.to_owned(),
            "redis" => self.redis = Some(value.to_owned()),
            "server-id" => self.server_id = Some(value.to_owned()),
            _ => return Err(SettingError::Unknown),
        }
        if self.login_idle.is_zero() {
            return Err(SettingError::Invalid("must be at least 1".to_owned()));
        }
        Ok(())
    }

    /// Every key of a TOML file, as if given as a flag (`login_idle_secs = 600`); unknown keys
    /// are an error, so a typo is reported rather than ignored.
    fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let place = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{place}: {e}"))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{place}: {e}"))?;
        for (key, value) in table {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(format!("{place}: {key}: not a plain value: {other}")),
            };
            self.apply(&key.replace('_', "-"), &value)
                .map_err(|e| match e {
                    Unknown => format!("{place}: unknown key {key}"),
                    Invalid(why) => format!("{place}: {key}: {why}"),
                })?;
        }
        Ok(())
    }
}

/// Why a setting was refused.
enum SettingError {
    Unknown,
    Invalid(String),
}

use SettingError::{Invalid, Unknown};

fn value_of(parser: &mut lexopt::Parser) -> Result<String, String> {
    parser
        .value()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|_| "arguments must be UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seeds_positional_form() {
        let c = Config::from_args(args(&["127.0.0.1", "6002"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:6002".parse().unwrap());
    }

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("chatserver-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(
            &path,
            "threads = 3\ndb = \"sqlite:x.db\"\nlogin_idle_secs = 5\n",
        )
        .unwrap();
        let c = Config::from_args(args(&[
            "--config",
            path.to_str().unwrap(),
            "--threads",
            "1",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.threads, 1);
        assert_eq!(c.db, "sqlite:x.db");
        assert_eq!(c.login_idle, Duration::from_secs(5));
        std::fs::write(&path, "thread = 3\n").unwrap();
        assert!(Config::from_args(args(&["--config", path.to_str().unwrap()])).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn login_clocks_and_the_seeds_gap() {
        let c = Config::from_args(args(&[])).unwrap().unwrap();
        assert_eq!(c.login_idle, Duration::from_secs(600));
        assert_eq!(c.login_deadline, None);
        let c = Config::from_args(args(&[
            "--login-idle-secs",
            "40",
            "--login-deadline-secs",
            "90",
            "--seeds-frame-gap-ms",
            "0",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.login_idle, Duration::from_secs(40));
        assert_eq!(c.login_deadline, Some(Duration::from_secs(90)));
        assert_eq!(c.seeds_frame_gap, Duration::ZERO);
        let c = Config::from_args(args(&["--login-deadline-secs", "0"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.login_deadline, None);
        let err = Config::from_args(args(&["--login-idle-secs", "0"])).unwrap_err();
        assert!(err.contains("--login-idle-secs"), "{err}");
    }

    #[test]
    fn store_queue_mark_in_kib() {
        let c = Config::from_args(args(&[])).unwrap().unwrap();
        assert_eq!(c.store_queue_high, 4096 * 1024);
        let c = Config::from_args(args(&["--store-queue-high-kib", "64"]))
            .unwrap()
            .unwrap();
        assert_eq!(c.store_queue_high, 64 * 1024);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Config::from_args(args(&["--threads", "many"])).is_err());
        assert!(Config::from_args(args(&["--bogus", "1"])).is_err());
        assert!(Config::from_args(args(&["1.2.3.4"])).is_err());
        assert!(Config::from_args(args(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn shipped_config_file_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/server.toml");
        let c = Config::from_args(args(&["--config", path]))
            .unwrap()
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:6000".parse().unwrap());
    }
}
