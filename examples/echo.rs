//! Echo server on the network core: `cargo run --release --example echo -- --listen 127.0.0.1:7000 --threads 2`.
//!
//! SIGINT/SIGTERM stop it gracefully: the listener closes, every connection gets what it is
//! owed, then the process exits 0.

use chatserver::net::{
    block_termination_signals, Buffer, ConnId, ConnectionHandler, EventLoop, EventLoopThreadPool,
    ServerOptions, TcpServer,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Echo;

impl ConnectionHandler for Echo {
    fn on_message(&self, lp: &mut EventLoop, conn: ConnId, input: &mut Buffer) {
        lp.send(conn, input.peek());
        input.retrieve_all();
    }
}

fn usage() -> ! {
    eprintln!("usage: echo [--listen ADDR] [--threads N] [--reuse-port]");
    std::process::exit(2);
}

fn main() {
    let mask = block_termination_signals().expect("block SIGINT/SIGTERM");
    let mut listen: SocketAddr = "127.0.0.1:7000".parse().expect("default address");
    let mut threads = 2usize;
    let mut options = ServerOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--reuse-port" => options.reuse_port = true,
            _ => usage(),
        }
    }
    let mut base = EventLoop::new(0).expect("event loop");
    let pool = EventLoopThreadPool::start(threads, "echo-io").expect("I/O threads");
    let server = match TcpServer::start(&mut base, listen, options, Arc::new(Echo), pool.handles())
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echo: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "echo: listening on {} with {threads} I/O threads",
        server.local_addr()
    );
    base.watch_signals(&mask, move |lp, signal| {
        eprintln!("echo: {signal:?}: stopping");
        server.stop(lp, Duration::from_secs(5));
    })
    .expect("signalfd");
    base.run();
    pool.join();
    eprintln!("echo: stopped");
}
