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
    assert_eq!(frames[1], json!({"msgid":1,"id":7,"password":"pw"}));
    let chat = &frames[2];
    let time = chat["time"].as_str().expect("time is a string");
    assert_eq!(time.len(), 19, "{time}");
    assert_eq!(
        chat,
        &json!({"msgid":6,"id":7,"name":"alice","toid":7,"msg":"hello:world","time":time})
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
