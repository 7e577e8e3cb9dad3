//! Bad input: each malformed or mistyped frame gets its refusal with the right errno (an
//! ERROR_MSG; for LOGIN_MSG and REG_MSG their ack; garbage and oversize frames get an
//! ERROR_MSG and a close), and the server keeps serving everyone else.

#[macro_use]
mod common;

use common::client::{assert_chatting, check_refusal, logged_in, refusal_msgid, Client};
use common::server::{Backend, Server};
use std::net::SocketAddr;
use std::time::Duration;

/// What the server must answer to a bad frame.
struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    errno: i64,
    /// The `reqmsgid` the error must carry (None: no reqmsgid key).
    reqmsgid: Option<i64>,
    /// The field named at the end of errmsg, for errno 5.
    field: Option<&'static str>,
}

fn case(what: &'static str, bytes: impl Into<Vec<u8>>, errno: i64, reqmsgid: Option<i64>) -> Case {
    Case {
        what,
        bytes: bytes.into(),
        errno,
        reqmsgid,
        field: None,
    }
}

fn field(what: &'static str, bytes: String, msgid: i64, name: &'static str) -> Case {
    Case {
        what,
        bytes: bytes.into(),
        errno: 5,
        reqmsgid: Some(msgid),
        field: Some(name),
    }
}

