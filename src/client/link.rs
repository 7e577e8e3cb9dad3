//! The connection: a reader thread that frames and prints server output, and the sending side
//! used by the input thread, including "send and wait for the matching reply".
//!
//! The reader also keeps the delivery extensions' side of the session (docs/PROTOCOL.md,
//! "Delivery extensions"): it counts the chat frames of the login and acknowledges them once
//! per read, drops copies already shown (by `mid`), answers HEARTBEAT_MSG with a PING_MSG,
//! settles SEND_ACKs, keeps the login's resume token, and, when the connection is lost while
//! logged in, reconnects ([`super::resume`]) and sends the unconfirmed messages again.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::command::encode;
use super::console::Console;
use super::display::{frame_lines, sanitize};
use super::resume;
use super::session::{is_chat, Delivery, Outbox};
use crate::protocol::{build, msgid, Framer};
use std::ops::ControlFlow;

/// Server frames can be large (a long group list); beyond this the stream is not ours.
pub(super) const MAX_FRAME: usize = 16 * 1024 * 1024;

/// What the reader does when the connection ends and the client did not ask for it.
pub const SERVER_CLOSED: &str = "server closed the connection";

/// A request waiting for its reply: `reply` msgid, or ERROR_MSG naming `request`.
struct Wait {
    request: i64,
    reply: i64,
    tx: Sender<Value>,
    /// Closed by the input thread once it has printed the reply, so that later frames are
    /// printed after it, in arrival order.
    printed: Receiver<()>,
}

/// Who is logged in, to log in again after a lost connection.
#[derive(Clone, Debug)]
pub(super) struct Credentials {
    pub(super) id: i64,
    pub(super) password: String,
}

pub(super) struct State {
    waiting: Option<Wait>,
    pings: HashMap<u64, Instant>,
    closing: bool,
    /// PING_MSGs sent to answer heartbeats whose PONG_MSG is not shown.
    heartbeat_pongs: u32,
    pub(super) delivery: Delivery,
    pub(super) outbox: Outbox,
    /// The resume token of the last login ack that carried one.
    pub(super) token: Option<String>,
    /// Set while logged in (by the input thread); what a reconnect logs in with.
    pub(super) session: Option<Credentials>,
}

/// How the link behaves.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Log in with `"acks":true`.
    pub acks: bool,
    /// Reconnect and log in again when the connection is lost while logged in.
    pub reconnect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            acks: true,
            reconnect: true,
        }
    }
}

pub(super) struct Shared {
    pub(super) console: Arc<Console>,
    state: Mutex<State>,
    /// The sending half; replaced by a reconnect. Every write takes it, so frames written by
    /// the reader (acks, heartbeat answers) never interleave with the input thread's.
    writer: Mutex<TcpStream>,
    pub(super) options: Options,
    pub(super) addr: SocketAddr,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn writer(&self) -> MutexGuard<'_, TcpStream> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes one frame (JSON text, a newline added).
    pub(super) fn write(&self, frame: &[u8]) -> io::Result<()> {
        (&*self.writer()).write_all(&encode(frame))
    }

    /// From now on frames go to `stream` (a reconnect).
    pub(super) fn replace_writer(&self, stream: TcpStream) {
        *self.writer() = stream;
    }

    fn closing(&self) -> bool {
        self.state().closing
    }
}

/// A reply handed to the input thread. Frames arriving after it are held back until it is
/// dropped, so print it before dropping it.
pub struct Reply {
    pub frame: Value,
    _printed: Sender<()>,
}

/// Why a request got no reply.
#[derive(Debug)]
pub enum RequestError {
    /// Nothing matching arrived in time.
    Timeout,
    /// The connection is gone.
    Io(io::Error),
}

/// The client's connection to the server.
pub struct Link {
    shared: Arc<Shared>,
}

