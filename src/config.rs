//! Server settings: defaults, then `--config FILE` (TOML), then command-line flags.

use serde::Deserialize;
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
    pub auth_timeout: Duration,
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
            auth_timeout: Duration::from_secs(30),
            argon2_m_cost_kib: 19 * 1024,
            argon2_t_cost: 2,
            argon2_p_cost: 1,
            log: "info".to_owned(),
            redis: None,
            server_id: None,
        }
    }
}

/// The TOML file's shape: every key optional, unknown keys rejected (a typo is an error).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    threads: Option<usize>,
    db: Option<String>,
    store_workers: Option<usize>,
    max_frame: Option<usize>,
    auth_timeout_secs: Option<u64>,
    argon2_m_cost_kib: Option<u32>,
    argon2_t_cost: Option<u32>,
    argon2_p_cost: Option<u32>,
    log: Option<String>,
    redis: Option<String>,
    server_id: Option<String>,
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
  --auth-timeout-secs S    close connections that have not logged in after S seconds (default 30)
  --argon2-m-cost-kib K    password hashing memory cost (default 19456)
  --argon2-t-cost T        password hashing iterations (default 2)
  --argon2-p-cost P        password hashing lanes (default 1)
  --redis URL              join a cluster through Redis (redis://HOST:PORT); without it, one node
  --server-id NAME         this server's name in the cluster (default: the listen address)
  --log LEVEL              error, warn, info, debug or trace (default info; RUST_LOG wins)
  -h, --help               this text
";

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: invalid value '{value}'"))
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
            [ip, port] => config.listen = parse("IP PORT", &format!("{ip}:{port}"))?,
            _ => return Err("expected either no positional arguments or IP PORT".to_owned()),
        }
        for (name, value) in flags {
            config.apply_flag(&name, &value)?;
        }
        Ok(Some(config))
    }

    fn apply_flag(&mut self, name: &str, value: &str) -> Result<(), String> {
        let flag = format!("--{name}");
        match name {
            "listen" => self.listen = parse(&flag, value)?,
            "threads" => self.threads = parse(&flag, value)?,
            "db" => self.db = value.to_owned(),
            "store-workers" => self.store_workers = parse(&flag, value)?,
            "max-frame" => self.max_frame = parse(&flag, value)?,
            "auth-timeout-secs" => self.auth_timeout = Duration::from_secs(parse(&flag, value)?),
            "argon2-m-cost-kib" => self.argon2_m_cost_kib = parse(&flag, value)?,
            "argon2-t-cost" => self.argon2_t_cost = parse(&flag, value)?,
            "argon2-p-cost" => self.argon2_p_cost = parse(&flag, value)?,
            "log" => self.log = value.to_owned(),
            "redis" => self.redis = Some(value.to_owned()),
            "server-id" => self.server_id = Some(value.to_owned()),
            _ => return Err(format!("unknown option {flag} (see --help)")),
        }
        Ok(())
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: FileConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(v) = file.listen {
            self.listen = parse("listen", &v)?;
        }
        if let Some(v) = file.threads {
            self.threads = v;
        }
        if let Some(v) = file.db {
            self.db = v;
        }
        if let Some(v) = file.store_workers {
            self.store_workers = v;
        }
        if let Some(v) = file.max_frame {
            self.max_frame = v;
        }
        if let Some(v) = file.auth_timeout_secs {
            self.auth_timeout = Duration::from_secs(v);
        }
        if let Some(v) = file.argon2_m_cost_kib {
            self.argon2_m_cost_kib = v;
        }
        if let Some(v) = file.argon2_t_cost {
            self.argon2_t_cost = v;
        }
        if let Some(v) = file.argon2_p_cost {
            self.argon2_p_cost = v;
        }
        if let Some(v) = file.log {
            self.log = v;
        }
        if file.redis.is_some() {
            self.redis = file.redis;
        }
        if file.server_id.is_some() {
            self.server_id = file.server_id;
        }
        Ok(())
    }
}

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
            "threads = 3\ndb = \"sqlite:x.db\"\nauth_timeout_secs = 5\n",
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
        assert_eq!(c.auth_timeout, Duration::from_secs(5));
        std::fs::write(&path, "thread = 3\n").unwrap();
        assert!(Config::from_args(args(&["--config", path.to_str().unwrap()])).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
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