/// Frames that are answered with an error and leave the connection open. `id` is the bad
/// client's own user id, `to` another user's.
fn answered(id: i64, to: i64) -> Vec<Case> {
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_seq = format!(r#"{{"msgid":24,"seq":{deep}}}"#);
    vec![
        // Not JSON.
        case("missing value", r#"{"msgid":6,"id":}"#, 1, None),
        case("trailing comma", r#"{"msgid":24,}"#, 1, None),
        case("missing comma", r#"{"msgid":24 "seq":1}"#, 1, None),
        case("bare word", r#"{"msgid":24,"seq":hello}"#, 1, None),
        case("single quotes", r#"{'msgid':24}"#, 1, None),
        case("duplicate field", r#"{"msgid":24,"msgid":24}"#, 1, None),
        case(
            "invalid UTF-8 in a string",
            [&br#"{"msgid":24,"seq":""#[..], b"\xff\xfe", b"\"}"].concat(),
            1,
            None,
        ),
        case("nesting too deep in a value", deep_seq, 1, None),
        // JSON, but not an object.
        case("array", "[1,2,3]", 2, None),
        case("array of a request", r#"[{"msgid":24}]"#, 2, None),
        case("empty array", "[]", 2, None),
        case("deeply nested array", deep.clone(), 2, None),
        // No usable msgid.
        case("empty object", "{}", 3, None),
        case(
            "no msgid",
            format!(r#"{{"id":{id},"toid":{to},"msg":"x"}}"#),
            3,
            None,
        ),
        case("msgid string", r#"{"msgid":"24"}"#, 3, None),
        case("msgid float", r#"{"msgid":1.5}"#, 3, None),
        case("msgid integral float", r#"{"msgid":24.0}"#, 3, None),
        case("msgid null", r#"{"msgid":null}"#, 3, None),
        case("msgid bool", r#"{"msgid":true}"#, 3, None),
        case("msgid array", r#"{"msgid":[24]}"#, 3, None),
        case(
            "msgid too big",
            r#"{"msgid":99999999999999999999}"#,
            3,
            None,
        ),
        // Unknown msgids, server-side ones included.
        case("msgid 99", r#"{"msgid":99}"#, 4, Some(99)),
        case("msgid 0", r#"{"msgid":0}"#, 4, Some(0)),
        case("msgid -6", r#"{"msgid":-6}"#, 4, Some(-6)),
        case("msgid 2 (an ack)", r#"{"msgid":2,"errno":0}"#, 4, Some(2)),
        case(
            "msgid 11 (an error)",
            r#"{"msgid":11,"errno":1}"#,
            4,
            Some(11),
        ),
        case("msgid 25 (a pong)", r#"{"msgid":25}"#, 4, Some(25)),
        // Missing or mistyped fields.
        field(
            "chat without toid",
            format!(r#"{{"msgid":6,"id":{id},"msg":"x"}}"#),
            6,
            "toid",
        ),
        field(
            "chat toid string",
            format!(r#"{{"msgid":6,"id":{id},"toid":"{to}","msg":"x"}}"#),
            6,
            "toid",
        ),
        field(
            "chat toid float",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to}.0,"msg":"x"}}"#),
            6,
            "toid",
        ),
        field(
            "chat toid too big",
            format!(r#"{{"msgid":6,"id":{id},"toid":1e30,"msg":"x"}}"#),
            6,
            "toid",
        ),
        field(
            "chat without msg",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to}}}"#),
            6,
            "msg",
        ),
        field(
            "chat msg number",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to},"msg":5}}"#),
            6,
            "msg",
        ),
        field(
            "chat msg null",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to},"msg":null}}"#),
            6,
            "msg",
        ),
        field(
            "chat name number",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to},"msg":"x","name":5}}"#),
            6,
            "name",
        ),
        field(
            "chat time object",
            format!(r#"{{"msgid":6,"id":{id},"toid":{to},"msg":"x","time":{{}}}}"#),
            6,
            "time",
        ),
        field(
            "chat without id",
            format!(r#"{{"msgid":6,"toid":{to},"msg":"x"}}"#),
            6,
            "id",
        ),
        field(
            "chat id string",
            format!(r#"{{"msgid":6,"id":"{id}","toid":{to},"msg":"x"}}"#),
            6,
            "id",
        ),
        field(
            "group chat groupid bool",
            format!(r#"{{"msgid":10,"id":{id},"groupid":true,"msg":"x"}}"#),
            10,
            "groupid",
        ),
        field(
            "login id string",
            r#"{"msgid":1,"id":"1","password":"pw"}"#.into(),
            1,
            "id",
        ),
        field(
            "login without password",
            r#"{"msgid":1,"id":1}"#.into(),
            1,
            "password",
        ),
        field(
            "add friend friendid null",
            format!(r#"{{"msgid":7,"id":{id},"friendid":null}}"#),
            7,
            "friendid",
        ),
        field(
            "friend list id float",
            r#"{"msgid":16,"id":1.5}"#.into(),
            16,
            "id",
        ),
        field(
            "leave group without groupid",
            format!(r#"{{"msgid":20,"id":{id}}}"#),
            20,
            "groupid",
        ),
        field(
            "remove friend friendid array",
            format!(r#"{{"msgid":22,"id":{id},"friendid":[{to}]}}"#),
            22,
            "friendid",
        ),
        field(
            "register password number",
            r#"{"msgid":4,"name":"n","password":123456}"#.into(),
            4,
            "password",
        ),
        // Valid types, values out of range.
        case(
            "register empty name",
            r#"{"msgid":4,"name":"","password":"pw"}"#,
            20,
            Some(4),
        ),
    ]
}

/// Byte streams the server cannot frame: answered, then closed.
fn closing(max_frame: usize) -> Vec<Case> {
    vec![
        case(
            "binary garbage",
            b"\x00\x01\x02\xff\xfe\x80garbage".to_vec(),
            12,
            None,
        ),
        case("stray closing brace", "}", 12, None),
        case("stray closing bracket", " ]", 12, None),
        case("a number", "12345", 12, None),
        case("a bare string", r#""msgid""#, 12, None),
        case("a word", "hello", 12, None),
        case(
            "UTF-8 BOM before a frame",
            b"\xef\xbb\xbf{\"msgid\":24}".to_vec(),
            12,
            None,
        ),
        case(
            "oversize frame",
            format!(r#"{{"msgid":24,"seq":"{}"}}"#, "o".repeat(max_frame)),
            11,
            None,
        ),
    ]
}

fn check_answered(c: &mut Client, case: &Case) {
    c.raw(&case.bytes);
    c.raw(b"\n");
    let want = refusal_msgid(case.reqmsgid);
    let e = c
        .wait_for(Duration::from_secs(10), |v| v["msgid"] == want)
        .unwrap_or_else(|| panic!("{}: no refusal (msgid {want})", case.what));
    check_refusal(&e, case.errno, case.reqmsgid);
    let errmsg = e["errmsg"].as_str().expect("errmsg");
    if let Some(name) = case.field {
        assert!(errmsg.ends_with(&format!(": {name}")), "{}: {e}", case.what);
    }
    // The connection still works, and nothing else came with the error.
    c.ping(7);
    c.assert_quiet(Duration::from_millis(20), case.what);
}

fn bad_frames(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    // The offender, logged in, sends everything on one connection.
    let (mut x, idx) = logged_in(addr, "x");
    for (i, case) in answered(idx, ida).iter().enumerate() {
        check_answered(&mut x, case);
        assert_chatting(&mut a, ida, &mut b, idb, &format!("after {}", case.what));
        if i == 0 {
            a.assert_quiet(Duration::from_millis(100), "nothing reaches the others");
        }
    }
    // Deep nesting in an unknown field is skipped without recursion: the ping is answered.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    x.raw(format!(r#"{{"msgid":24,"seq":"deep","skip":{deep}}}"#).as_bytes());
    assert_eq!(x.recv(), serde_json::json!({"msgid": 25, "seq": "deep"}));
    // Still logged in, as the same user.
    assert_chatting(&mut x, idx, &mut a, ida, "offender after all");
    // Before login, the same frames are refused for what they are (parsing comes first).
    let mut y = Client::connect(addr);
    for case in answered(0, ida)
        .iter()
        .filter(|c| c.errno != 5 || c.reqmsgid == Some(1))
    {
        check_answered(&mut y, case);
    }
    a.assert_quiet(Duration::from_millis(100), "no stray frames");
    b.assert_quiet(Duration::from_millis(100), "no stray frames");
}

fn garbage_closes(backend: Backend) {
    const MAX: usize = 4096;
    let server = Server::start(
        &backend,
        &["--threads", "2", "--max-frame", &MAX.to_string()],
    );
    let addr: SocketAddr = server.addr;
    let (mut a, ida) = logged_in(addr, "a");
    let (mut b, idb) = logged_in(addr, "b");
    for case in closing(MAX) {
        for logged in [false, true] {
            let (mut x, _) = if logged {
                logged_in(addr, "x")
            } else {
                (Client::connect(addr), 0)
            };
            // A valid frame first: it is answered before the garbage.
            x.raw(br#"{"msgid":24,"seq":"before"}"#);
            x.raw(&case.bytes);
            assert_eq!(x.recv()["seq"], "before", "{}", case.what);
            let e = x.recv();
            assert_eq!(e["msgid"], 11, "{}: {e}", case.what);
            assert_eq!(e["errno"], case.errno, "{}: {e}", case.what);
            assert!(e.get("reqmsgid").is_none(), "{}: {e}", case.what);
            assert!(
                x.wait_closed(Duration::from_secs(5)),
                "{}: not closed",
                case.what
            );
            assert_chatting(&mut a, ida, &mut b, idb, case.what);
        }
    }
    // A user closed for garbage can log in again at once or soon after.
    let (mut x, idx) = logged_in(addr, "x");
    x.raw(b"\xff");
    x.expect_error(12, None);
    assert!(x.wait_closed(Duration::from_secs(5)));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Client::connect(addr);
        let r = again.login(idx, "pw");
        if r["errno"] == 0 {
            assert_chatting(&mut again, idx, &mut a, ida, "back after garbage");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session never released: {r}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

both_backends!(bad_frames, garbage_closes);