impl Link {
    /// Takes over a connected stream and starts the reader thread. When the server closes the
    /// connection (and [`Link::close`] was not called), the reader reconnects if a user is
    /// logged in and `options.reconnect` is set; otherwise, or if that fails, it prints
    /// [`SERVER_CLOSED`] and exits the process with status 1.
    pub fn start(stream: TcpStream, console: Arc<Console>, options: Options) -> io::Result<Link> {
        let addr = stream.peer_addr()?;
        let state = State {
            waiting: None,
            pings: HashMap::new(),
            closing: false,
            heartbeat_pongs: 0,
            delivery: Delivery::default(),
            outbox: Outbox::new(rand::random::<u64>()),
            token: None,
            session: None,
        };
        let shared = Arc::new(Shared {
            console,
            state: Mutex::new(state),
            writer: Mutex::new(stream.try_clone()?),
            options,
            addr,
        });
        let for_reader = Arc::clone(&shared);
        thread::Builder::new()
            .name("reader".into())
            .spawn(move || read_loop(stream, &for_reader))?;
        Ok(Link { shared })
    }

    /// Whether logins ask for acknowledged delivery.
    pub fn acks(&self) -> bool {
        self.shared.options.acks
    }

    /// Sends one frame (newline-terminated: see `encode`).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.shared.write(frame) {
            Err(_) if self.may_reconnect() => {
                self.shared
                    .console
                    .line("not sent: the connection is lost (reconnecting)");
                Ok(())
            }
            other => other,
        }
    }

    /// Sends a chat message tagged with a fresh client id: `build` writes it for that cid.
    /// It is kept until the server's SEND_ACK and sent again after a reconnect.
    pub fn send_chat(&self, build: impl FnOnce(&str) -> Vec<u8>) -> io::Result<()> {
        let frame = {
            let mut state = self.shared.state();
            let cid = state.outbox.next_cid();
            let frame = build(&cid);
            state.outbox.sent(cid, frame.clone());
            frame
        };
        match self.shared.write(&frame) {
            Err(_) if self.may_reconnect() => {
                self.shared
                    .console
                    .line("connection lost: the message is sent again once reconnected");
                Ok(())
            }
            other => other,
        }
    }

    fn may_reconnect(&self) -> bool {
        self.shared.options.reconnect && self.shared.state().session.is_some()
    }

    /// Sends a ping tagged `seq`; its pong will show the round-trip time.
    pub fn ping(&self, frame: &[u8], seq: u64) -> io::Result<()> {
        self.shared.state().pings.insert(seq, Instant::now());
        self.send(frame)
    }

    /// The LOGIN_MSG this link sends for `id` (with acks unless turned off).
    pub fn login_frame(&self, id: i64, password: &str) -> Vec<u8> {
        let mut out = Vec::new();
        build::login_ext(&mut out, id, Ok(password), self.shared.options.acks);
        out
    }

    /// The login succeeded: call before dropping its [`Reply`], so that the chat frames
    /// after the ack already count for this session.
    pub fn logged_in(&self, id: i64, password: &str) {
        self.shared.state().session = Some(Credentials {
            id,
            password: password.to_owned(),
        });
    }

    /// About to log out: no reconnect, nothing more to acknowledge.
    pub fn logging_out(&self) {
        let mut state = self.shared.state();
        state.session = None;
        state.token = None;
        state.delivery.ended();
    }

    /// Sends `frame` (msgid `request`) and waits up to `timeout` for msgid `reply`, or for an
    /// ERROR_MSG about `request`. Other frames are printed meanwhile.
    pub fn request(
        &self,
        frame: &[u8],
        request: i64,
        reply: i64,
        timeout: Duration,
    ) -> Result<Reply, RequestError> {
        let (tx, rx) = mpsc::channel();
        let (printed_tx, printed_rx) = mpsc::channel();
        self.shared.state().waiting = Some(Wait {
            request,
            reply,
            tx,
            printed: printed_rx,
        });
        if let Err(e) = self.shared.write(frame) {
            self.shared.state().waiting = None;
            return Err(RequestError::Io(e));
        }
        let got = match rx.recv_timeout(timeout) {
            Ok(v) => Some(v),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                // The reader may have matched it just now: then it is already in the channel.
                let still_waiting = self.shared.state().waiting.take().is_some();
                if still_waiting {
                    None
                } else {
                    rx.recv().ok()
                }
            }
        };
        got.map(|frame| Reply {
            frame,
            _printed: printed_tx,
        })
        .ok_or(RequestError::Timeout)
    }

    /// Ends the connection on purpose: the reader stops without complaining.
    pub fn close(&self) {
        self.shared.state().closing = true;
        let _ = self.shared.writer().shutdown(Shutdown::Both);
    }
}

