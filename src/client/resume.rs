//! Reconnecting after a lost connection: log in again with the resume token (else the password), then send the unconfirmed messages again.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::command::encode;
use super::link::{dispatch, Credentials, Shared, MAX_FRAME};
use crate::protocol::{build, msgid, Framer};

/// Waits before each attempt: about 7 s in all, then the client gives up.
const BACKOFF_MS: [u64; 5] = [100, 300, 1000, 2000, 4000];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit on the login reply of a reconnect.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The seeds' errno 1 of LOGIN_MSG_ACK: id or password invalid; no point in trying again.
const LOGIN_INVALID: i64 = 1;

/// A new connection, logged in; `rest` holds what arrived after the login ack.
pub(super) struct Resumed {
    pub(super) stream: TcpStream,
    pub(super) framer: Framer,
    pub(super) rest: Vec<u8>,
}

enum Failure {
    Retry(String),
    GiveUp(String),
}

fn retry(e: io::Error) -> Failure {
    Failure::Retry(e.to_string())
}

/// Tries to reconnect `who` a few times; `None` when it gave up.
pub(super) fn reconnect(shared: &Shared, who: &Credentials) -> Option<Resumed> {
    note(shared, "connection lost: reconnecting".to_owned());
    for wait in BACKOFF_MS {
        thread::sleep(Duration::from_millis(wait));
        // Logged out (or quitting) meanwhile: nothing to resume.
        shared.state().session.as_ref()?;
        match attempt(shared, who) {
            Ok(resumed) => return Some(resumed),
            Err(Failure::Retry(why)) => note(shared, format!("reconnect failed: {why}")),
            Err(Failure::GiveUp(why)) => {
                note(shared, format!("reconnect failed: {why}"));
                return None;
            }
        }
    }
    None
}

fn note(shared: &Shared, line: String) {
    shared.console.incoming(&[line]);
}

/// One attempt: connect, log in (token first), resend what the server did not confirm.
fn attempt(shared: &Shared, who: &Credentials) -> Result<Resumed, Failure> {
    let mut stream = TcpStream::connect_timeout(&shared.addr, CONNECT_TIMEOUT).map_err(retry)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(retry)?;
    let mut framer = Framer::new(MAX_FRAME);
    let mut buf = Vec::new();
    let acks = shared.options.acks;
    let token = shared.state().token.clone();
    let mut ack = None;
    let mut how = "with its resume token";
    if let Some(token) = token {
        let mut login = Vec::new();
        build::login_ext(&mut login, who.id, Err(&token), acks);
        let reply = login_reply(shared, &mut stream, &login, &mut framer, &mut buf)?;
        if errno(&reply) == 0 {
            ack = Some(reply);
        } else {
            note(
                shared,
                format!(
                    "resume token refused ({}): using the password",
                    errmsg(&reply)
                ),
            );
            shared.state().token = None;
        }
    }
    let ack = match ack {
        Some(ack) => ack,
        None => {
            how = "with the password";
            let mut login = Vec::new();
            build::login_ext(&mut login, who.id, Ok(&who.password), acks);
            let reply = login_reply(shared, &mut stream, &login, &mut framer, &mut buf)?;
            match errno(&reply) {
                0 => reply,
                LOGIN_INVALID => return Err(Failure::GiveUp(errmsg(&reply))),
                _ => return Err(Failure::Retry(errmsg(&reply))),
            }
        }
    };
    stream.set_read_timeout(None).map_err(retry)?;
    shared.replace_writer(stream.try_clone().map_err(retry)?);
    let resend = {
        let mut state = shared.state();
        let acking = ack.get("acks").and_then(Value::as_bool) == Some(true);
        state.delivery.logged_in(acking);
        if let Some(token) = ack.get("token").and_then(Value::as_str) {
            state.token = Some(token.to_owned());
        }
        state.outbox.unconfirmed()
    };
    let again = if resend.is_empty() {
        String::new()
    } else {
        format!("; {} unconfirmed message(s) sent again", resend.len())
    };
    note(shared, format!("reconnected as {} {how}{again}", who.id));
    // Stored messages inside the ack (a login without acks): shown like any other.
    for entry in ack
        .get("offlinemsg")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(text) = entry.as_str() {
            dispatch(shared, text.as_bytes());
        }
    }
    for frame in resend {
        // The same cid: a server that saw it already answers with its first mid.
        shared.write(&frame).map_err(retry)?;
    }
    Ok(Resumed {
        stream,
        framer,
        rest: buf,
    })
}

/// Sends `login` and reads until its LOGIN_MSG_ACK (any frame before it is dispatched).
fn login_reply(
    shared: &Shared,
    stream: &mut TcpStream,
    login: &[u8],
    framer: &mut Framer,
    buf: &mut Vec<u8>,
) -> Result<Value, Failure> {
    stream.write_all(&encode(login)).map_err(retry)?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut ack = None;
        framer
            .drain(buf, |frame| {
                match serde_json::from_slice::<Value>(frame.bytes) {
                    Ok(v)
                        if v.get("msgid").and_then(Value::as_i64) == Some(msgid::LOGIN_MSG_ACK) =>
                    {
                        ack = Some(v);
                        return ControlFlow::Break(());
                    }
                    _ => dispatch(shared, frame.bytes),
                }
                ControlFlow::Continue(())
            })
            .map_err(|e| Failure::Retry(e.to_string()))?;
        if let Some(ack) = ack {
            return Ok(ack);
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(Failure::Retry("the server closed the connection".into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(retry(e)),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn errno(reply: &Value) -> i64 {
    reply.get("errno").and_then(Value::as_i64).unwrap_or(-1)
}

fn errmsg(reply: &Value) -> String {
    let text = reply
        .get("errmsg")
        .and_then(Value::as_str)
        .unwrap_or("login refused");
    super::display::sanitize(text)
}
