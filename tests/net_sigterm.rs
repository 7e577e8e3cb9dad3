//! SIGTERM to the echo example (a child process) while a client has megabytes of echo pending:
//! the listener closes at once (new connects are refused or closed), the client still reads
//! every echoed byte and then EOF, an idle client is closed, and the process exits 0 promptly.

#[path = "common/net_util.rs"]
mod net_util;

use net_util::{pattern, read_to_eof, ChildServer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PENDING: usize = 8 << 20;

#[test]
fn sigterm_drains_pending_output_then_exits_zero() {
    let mut server = ChildServer::start(2, None);
    let addr = server.addr;

    let mut idle = TcpStream::connect(addr).unwrap();
    let mut busy = TcpStream::connect(addr).unwrap();
    let data = pattern(8, PENDING);
    // Sent without reading: the server echoes into its output buffer what the socket cannot take.
    busy.write_all(&data).unwrap();
    // Let the server read the tail of what the kernel still holds for it.
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    kill(Pid::from_raw(server.pid()), Signal::SIGTERM).unwrap();
    let stopping = server
        .stderr_lines
        .recv_timeout(Duration::from_secs(5))
        .expect("server did not react to SIGTERM");
    assert!(stopping.contains("stopping"), "unexpected line: {stopping}");

    // The listener is gone: refused, or at worst accepted and closed at once.
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "connect: {e}"),
        Ok(mut late) => {
            late.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut byte = [0u8; 1];
            match late.read(&mut byte) {
                Ok(0) => {}
                Ok(_) => panic!("a connection made after SIGTERM got data"),
                Err(e) => assert_ne!(
                    e.kind(),
                    ErrorKind::WouldBlock,
                    "a connection made after SIGTERM was held open"
                ),
            }
        }
    }

    // The idle client is closed, the busy one gets everything it is owed first.
    assert!(read_to_eof(&mut idle, 0, Duration::from_secs(5)).is_empty());
    let echoed = read_to_eof(&mut busy, PENDING, Duration::from_secs(10));
    assert_eq!(echoed.len(), PENDING, "echo cut short by the stop");
    assert!(echoed == data, "echo altered by the stop");

    let status = server
        .wait_timeout(Duration::from_secs(5))
        .expect("server still running 5 s after SIGTERM");
    eprintln!(
        "drained {PENDING} bytes and exited with {status} {:.2?} after SIGTERM",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0), "exit status {status}");
}
