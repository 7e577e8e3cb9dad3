//! A MariaDB server of the test's own (data dir in a temp dir, a free port), so a test can
//! stop and restart the database under a running chat server without touching the shared one.
#![allow(dead_code)]

use super::services::skip_or_fail;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
const MARIADBD: &str = "/usr/sbin/mariadbd";

pub struct PrivateMysql {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateMysql {
    /// A fresh data dir and a running server, or None (skipped) without MariaDB's binaries.
    pub fn start(test: &str) -> Option<PrivateMysql> {
        if !Path::new(INSTALL_DB).exists() || !Path::new(MARIADBD).exists() {
            return skip_or_fail(test, "MariaDB's binaries are not installed");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // Two bootstraps at once trip over each other: one at a time in this process.
        static INSTALLING: Mutex<()> = Mutex::new(());
        let guard = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new(INSTALL_DB)
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data_dir(dir.path()).display()))
            .output()
            .expect("run mariadb-install-db");
        drop(guard);
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut db = PrivateMysql {
            dir,
            port,
            child: None,
        };
        db.resume();
        Some(db)
    }

    /// The URL of a database on it (the chat server creates the database).
    pub fn base_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same data and port, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("mariadbd.log")).expect("log file");
        let child = Command::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir(self.dir.path()).display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let opts = mysql::Opts::from_url(&self.base_url()).expect("url");
        while mysql::Conn::new(opts.clone()).is_err() {
            assert!(Instant::now() < deadline, "private mariadbd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL: the database vanishes as in a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

impl Drop for PrivateMysql {
    fn drop(&mut self) {
        self.kill();
    }
}