/// Reads, frames and dispatches until the connection ends; then reconnects or exits.
fn read_loop(mut stream: TcpStream, shared: &Shared) {
    let mut framer = Framer::new(MAX_FRAME);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        read_until_closed(&mut stream, shared, &mut framer, &mut buf);
        if shared.closing() {
            return;
        }
        let session = {
            let mut state = shared.state();
            state.delivery.ended();
            state.session.clone()
        };
        let resumed = match session {
            Some(who) if shared.options.reconnect => resume::reconnect(shared, &who),
            _ => None,
        };
        match resumed {
            Some(next) => {
                stream = next.stream;
                framer = next.framer;
                buf = next.rest;
            }
            None => break,
        }
    }
    if shared.closing() {
        return;
    }
    shared.console.incoming(&[SERVER_CLOSED.to_owned()]);
    std::process::exit(1);
}

/// Handles what `buf` already holds, then reads until end of stream or an error.
fn read_until_closed(
    stream: &mut TcpStream,
    shared: &Shared,
    framer: &mut Framer,
    buf: &mut Vec<u8>,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let drained = framer.drain(buf, |frame| {
            dispatch(shared, frame.bytes);
            ControlFlow::Continue(())
        });
        if let Err(e) = drained {
            // The stream lost sync; drop what we have and hope the next read is clean.
            shared
                .console
                .incoming(&[format!("error: unreadable data from server ({e})")]);
            buf.clear();
        }
        acknowledge(shared);
        let n = match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Once per read: one DELIVERY_ACK_MSG for every chat frame received so far.
fn acknowledge(shared: &Shared) {
    let Some(count) = shared.state().delivery.ack_due() else {
        return;
    };
    let mut out = Vec::new();
    build::delivery_ack(&mut out, count);
    // A failed write means the connection is going: the read will tell.
    let _ = shared.write(&out);
}

/// Hands a frame to the waiting request it answers, or prints it.
pub(super) fn dispatch(shared: &Shared, frame: &[u8]) {
    let value: Value = match serde_json::from_slice(frame) {
        Ok(v) => v,
        Err(e) => {
            let text = sanitize(&String::from_utf8_lossy(frame));
            shared
                .console
                .incoming(&[format!("error: malformed frame from server ({e}): {text}")]);
            return;
        }
    };
    let id = value.get("msgid").and_then(Value::as_i64);
    let mut state = shared.state();
    match id {
        Some(msgid::HEARTBEAT_MSG) => {
            state.heartbeat_pongs += 1;
            drop(state);
            let mut ping = Vec::new();
            build::ping(&mut ping, None);
            let _ = shared.write(&ping);
            return;
        }
        Some(msgid::PONG_MSG) if value.get("seq").is_none() && state.heartbeat_pongs > 0 => {
            state.heartbeat_pongs -= 1;
            return;
        }
        Some(msgid::SEND_ACK) => {
            let cid = value.get("cid").and_then(Value::as_str).unwrap_or_default();
            if !state.outbox.confirmed(cid) {
                return; // a retry's second confirmation
            }
        }
        Some(msgid::LOGIN_MSG_ACK) if value.get("errno").and_then(Value::as_i64) == Some(0) => {
            let acks = value.get("acks").and_then(Value::as_bool) == Some(true);
            state.delivery.logged_in(acks);
            if let Some(token) = value.get("token").and_then(Value::as_str) {
                state.token = Some(token.to_owned());
            }
        }
        _ if is_chat(&value) && !state.delivery.chat(&value) => return,
        _ => {}
    }
    let answers = |w: &Wait| {
        id == Some(w.reply)
            || (id == Some(msgid::ERROR_MSG)
                && value.get("reqmsgid").and_then(Value::as_i64) == Some(w.request))
    };
    if state.waiting.as_ref().is_some_and(answers) {
        if let Some(wait) = state.waiting.take() {
            drop(state);
            if wait.tx.send(value).is_ok() {
                // Returns once the input thread has printed the reply (or gave up on it).
                let _ = wait.printed.recv();
            }
            return;
        }
    }
    let rtt = if id == Some(msgid::PONG_MSG) {
        value
            .get("seq")
            .and_then(Value::as_u64)
            .and_then(|seq| state.pings.remove(&seq))
            .map(|sent| sent.elapsed())
    } else {
        None
    };
    drop(state);
    shared.console.incoming(&frame_lines(&value, rtt));
}
