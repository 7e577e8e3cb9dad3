//! Framing of the byte stream: terminators, frames joined and split across writes, server
//! frames ending in `\n`, the frame size limit (error, close, others unaffected) and bounded
//! memory under an endless frame.

#[macro_use]
mod common;

use common::client::{assert_chatting, decoded, logged_in, strip_mid, Client};
use common::server::{Backend, Server};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn start(backend: &Backend) -> Server {
    Server::start(backend, &["--threads", "2"])
}

fn terminators(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    let chat = |msg: &str| format!(r#"{{"msgid":6,"id":{ida},"toid":{idb},"msg":"{msg}"}}"#);
    // NUL-terminated, newline, CRLF, nothing at all, and runs of blanks and NULs before.
    let cases: [(&str, &str, &str); 5] = [
        ("", "nul", "\0"),
        ("", "newline", "\n"),
        ("", "crlf", "\r\n"),
        ("\0\0 \t\r\n", "padded", "\0\n\0"),
        ("", "bare", ""),
    ];
    for (before, msg, after) in cases {
        a.raw(format!("{before}{}{after}", chat(msg)).as_bytes());
        let (_, raw) = b
            .wait_for_raw(Duration::from_secs(10), |v| v["msgid"] == 6)
            .expect("delivered");
        assert_eq!(
            strip_mid(&String::from_utf8(raw).unwrap()),
            chat(msg),
            "{msg}"
        );
    }
    // An unterminated ping is answered at once: the closing brace ends the frame.
    a.raw(br#"{"msgid":24,"seq":"bare"}"#);
    let pong = a.recv_msgid(25);
    assert_eq!(pong["seq"], "bare");
    a.assert_quiet(Duration::from_millis(200), "no error for any terminator");
}

fn joined_frames(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    // Two pings back to back, no separator.
    a.raw(br#"{"msgid":24,"seq":1}{"msgid":24,"seq":2}"#);
    assert_eq!(a.recv(), json!({"msgid": 25, "seq": 1}));
    assert_eq!(a.recv(), json!({"msgid": 25, "seq": 2}));
    // Chats, a storage request and a ping in one write, mixed terminators.
    let one = format!(r#"{{"msgid":6,"id":{ida},"toid":{idb},"msg":"one }}{{"}}"#);
    let two = format!(r#"{{"msgid":6,"id":{ida},"toid":{idb},"msg":"two \"{{\""}}"#);
    a.raw(format!(r#"{one}{two}{{"msgid":16,"id":{ida}}}{{"msgid":24,"seq":3}}"#).as_bytes());
    for want in [&one, &two] {
        let (_, raw) = b
            .wait_for_raw(Duration::from_secs(10), |v| v["msgid"] == 6)
            .expect("delivered");
        assert_eq!(strip_mid(&String::from_utf8(raw).unwrap()), *want);
    }
    assert_eq!(a.recv()["msgid"], 17);
    assert_eq!(a.recv(), json!({"msgid": 25, "seq": 3}));
    // The end of one frame and the start of the next in one write.
    a.raw(br#"{"msgid":24,"seq":4}{"msgid":24,"#);
    assert_eq!(a.recv(), json!({"msgid": 25, "seq": 4}));
    std::thread::sleep(Duration::from_millis(50));
    a.raw(br#""seq":5}"#);
    assert_eq!(a.recv(), json!({"msgid": 25, "seq": 5}));
}

fn split_frames(backend: Backend) {
    let server = start(&backend);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    // Braces, quotes and backslashes inside strings, cut at every byte.
    let frame = format!(
        r#"{{"msgid":6,"id":{ida},"toid":{idb},"name":"}}\"{{","msg":"a\\\"}}{{\\\\ \u4e2d 中文 {{\"nested\":[1]}}","time":"t"}}"#
    );
    let bytes = frame.as_bytes();
    for (chunk, pause) in [(1, 2), (7, 30), (bytes.len() - 1, 100)] {
        for piece in bytes.chunks(chunk) {
            a.raw(piece);
            std::thread::sleep(Duration::from_millis(pause));
        }
        a.raw(b"\0");
        let (_, raw) = b
            .wait_for_raw(Duration::from_secs(10), |v| v["msgid"] == 6)
            .expect("delivered");
        assert_eq!(
            strip_mid(&String::from_utf8(raw).unwrap()),
            frame,
            "written in {chunk}-byte pieces"
        );
    }
    // A login split in two, on a fresh connection.
    let mut c = Client::connect(server.addr);
    let name = common::client::unique("split");
    let id = c.register(&name, "pw");
    c.raw(format!(r#"{{"msgid":1,"id":{id},"#).as_bytes());
    std::thread::sleep(Duration::from_millis(100));
    c.raw(br#""password":"pw"}"#);
    assert_eq!(c.recv_msgid(2)["errno"], 0);
    assert_chatting(&mut a, ida, &mut c, id, "after split login");
    a.assert_quiet(Duration::from_millis(200), "no errors");
}

/// Every server frame is one line: read the raw bytes of a burst of replies.
fn server_frames_are_lines(backend: Backend) {
    let server = start(&backend);
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(br#"{"msgid":24,"seq":1}{"msgid":24}{"msgid":24,"seq":"x"}{"msgid":99}"#)
        .unwrap();
    let want: &[u8] = b"{\"msgid\":25,\"seq\":1}\n{\"msgid\":25}\n{\"msgid\":25,\"seq\":\"x\"}\n";
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().filter(|&&b| b == b'\n').count() < 4 && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(got.starts_with(want), "{}", String::from_utf8_lossy(&got));
    let last = &got[want.len()..];
    assert!(last.ends_with(b"\n"), "{}", String::from_utf8_lossy(&got));
    let error: serde_json::Value = serde_json::from_slice(last).expect("one JSON line");
    assert_eq!(error["errno"], 4);
    assert_eq!(last.iter().filter(|&&b| b == b'\n').count(), 1);
}

fn oversize(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2", "--max-frame", "1024"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    // Just under the limit: fine.
    let filler = "x".repeat(900);
    a.chat(ida, idb, &filler);
    b.recv_chat(&filler);

    // 4 KiB in one frame, before login: ERROR 11 (no reqmsgid), then the close.
    let mut x = Client::connect(addr);
    let big = format!(r#"{{"msgid":24,"seq":"{}"}}"#, "y".repeat(4096));
    x.raw(big.as_bytes());
    x.expect_error(11, None);
    assert!(
        x.wait_closed(Duration::from_secs(5)),
        "closed after ERROR 11"
    );
    assert_chatting(&mut a, ida, &mut b, idb, "after a big frame");

    // An unfinished frame is refused as soon as it passes the limit.
    let mut y = Client::connect(addr);
    y.raw(format!(r#"{{"msgid":6,"msg":"{}"#, "z".repeat(4096)).as_bytes());
    y.expect_error(11, None);
    assert!(
        y.wait_closed(Duration::from_secs(5)),
        "closed without the frame's end"
    );

    // A logged-in user's oversize chat: closed, its session released, nothing lost after.
    let (mut c, idc) = logged_in(addr, "c");
    c.chat(idc, ida, &"w".repeat(4096));
    c.expect_error(11, None);
    assert!(c.wait_closed(Duration::from_secs(5)));
    a.assert_quiet(
        Duration::from_millis(200),
        "the oversize chat is not delivered",
    );
    b.chat(idb, idc, "stored for c");
    b.ping(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let ack = loop {
        let mut again = Client::connect(addr);
        let ack = again.login(idc, "pw");
        if ack["errno"] == 0 {
            break ack;
        }
        assert!(
            Instant::now() < deadline,
            "c's session never released: {ack}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let offline = decoded(&ack, "offlinemsg");
    assert_eq!(offline.len(), 1, "{ack}");
    assert_eq!(offline[0]["msg"], "stored for c");

    // The others never noticed.
    assert_chatting(&mut a, ida, &mut b, idb, "after everything");
    let mut fresh = Client::connect(addr);
    fresh.ping(2);
}

/// An endless frame costs the server at most about one frame of memory: the connection is
/// closed soon after the limit, however much the client keeps sending. (Touches no storage,
/// so SQLite alone.)
#[test]
fn endless_frame_memory_is_bounded() {
    const TOTAL: usize = 50 << 20;
    let backend = Backend::sqlite();
    let server = Server::start(&backend, &["--threads", "2"]);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    assert_chatting(&mut a, ida, &mut b, idb, "warm-up");
    let before = server.rss_kib();
    let chunk = vec![b'a'; 64 << 10];
    for round in 0..3 {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(br#"{"msgid":6,"id":1,"toid":2,"msg":""#)
            .unwrap();
        let mut sent = 0;
        let started = Instant::now();
        while sent < TOTAL {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => {
                    // A timeout would mean the server stopped reading but kept the socket.
                    assert!(
                        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                        "round {round}: write failed with {e} after {sent} bytes"
                    );
                    break;
                }
            }
        }
        assert!(
            sent < TOTAL,
            "round {round}: the server took all {sent} bytes of one frame without closing"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "round {round}: closing took {:?}",
            started.elapsed()
        );
        eprintln!("round {round}: closed after {} KiB sent", sent >> 10);
    }
    let after = server.rss_kib();
    eprintln!("server VmRSS {before} KiB -> {after} KiB");
    assert!(
        after < before + 16 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
    assert_chatting(&mut a, ida, &mut b, idb, "after the endless frames");
}

both_backends!(
    terminators,
    joined_frames,
    split_frames,
    server_frames_are_lines,
    oversize,
);
