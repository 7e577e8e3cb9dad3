//! The client binary driven by a piped script against a tiny fake server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chatserver::protocol::Framer;
use serde_json::{json, Value};
use std::ops::ControlFlow;

/// What the fake server got: every frame, and whether each one was followed by a newline.
struct Received {
    frames: Vec<Value>,
    newline_terminated: bool,
}

fn login_ack() -> String {
    let offline = json!({"msgid":6,"id":8,"name":"bob","toid":7,"msg":"see you","time":"2024-05-01 10:00:00"});
    let friend = json!({"id":8,"name":"bob","state":"online"});
    let member = json!({"id":7,"name":"alice","state":"online","role":"creator"});
    let group =
        json!({"id":3,"groupname":"crabs","groupdesc":"rustaceans","users":[member.to_string()]});
    let ack = json!({"msgid":2,"errno":0,"id":7,"name":"alice",
        "offlinemsg":[offline.to_string()],"friends":[friend.to_string()],"groups":[group.to_string()]});
    format!("{ack}\n")
}

/// The fake server's answers to one request.
fn answer(req: &Value) -> Vec<String> {
    match req.get("msgid").and_then(Value::as_i64) {
        Some(4) => vec!["{\"msgid\":5,\"errno\":0,\"id\":7}\n".to_owned()],
        Some(1) => vec![login_ack()],
        Some(3) => vec!["{\"msgid\":12,\"errno\":0,\"id\":7}\n".to_owned()],
        // A chat to ourselves comes back, as the real server forwards it.
        Some(6) if req.get("toid") == Some(&json!(7)) => vec![format!("{req}\n")],
        _ => vec![],
    }
}

/// Serves one connection; with `close_after_login` it hangs up right after the login ack.
fn fake_server(close_after_login: bool) -> (u16, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(20))).ok();
        serve(&mut conn, close_after_login)
    });
    (port, handle)
}

fn serve(conn: &mut TcpStream, close_after_login: bool) -> Received {
    let mut got = Received {
        frames: Vec::new(),
        newline_terminated: true,
    };
    let mut framer = Framer::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return got,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut requests = Vec::new();
        let _ = framer.drain(&mut buf, |frame| {
            if frame.next.is_some_and(|b| b != b'\n') {
                got.newline_terminated = false;
            }
            requests.push(serde_json::from_slice::<Value>(frame.bytes).expect("client sent JSON"));
            ControlFlow::Continue(())
        });
        for req in requests {
            for reply in answer(&req) {
                conn.write_all(reply.as_bytes()).expect("reply");
            }
            let was_login = req["msgid"] == 1;
            got.frames.push(req);
            if close_after_login && was_login {
                return got;
            }
        }
    }
}

