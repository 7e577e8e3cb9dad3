//! 500 concurrent clients each echo 1 MiB through the server, written in random-sized pieces:
//! every byte must come back, in order, on the connection that sent it.
//!
//! 50 client threads multiplex 10 non-blocking sockets each with poll(2): a thread writes a
//! random-sized piece to every socket that is writable and drains every socket that is readable,
//! checking what it reads against the bytes it sent.

#[path = "common/net_util.rs"]
mod net_util;

use net_util::{pattern, Echo, Rng, TestServer};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 50;
const CLIENTS_PER_THREAD: usize = 10;
const BYTES_PER_CLIENT: usize = 1 << 20;
const MAX_PIECE: usize = 64 * 1024;
const LIMIT: Duration = Duration::from_secs(120);

struct Client {
    stream: TcpStream,
    /// Offset of this client's stream in the shared pattern.
    base: usize,
    written: usize,
    read: usize,
}

fn run_thread(addr: std::net::SocketAddr, thread: usize, data: Arc<Vec<u8>>) -> usize {
    let mut rng = Rng::new(thread as u64 + 1);
    let mut clients: Vec<Client> = (0..CLIENTS_PER_THREAD)
        .map(|i| {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_nonblocking(true).unwrap();
            let index = thread * CLIENTS_PER_THREAD + i;
            Client {
                stream,
                base: (index * 7919) % BYTES_PER_CLIENT,
                written: 0,
                read: 0,
            }
        })
        .collect();
    let mut buf = vec![0u8; 128 * 1024];
    let end = Instant::now() + LIMIT;
    while clients.iter().any(|c| c.read < BYTES_PER_CLIENT) {
        assert!(Instant::now() < end, "echo did not finish within {LIMIT:?}");
        let mut fds: Vec<PollFd> = clients
            .iter()
            .map(|c| {
                let mut flags = PollFlags::empty();
                if c.read < BYTES_PER_CLIENT {
                    flags |= PollFlags::POLLIN;
                }
                if c.written < BYTES_PER_CLIENT {
                    flags |= PollFlags::POLLOUT;
                }
                PollFd::new(c.stream.as_fd(), flags)
            })
            .collect();
        poll(&mut fds, PollTimeout::from(1000u16)).expect("poll");
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        for (c, revents) in clients.iter_mut().zip(ready) {
            if revents.contains(PollFlags::POLLOUT) && c.written < BYTES_PER_CLIENT {
                let piece = rng.range(1, MAX_PIECE).min(BYTES_PER_CLIENT - c.written);
                let from = c.base + c.written;
                match c.stream.write(&data[from..from + piece]) {
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("write failed: {e}"),
                }
            }
            if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match c.stream.read(&mut buf) {
                    Ok(0) => panic!("server closed after {} of {BYTES_PER_CLIENT} bytes", c.read),
                    Ok(n) => {
                        assert!(c.read + n <= c.written, "read more than was written");
                        let from = c.base + c.read;
                        assert!(
                            buf[..n] == data[from..from + n],
                            "echoed bytes differ at offset {} of a client",
                            c.read
                        );
                        c.read += n;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        }
    }
    clients.len()
}

#[test]
fn five_hundred_clients_echo_one_mebibyte_each() {
    let server = TestServer::start(Arc::new(Echo), 2);
    // One pattern, twice a client's length, that every client reads at its own offset.
    let data = Arc::new(pattern(42, 2 * BYTES_PER_CLIENT));
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let data = data.clone();
            let addr = server.addr;
            std::thread::Builder::new()
                .name(format!("client-{t}"))
                .stack_size(256 * 1024)
                .spawn(move || run_thread(addr, t, data))
                .unwrap()
        })
        .collect();
    let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let elapsed = started.elapsed();
    assert_eq!(done, THREADS * CLIENTS_PER_THREAD);
    let total = (done * BYTES_PER_CLIENT) as f64 / (1 << 20) as f64;
    eprintln!("{done} clients echoed {total:.0} MiB in {elapsed:.2?}");
    // Every client closed: the server's loops must end up with no connection.
    let io = server.io.clone();
    let drained = net_util::wait_until(Duration::from_secs(10), || {
        io.iter()
            .map(|h| TestServer::call(h, |lp| lp.connection_count()))
            .sum::<usize>()
            == 0
    });
    assert!(drained, "server kept connections after every client closed");
    server.stop();
}
