//! Smoke test of the harness: a server on each backend registers, logs in and chats.

mod common;

use common::client::logged_in;
use common::server::{Backend, Server};
use std::time::Duration;

fn smoke(backend: Backend) {
    let server = Server::start(&backend, &["--threads", "2"]);
    let (mut a, ida) = logged_in(server.addr, "a");
    let (mut b, idb) = logged_in(server.addr, "b");
    a.chat(ida, idb, "hello");
    let got = b
        .wait_for(Duration::from_secs(5), |v| v["msgid"] == 6)
        .expect("delivered");
    assert_eq!(got["msg"], "hello");
    assert_eq!(got["id"], ida);
}

#[test]
fn smoke_sqlite() {
    smoke(Backend::sqlite());
}

#[test]
fn smoke_mysql() {
    if let Some(backend) = Backend::mysql("smoke_mysql") {
        smoke(backend);
    }
}
