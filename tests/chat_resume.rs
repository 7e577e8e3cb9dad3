//! Resume tokens over real sockets, on both backends: a modern login's ack carries one, a
//! login with it skips the password, it survives a restart, it is refused when wrong, for
//! another user, expired, or revoked by logout; the seeds' client never gets one. And the
//! password hasher's memory stays bounded through a burst of logins at the default cost.

#[macro_use]
mod common;

use common::client::{unique, Client};
use common::server::{Backend, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn token_of(ack: &Value) -> String {
    assert_eq!(ack["errno"], 0, "{ack}");
    let token = ack["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {ack}"));
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    token.to_owned()
}

fn token_login(c: &mut Client, id: i64, token: &str) -> Value {
    c.request(json!({"msgid": 1, "id": id, "token": token}), 2)
}

/// Logs in with the token, retrying while the previous session is still being released.
fn token_login_when_free(addr: std::net::SocketAddr, id: i64, token: &str) -> (Client, Value) {
    for _ in 0..250 {
        let mut c = Client::connect(addr);
        let ack = token_login(&mut c, id, token);
        if ack["errno"] != 2 {
            return (c, ack);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("session of {id} never released");
}

fn tokens_resume_sessions(backend: Backend) {
    let mut server = Server::start(&backend, &["--threads", "2"]);
    let addr = server.addr;
    let mut a = Client::connect(addr);
    let ida = a.register(&unique("tok"), "pw");
    let token = token_of(&a.login(ida, "pw"));
    let mut b = Client::connect(addr);
    let idb = b.register(&unique("tok"), "pw");
    let other = token_of(&b.login(idb, "pw"));
    assert_ne!(token, other);

    // The connection drops (no logout): the token brings the session back, with what was
    // stored for it meanwhile, and the ack names the token again.
    assert_eq!(b.add_friend(idb, ida)["msgid"], 13);
    drop(a);
    // Sent before the server saw the close, the message would be written into the dead
    // socket: delivered, by the rule for clients that do not acknowledge. Wait for the close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = b.request(json!({"msgid": 16, "id": idb}), 17);
        if list["friends"][0]["state"] == "offline" {
            break;
        }
        assert!(Instant::now() < deadline, "the session never ended: {list}");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.chat(idb, ida, "while away");
    let (mut a, ack) = token_login_when_free(addr, ida, &token);
    assert_eq!(ack["errno"], 0, "{ack}");
    assert_eq!(ack["token"], token.as_str());
    let offline = ack["offlinemsg"].as_array().expect("offline message");
    assert!(offline[0].as_str().unwrap().contains("while away"), "{ack}");
    a.chat(ida, idb, "back");
    b.recv_chat("back");

    // Refused alike: another user's token, a wrong one, a malformed one (a format error).
    drop(a);
    let (mut c, ack) = token_login_when_free(addr, ida, &other);
    assert_eq!(ack["errno"], 1, "someone else's token: {ack}");
    let wrong = "0".repeat(64);
    assert_eq!(token_login(&mut c, ida, &wrong)["errno"], 1);
    assert_ne!(token_login(&mut c, ida, "abc")["errno"], 0);

    // A restart keeps it: it is in the database, not in the process.
    drop(c);
    drop(b);
    assert_eq!(server.stop(), Some(0), "{}", server.log());
    drop(server);
    let server = Server::start(&backend, &["--threads", "2"]);
    let (mut a, ack) = token_login_when_free(server.addr, ida, &token);
    assert_eq!(ack["errno"], 0, "after a restart: {ack}");

    // Logout revokes it; the password still works and brings a new one.
    let r = a.request(json!({"msgid": 3, "id": ida}), 12);
    assert_eq!(r["errno"], 0, "{r}");
    assert_eq!(token_login(&mut a, ida, &token)["errno"], 1, "revoked");
    let fresh = token_of(&a.login(ida, "pw"));
    assert_ne!(fresh, token);
}

fn tokens_expire_and_can_be_off(backend: Backend) {
    let server = Server::start(&backend, &["--resume-token-ttl-secs", "1"]);
    let mut a = Client::connect(server.addr);
    let ida = a.register(&unique("ttl"), "pw");
    let token = token_of(&a.login(ida, "pw"));
    drop(a);
    std::thread::sleep(Duration::from_millis(2100));
    let (_, ack) = token_login_when_free(server.addr, ida, &token);
    assert_eq!(ack["errno"], 1, "expired: {ack}");
    drop(server);

    let server = Server::start(&backend, &["--resume-token-ttl-secs", "0"]);
    let mut a = Client::connect(server.addr);
    let ack = a.login(ida, "pw");
    assert_eq!(ack["errno"], 0, "{ack}");
    assert!(ack.get("token").is_none(), "tokens off: {ack}");
}

fn seeds_dialect_gets_no_token(backend: Backend) {
    let server = Server::start(&backend, &[]);
    let id = Client::connect(server.addr).register(&unique("seed"), "pw");
    // Ended by a NUL, as the seeds' client ends every request: that dialect.
    let mut seeds = Client::connect(server.addr);
    let login = format!("{{\"msgid\":1,\"id\":{id},\"password\":\"pw\"}}\0");
    let ack = seeds.raw_request(login.as_bytes());
    assert_eq!(ack["errno"], 0, "{ack}");
    assert!(
        ack.get("token").is_none(),
        "the seeds' client has no use for one: {ack}"
    );
}

both_backends!(
    tokens_resume_sessions,
    tokens_expire_and_can_be_off,
    seeds_dialect_gets_no_token
);

/// Logins at the default argon2 cost (19 MiB each): the hasher reuses each store worker's
/// memory, so the server's RSS after 150 of them stays within workers × m_cost + 16 MiB of
/// what it was after the first (it used to keep hundreds of MiB for good).
#[test]
fn password_hashing_memory_is_bounded() {
    const WORKERS: u64 = 2;
    const M_COST_KIB: u64 = 19456;
    let server = Server::start(
        &Backend::sqlite(),
        &[
            "--store-workers",
            "2",
            "--argon2-m-cost-kib",
            "19456",
            "--argon2-t-cost",
            "2",
            "--argon2-p-cost",
            "1",
        ],
    );
    let mut c = Client::connect(server.addr);
    let id = c.register(&unique("mem"), "pw");
    let base = server.rss_kib();
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let mut c = Client::connect(addr);
                    // Wrong passwords cost the same hash and need no session release.
                    let ack = c.login(id, "not the password");
                    assert_eq!(ack["errno"], 1, "{ack}");
                }
            })
        })
        .collect();
    for t in logins {
        t.join().expect("login thread");
    }
    let after = server.rss_kib();
    let bound = base + WORKERS * M_COST_KIB + 16 * 1024;
    assert!(
        after <= bound,
        "RSS {after} KiB after 160 hashes, base {base} KiB, bound {bound} KiB"
    );
    eprintln!("RSS base {base} KiB, after 160 default-cost hashes {after} KiB");
}