/// Runs the client with `script` on stdin; kills it after 20 s.
fn run_client(args: &[String], script: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = child.stdin.take().expect("stdin");
    // The client may exit before reading everything (quit): ignore a broken pipe.
    let _ = stdin.write_all(script.as_bytes());
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn register_login_chat_logout_quit() {
    let (port, server) = fake_server(false);
    let script = "2\nalice\npw\n1\n7\npw\nchat:7:hello:world\nloginout\n3\n";
    let out = run_client(&["127.0.0.1".into(), port.to_string()], script);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    let got = server.join().expect("server thread");
    assert!(got.newline_terminated, "every frame ends with a newline");
    let frames = got.frames;
    assert_eq!(frames.len(), 4, "{frames:?}");
    assert_eq!(frames[0], json!({"msgid":4,"name":"alice","password":"pw"}));
    // Acknowledged delivery asked for (this fake server does not grant it: no acks follow).
    assert_eq!(
        frames[1],
        json!({"msgid":1,"id":7,"password":"pw","acks":true})
    );
    let chat = &frames[2];
    let time = chat["time"].as_str().expect("time is a string");
    assert_eq!(time.len(), 19, "{time}");
    let cid = chat["cid"].as_str().expect("a chat carries a client id");
    assert!(!cid.is_empty() && cid.len() <= 64, "{cid}");
    assert_eq!(
        chat,
        &json!({"msgid":6,"id":7,"name":"alice","toid":7,"msg":"hello:world","time":time,"cid":cid})
    );
    assert_eq!(frames[3], json!({"msgid":3,"id":7}));

    assert!(stdout.contains("userid is 7"), "{stdout}");
    assert!(
        stdout.contains("current login user => id:7 name:alice"),
        "{stdout}"
    );
    assert!(stdout.contains("\n8 bob online\n"), "friend: {stdout}");
    assert!(stdout.contains("\n3 crabs rustaceans\n"), "group: {stdout}");
    assert!(
        stdout.contains("    7 alice online creator\n"),
        "member: {stdout}"
    );
    assert!(
        stdout.contains("[2024-05-01 10:00:00] bob(8) said: see you"),
        "offline: {stdout}"
    );
    assert!(
        stdout.contains(&format!("[{time}] alice(7) said: hello:world")),
        "{stdout}"
    );
    assert!(stdout.contains("logged out"), "{stdout}");
    // A pipe gets plain lines: no prompts, no escapes.
    assert!(
        !stdout.contains('\x1b') && !stdout.contains("choice:"),
        "{stdout:?}"
    );
    // Incoming lines print in arrival order: the echoed chat before the logout.
    let echoed = stdout.find("said: hello:world").unwrap_or(usize::MAX);
    assert!(echoed < stdout.find("logged out").unwrap_or(0), "{stdout}");
}

#[test]
fn end_of_input_still_sends_and_logs_out() {
    let (port, server) = fake_server(false);
    let out = run_client(
        &[format!("127.0.0.1:{port}")],
        "1\n7\npw\nchat:8:bye: now\n",
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    let frames = server.join().expect("server thread").frames;
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[1]["msgid"], 6);
    assert_eq!(frames[1]["msg"], "bye: now");
    assert_eq!(frames[2], json!({"msgid":3,"id":7}));
}

#[test]
fn no_acks_logs_in_as_before() {
    let (port, server) = fake_server(false);
    let out = run_client(
        &["--no-acks".into(), "127.0.0.1".into(), port.to_string()],
        "1\n7\npw\n",
    );
    assert!(out.status.success(), "{}", text(&out.stdout));
    let frames = server.join().expect("server thread").frames;
    assert_eq!(frames[0], json!({"msgid":1,"id":7,"password":"pw"}));
}

#[test]
fn server_hanging_up_exits_1() {
    let (port, server) = fake_server(true);
    // Stdin stays open-ended enough: the client sits at the chat prompt when the server leaves.
    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["127.0.0.1".to_owned(), port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"1\n7\npw\n").expect("script");
    server.join().expect("server thread");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("server closed the connection"));
}

#[test]
fn connection_refused_exits_1() {
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, SockType};
    use nix::sys::socket::{SockaddrIn, SockaddrLike};

    // A bound but never listening socket holds the port (so a parallel test cannot take it)
    // and makes connecting to it fail with "connection refused".
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
    let addr: SockaddrIn = getsockname(fd.as_raw_fd()).expect("getsockname");
    assert_eq!(addr.family(), Some(AddressFamily::Inet));
    let out = run_client(&["127.0.0.1".into(), addr.port().to_string()], "3\n");
    drop(fd);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2() {
    let out = run_client(&["a".into(), "b".into(), "c".into()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage"));
}

/// Reads frames from `conn` and hands each to `on_frame`, until it returns false or the
/// stream ends; returns every frame read.
fn serve_with(
    conn: &mut TcpStream,
    mut on_frame: impl FnMut(&Value, &mut TcpStream) -> bool,
) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut framer = Framer::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return frames,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut requests = Vec::new();
        let _ = framer.drain(&mut buf, |frame| {
            requests.push(serde_json::from_slice::<Value>(frame.bytes).expect("client sent JSON"));
            ControlFlow::Continue(())
        });
        for req in requests {
            let more = on_frame(&req, conn);
            frames.push(req);
            if !more {
                return frames;
            }
        }
    }
}

fn send(conn: &mut TcpStream, frames: &[Value]) {
    let text: String = frames.iter().map(|f| format!("{f}\n")).collect();
    conn.write_all(text.as_bytes()).expect("write");
}

fn chat_from_bob(mid: u64, msg: &str) -> Value {
    json!({"mid":mid,"msgid":6,"id":8,"name":"bob","toid":7,"msg":msg,"time":"t"})
}

