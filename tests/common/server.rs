//! A chat server child process for the tests: started on a free port, stopped on drop.
#![allow(dead_code)]

use super::services::mysql_url_or_skip;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Where a test server keeps its data.
pub enum Backend {
    /// A SQLite file in its own temp dir.
    Sqlite(Arc<tempfile::TempDir>),
    /// A MySQL database created for the test and dropped with the last clone of the guard.
    Mysql(Arc<MysqlDb>),
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        match self {
            Backend::Sqlite(dir) => Backend::Sqlite(dir.clone()),
            Backend::Mysql(db) => Backend::Mysql(db.clone()),
        }
    }
}

pub struct MysqlDb {
    pub base: String,
    pub name: String,
}

impl MysqlDb {
    pub fn url(&self) -> String {
        format!("{}/{}", self.base, self.name)
    }

    /// A session of its own on the test's database (the server must have created it).
    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(mysql::Opts::from_url(&self.url()).expect("db url")).expect("mysql conn")
    }
}

impl Drop for MysqlDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = mysql::Conn::new(mysql::Opts::from_url(&self.base).expect("base url"))
        {
            use mysql::prelude::Queryable;
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite(Arc::new(tempfile::tempdir().expect("temp dir")))
    }

    /// A fresh MySQL database, or None (test skipped) when MariaDB is not there.
    pub fn mysql(test: &str) -> Option<Backend> {
        let base = mysql_url_or_skip(test)?;
        let name = format!("chat_test_{}_{}", std::process::id(), rand::random::<u32>());
        Some(Backend::Mysql(Arc::new(MysqlDb { base, name })))
    }

    pub fn db_url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("sqlite:{}", dir.path().join("chat.db").display()),
            Backend::Mysql(db) => db.url(),
        }
    }

    /// Offline messages stored for `user`, read straight from the database.
    pub fn offline_count(&self, user: i64) -> i64 {
        const SQL: &str = "SELECT COUNT(*) FROM offlinemessage WHERE userid = ?";
        match self {
            Backend::Sqlite(dir) => {
                let conn = rusqlite::Connection::open_with_flags(
                    dir.path().join("chat.db"),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .expect("open the SQLite file");
                conn.busy_timeout(Duration::from_secs(5))
                    .expect("busy timeout");
                conn.query_row(SQL, [user], |row| row.get(0))
                    .expect("count offline messages")
            }
            Backend::Mysql(db) => {
                use mysql::prelude::Queryable;
                db.conn()
                    .exec_first(SQL, (user,))
                    .expect("count offline messages")
                    .unwrap_or(0)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Mysql(_) => "mysql",
        }
    }
}

/// A running `server` process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub backend: Backend,
    log: Arc<Mutex<Vec<String>>>,
}

/// Cheap password hashing for tests (the default cost is for production).
pub const FAST_HASH: [&str; 4] = ["--argon2-m-cost-kib", "256", "--argon2-t-cost", "1"];

pub fn server_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server"))
}

impl Server {
    /// Starts a server on 127.0.0.1 (a free port unless `extra` has --listen) with fast hashing.
    pub fn start(backend: &Backend, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "--db".into(),
            backend.db_url(),
            "--log".into(),
            "info".into(),
        ];
        if !extra.contains(&"--listen") {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        args.extend(FAST_HASH.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut child = Command::new(server_exe())
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("listen address in the log"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start: {:?} {}",
                    args,
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            addr,
            backend: backend.clone(),
            log,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The server's resident set size in KiB (VmRSS in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the exit status (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
    }
}
