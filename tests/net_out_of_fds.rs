//! Out of file descriptors: the echo example runs as a child process with RLIMIT_NOFILE 64
//! (`prlimit --nofile=64:64`) and takes a burst of 300 connections beyond that limit. It must
//! not die and not spin (the acceptor's spare-fd trick sheds what it cannot hold), clients it
//! already serves keep echoing, and once the burst is gone new clients are served again.

#[path = "common/net_util.rs"]
mod net_util;

use net_util::{wait_until, ChildServer};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const NOFILE: u64 = 64;
const BURST: usize = 300;

fn echo_once(stream: &mut TcpStream, tag: usize) -> std::io::Result<()> {
    let msg = format!("hello from client {tag:05} ").repeat(40);
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(msg.as_bytes())?;
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back)?;
    assert_eq!(back, msg.as_bytes(), "echo altered");
    Ok(())
}

fn connect_and_echo(addr: SocketAddr, tag: usize) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    echo_once(&mut s, tag)?;
    Ok(s)
}

/// Whether the server closed this connection (EOF or reset) rather than holding it.
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("unexpected data on an idle connection"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn burst_beyond_rlimit_nofile_neither_kills_nor_spins_the_server() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("prlimit (util-linux) is needed for this test");
    }
    let mut server = ChildServer::start(1, Some(NOFILE));
    let addr = server.addr;

    let mut existing: Vec<TcpStream> = (0..10)
        .map(|i| connect_and_echo(addr, i).expect("existing client"))
        .collect();

    // The burst: every connect completes in the kernel's backlog; the server accepts what its
    // fds allow and sheds the rest.
    let started = Instant::now();
    let burst: Vec<TcpStream> = (0..BURST)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("burst connect"))
        .collect();
    eprintln!("burst of {BURST} connected in {:.2?}", started.elapsed());

    // Let the server work through its backlog, then sample its CPU time while the burst is held.
    let mut shed = 0;
    assert!(
        wait_until(Duration::from_secs(10), || {
            shed = burst.iter().filter(|s| closed_by_server(s)).count();
            shed >= BURST - NOFILE as usize
        }),
        "server shed only {shed} of {BURST} connections beyond its limit"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.child.try_wait().unwrap().is_none(), "server died");
    let cpu_before = server.cpu_time();
    let wall = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let cpu = server.cpu_time() - cpu_before;
    let wall = wall.elapsed();
    eprintln!(
        "{shed} of {BURST} burst connections shed; server CPU {cpu:?} over {wall:.2?} with the burst held"
    );
    assert!(
        cpu < Duration::from_millis(300),
        "server spins while out of fds: {cpu:?} CPU in {wall:?}"
    );
    assert!(server.child.try_wait().unwrap().is_none(), "server died");

    // Clients it already had are served as before.
    for (i, s) in existing.iter_mut().enumerate() {
        echo_once(s, i).expect("existing client after the burst");
    }

    // The burst goes away; fresh clients are served again (once the server saw the closes).
    drop(burst);
    let mut first = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            first = connect_and_echo(addr, 1000).ok();
            first.is_some()
        }),
        "no new client served after the burst closed"
    );
    let fresh: Vec<TcpStream> = (0..20)
        .map(|i| connect_and_echo(addr, 2000 + i).expect("fresh client after the burst"))
        .collect();
    for (i, s) in existing.iter_mut().enumerate() {
        echo_once(s, i).expect("existing client at the end");
    }
    assert!(server.child.try_wait().unwrap().is_none(), "server died");
    drop(fresh);
    drop(first);
    drop(existing);
}