#[test]
fn acks_heartbeat_dedup_send_ack_shutdown_and_reconnect() {
    use std::sync::mpsc;
    let token = "a".repeat(64);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (ready_tx, ready_rx) = mpsc::channel::<&'static str>();
    let server_token = token.clone();
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept 1");
        conn.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let (mut pinged, mut acked) = (false, 0);
        let first = serve_with(&mut conn, |req, conn| {
            match req["msgid"].as_i64() {
                Some(1) => send(
                    conn,
                    &[
                        json!({"msgid":2,"errno":0,"id":7,"name":"alice","acks":true,"token":server_token}),
                        chat_from_bob(1, "first"),
                        chat_from_bob(1, "first"),
                        chat_from_bob(2, "second"),
                        json!({"msgid":27}),
                    ],
                ),
                Some(24) if req.get("seq").is_none() => {
                    pinged = true;
                    send(conn, &[json!({"msgid":25})]);
                }
                Some(26) => acked = req["count"].as_i64().unwrap_or(0),
                Some(6) if req["msg"] == "one" => {
                    send(conn, &[json!({"msgid":28,"cid":req["cid"],"mid":100})]);
                }
                Some(6) if req["msg"] == "two" => {
                    // Not confirmed: the server stops, the client must send it again.
                    send(
                        conn,
                        &[json!({"msgid":29,"errmsg":"server is shutting down, log in again"})],
                    );
                    return false;
                }
                _ => {}
            }
            if pinged && acked == 3 {
                let _ = ready_tx.send("first");
                pinged = false;
            }
            true
        });
        drop(conn);
        let (mut conn, _) = listener.accept().expect("accept 2");
        conn.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let (mut resent, mut acked) = (false, 0);
        let second = serve_with(&mut conn, |req, conn| {
            match req["msgid"].as_i64() {
                // The token is refused (expired, say): the client falls back to the password.
                Some(1) if req.get("token").is_some() => send(
                    conn,
                    &[json!({"msgid":2,"errno":1,"errmsg":"id or password is invalid!"})],
                ),
                Some(1) => send(
                    conn,
                    &[
                        json!({"msgid":2,"errno":0,"id":7,"name":"alice","acks":true,"token":"b".repeat(64)}),
                        // Redelivered: it was not acknowledged in time. Counted, not shown.
                        chat_from_bob(2, "second"),
                    ],
                ),
                Some(6) => {
                    resent = true;
                    send(conn, &[json!({"msgid":28,"cid":req["cid"],"mid":101})]);
                }
                Some(26) => acked = req["count"].as_i64().unwrap_or(0),
                Some(3) => send(conn, &[json!({"msgid":12,"errno":0,"id":7})]),
                _ => {}
            }
            if resent && acked == 1 {
                let _ = ready_tx.send("second");
                resent = false;
            }
            true
        });
        (first, second)
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
        .args(["127.0.0.1".to_owned(), port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"1\n7\npw\n").expect("login");
    let wait = |what: &str| {
        let got = ready_rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(got, Ok(what), "waiting for the {what} connection's acks");
    };
    wait("first");
    stdin.write_all(b"chat:8:one\nchat:8:two\n").expect("chats");
    wait("second");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().ok();
    let out = child.wait_with_output().expect("output");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stdout}", out.status);
    let (first, second) = server.join().expect("server thread");

    assert_eq!(
        first[0],
        json!({"msgid":1,"id":7,"password":"pw","acks":true})
    );
    let acks: Vec<i64> = first
        .iter()
        .filter(|f| f["msgid"] == 26)
        .map(|f| f["count"].as_i64().unwrap_or(-1))
        .collect();
    assert!(acks.windows(2).all(|w| w[0] < w[1]), "cumulative: {acks:?}");
    assert_eq!(acks.last(), Some(&3), "every copy counted: {first:?}");
    assert!(
        first.iter().any(|f| *f == json!({"msgid":24})),
        "heartbeat answered: {first:?}"
    );
    let two_cid = first
        .iter()
        .find(|f| f["msg"] == "two")
        .map(|f| f["cid"].clone())
        .expect("two sent");

    assert_eq!(
        second[0],
        json!({"msgid":1,"id":7,"token":token,"acks":true})
    );
    assert_eq!(
        second[1],
        json!({"msgid":1,"id":7,"password":"pw","acks":true})
    );
    let resent: Vec<&Value> = second.iter().filter(|f| f["msgid"] == 6).collect();
    assert_eq!(resent.len(), 1, "only the unconfirmed one: {second:?}");
    assert_eq!(resent[0]["msg"], "two");
    assert_eq!(resent[0]["cid"], two_cid, "a retry keeps its cid");
    assert!(
        second.iter().any(|f| *f == json!({"msgid":26,"count":1})),
        "{second:?}"
    );
    assert_eq!(second.last(), Some(&json!({"msgid":3,"id":7})));

    let count = |s: &str| stdout.matches(s).count();
    assert_eq!(count("bob(8) said: first"), 1, "deduplicated: {stdout}");
    assert_eq!(count("bob(8) said: second"), 1, "deduplicated: {stdout}");
    assert_eq!(count("sent (mid 100)"), 1, "{stdout}");
    assert_eq!(count("sent (mid 101)"), 1, "{stdout}");
    assert!(
        stdout.contains("notice: server is shutting down, log in again"),
        "{stdout}"
    );
    assert!(stdout.contains("resume token refused"), "{stdout}");
    assert!(
        stdout.contains("reconnected as 7 with the password"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("pong") && !stdout.contains("heartbeat"),
        "{stdout}"
    );
}
