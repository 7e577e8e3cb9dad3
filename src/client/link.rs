//! The connection: a reader thread that frames and prints server output, and the sending side
//! used by the input thread, including "send and wait for the matching reply".

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::command::encode;
use super::console::Console;
use super::display::{frame_lines, sanitize};
use crate::protocol::{msgid, Framer};
use std::ops::ControlFlow;

/// Server frames can be large (a long group list); beyond this the stream is not ours.
const MAX_FRAME: usize = 16 * 1024 * 1024;

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

#[derive(Default)]
struct State {
    waiting: Option<Wait>,
    pings: HashMap<u64, Instant>,
    closing: bool,
}

struct Shared {
    console: Arc<Console>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl Link {
    /// Takes over a connected stream and starts the reader thread. When the server closes the
    /// connection (and [`Link::close`] was not called), the reader prints [`SERVER_CLOSED`] and
    /// exits the process with status 1.
    pub fn start(stream: TcpStream, console: Arc<Console>) -> io::Result<Link> {
        let shared = Arc::new(Shared {
            console,
            state: Mutex::new(State::default()),
        });
        let reader = stream.try_clone()?;
        let for_reader = Arc::clone(&shared);
        thread::Builder::new()
            .name("reader".into())
            .spawn(move || read_loop(reader, &for_reader))?;
        Ok(Link { stream, shared })
    }

    /// Sends one frame (newline-terminated: see `encode`).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        (&self.stream).write_all(&encode(frame))
    }

    /// Sends a ping tagged `seq`; its pong will show the round-trip time.
    pub fn ping(&self, frame: &[u8], seq: u64) -> io::Result<()> {
        self.shared.state().pings.insert(seq, Instant::now());
        self.send(frame)
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
        if let Err(e) = self.send(frame) {
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
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn read_loop(mut stream: TcpStream, shared: &Shared) {
    let mut framer = Framer::new(MAX_FRAME);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let drained = framer.drain(&mut buf, |frame| {
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
    }
    if shared.state().closing {
        return;
    }
    shared.console.incoming(&[SERVER_CLOSED.to_owned()]);
    std::process::exit(1);
}

/// Hands a frame to the waiting request it answers, or prints it.
fn dispatch(shared: &Shared, frame: &[u8]) {
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
