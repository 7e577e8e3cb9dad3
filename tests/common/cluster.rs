//! A cluster for the tests: a Redis of its own, chat servers on one MariaDB database, nginx.
//!
//! Everything runs on loopback on free ports and ends with the fixture. The tests skip (or
//! fail under CHATSERVER_REQUIRE_SERVICES=1) when MariaDB, redis-server or nginx is missing;
//! `scripts/setup.sh` installs and starts them.
#![allow(dead_code)]

use super::server::{Backend, Server};
use super::services::skip_or_fail;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn end(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A redis-server of the test's own (nothing on disk), which the test may stop and restart.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start(test: &str) -> Option<Redis> {
        if !found("redis-server") {
            return skip_or_fail(test, "redis-server is not installed (scripts/setup.sh)");
        }
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.restart();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after `stop`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        assert!(
            wait_listening(addr, Duration::from_secs(10)),
            "redis-server did not listen on {addr}"
        );
    }

    /// Kills it: every key is gone (nothing on disk), every client connection drops.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain connection for inspecting keys.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("redis connection")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An nginx of the test's own, running one of the project's configs (conf/) with the
/// listen address and upstreams replaced by the test's.
pub struct Nginx {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

pub fn project_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

const NGINX: &str = "/usr/sbin/nginx";
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

impl Nginx {
    pub fn available(test: &str) -> bool {
        if Path::new(NGINX).exists() && Path::new(STREAM_MODULE).exists() {
            return true;
        }
        skip_or_fail::<()>(
            test,
            "nginx with the stream module is not installed (scripts/setup.sh)",
        );
        false
    }

    /// conf/nginx.conf in front of `upstreams` (one or two servers).
    pub fn plain(test: &str, upstreams: &[SocketAddr]) -> Option<Nginx> {
        Self::start(test, "conf/nginx.conf", "127.0.0.1:8000", upstreams)
    }

    /// conf/nginx-tls.conf with a fresh self-signed certificate (dir/server.crt).
    pub fn tls(test: &str, upstreams: &[SocketAddr]) -> Option<Nginx> {
        Self::start(test, "conf/nginx-tls.conf", "127.0.0.1:8443", upstreams)
    }

    fn start(test: &str, conf: &str, listen: &str, upstreams: &[SocketAddr]) -> Option<Nginx> {
        if !Self::available(test) {
            return None;
        }
        let dir = tempfile::tempdir().expect("nginx dir");
        std::fs::create_dir(dir.path().join("logs")).expect("logs dir");
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut text = std::fs::read_to_string(project_file(conf)).expect("read nginx conf");
        assert!(text.contains(listen), "{conf} does not listen on {listen}");
        text = text.replace(listen, &addr.to_string());
        let first = upstreams[0].to_string();
        let second = upstreams.get(1).unwrap_or(&upstreams[0]).to_string();
        text = text
            .replace("127.0.0.1:6000", &first)
            .replace("127.0.0.1:6002", &second);
        if text.contains("../run/nginx/server.crt") {
            let crt = dir.path().join("server.crt");
            let key = dir.path().join("server.key");
            let status = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run openssl");
            assert!(status.success(), "openssl req failed");
            text = text
                .replace("../run/nginx/server.crt", crt.to_str().unwrap())
                .replace("../run/nginx/server.key", key.to_str().unwrap());
        }
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, text).expect("write nginx conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx { addr, dir, child };
        assert!(
            wait_listening(addr, Duration::from_secs(10)),
            "nginx did not listen on {addr}: {}",
            nginx.error_log()
        );
        Some(nginx)
    }

    pub fn error_log(&self) -> String {
        let mut all = String::new();
        for name in ["error.log", "error-tls.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join("logs").join(name)) {
                all.push_str(&text);
            }
        }
        all
    }

    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        end(&mut self.child);
    }
}

/// Chat servers sharing one MariaDB database and one Redis, named s0, s1, ...
pub struct ChatCluster {
    pub redis: Redis,
    pub backend: Backend,
    pub servers: Vec<Server>,
}

/// What every cluster test's servers run with (two I/O threads each).
const SERVER_FLAGS: [&str; 2] = ["--threads", "2"];

impl ChatCluster {
    /// `n` servers, or None (skipped) when MariaDB or redis-server is missing.
    pub fn start(test: &str, n: usize) -> Option<ChatCluster> {
        let backend = Backend::mysql(test)?;
        let redis = Redis::start(test)?;
        let mut cluster = ChatCluster {
            redis,
            backend,
            servers: Vec::new(),
        };
        for i in 0..n {
            let server = cluster.start_server(&format!("s{i}"), None);
            cluster.servers.push(server);
        }
        Some(cluster)
    }

    /// A server named `name` in this cluster (on `port`, else a free one).
    pub fn start_server(&self, name: &str, port: Option<u16>) -> Server {
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let url = self.redis.url();
        let mut args = vec!["--redis", &url, "--server-id", name, "--listen", &listen];
        args.extend(SERVER_FLAGS);
        Server::start(&self.backend, &args)
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i].addr
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }
}
