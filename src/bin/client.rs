//! The interactive chat client: `client [--no-acks] [--no-reconnect] [IP PORT | IP:PORT]`
//! (default 127.0.0.1 6000).
//!
//! The seeds' menus (login / register / quit, then the chat commands), with a reader thread
//! that prints server frames as they arrive. Works from a pipe: at end of input it logs out,
//! waits briefly for pending frames, and exits 0.
//!
//! It uses the delivery extensions (docs/PROTOCOL.md): logs in with acks (unless
//! `--no-acks`), acknowledges and deduplicates what it shows, tags each chat message with a
//! client id and shows its SEND_ACK, answers heartbeats, and reconnects when the connection is
//! lost while logged in (resume token first, then the password; unless `--no-reconnect`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chatserver::client::addr::parse_target;
use chatserver::client::clock::now_utc;
use chatserver::client::command::{help_lines, parse_command, register_request, Command, Me};
use chatserver::client::console::Console;
use chatserver::client::display::{login_lines, refusal};
use chatserver::client::link::{Link, Options, RequestError, SERVER_CLOSED};
use chatserver::protocol::msgid;

const USAGE: &str =
    "usage: client [--no-acks] [--no-reconnect] [IP PORT | IP:PORT]   (default 127.0.0.1 6000)
  --no-acks       log in without acknowledged delivery (offline messages come in the login reply)
  --no-reconnect  exit when the connection is lost instead of logging in again";
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// LOGINOUT_ACK is ours, the seeds' server sends nothing: do not wait long for it.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(1);
/// At end of input: how long pending frames may take to arrive and print.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(300);

const MENU: [&str; 5] = [
    "========================",
    "1. login",
    "2. register",
    "3. quit",
    "========================",
];

/// Lines of stdin, read as bytes so that invalid UTF-8 cannot stop the client.
struct Input {
    stdin: io::StdinLock<'static>,
    console: Arc<Console>,
}

impl Input {
    /// The next line without its line ending; `None` at end of input (or on a read error).
    fn line(&mut self, prompt: &str) -> Option<String> {
        self.console.prompt(prompt);
        let mut bytes = Vec::new();
        let read = self.stdin.read_until(b'\n', &mut bytes);
        self.console.input_done();
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                    bytes.pop();
                }
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }
}

/// How a menu step ended.
enum Flow {
    Continue,
    /// End of input: leave cleanly (status 0).
    Eof,
}

struct Client {
    link: Link,
    console: Arc<Console>,
    input: Input,
    ping_seq: u64,
}

fn main() -> ExitCode {
    let ((host, port), options) = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            complain(&format!("{e}\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    let stream = match TcpStream::connect((host.as_str(), port)) {
        Ok(s) => s,
        Err(e) => {
            complain(&format!("cannot connect to {host}:{port}: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let _ = stream.set_nodelay(true);
    let console = Arc::new(Console::new(io::stdin().is_terminal()));
    let link = match Link::start(stream, Arc::clone(&console), options) {
        Ok(link) => link,
        Err(e) => {
            complain(&format!("cannot start the reader thread: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let input = Input {
        stdin: io::stdin().lock(),
        console: Arc::clone(&console),
    };
    let mut client = Client {
        link,
        console,
        input,
        ping_seq: 0,
    };
    client.main_menu()
}

/// Reports a fatal problem on stderr (never panics, unlike `eprintln!`).
fn complain(msg: &str) {
    let _ = writeln!(io::stderr(), "client: {msg}");
}

/// Where to connect: host and port.
type Target = (String, u16);

/// The target and the link's options; `Ok(None)` when help was asked for.
fn parse_args() -> Result<Option<(Target, Options)>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut positional = Vec::new();
    let mut options = Options::default();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("no-acks") => options.acks = false,
            Long("no-reconnect") => options.reconnect = false,
            Value(v) => positional.push(
                v.into_string()
                    .map_err(|v| format!("invalid argument {v:?}"))?,
            ),
            other => return Err(other.unexpected().to_string()),
        }
    }
    parse_target(&positional).map(|target| Some((target, options)))
}

impl Client {
    fn main_menu(&mut self) -> ExitCode {
        loop {
            self.console
                .lines(&MENU.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            let Some(choice) = self.input.line("choice:") else {
                return self.leave();
            };
            let flow = match choice.trim() {
                "1" | "login" => self.login(),
                "2" | "register" => self.register(),
                "3" | "quit" => return self.leave(),
                "" => Flow::Continue,
                _ => {
                    self.console.line("invalid input!");
                    Flow::Continue
                }
            };
            if let Flow::Eof = flow {
                return self.leave();
            }
        }
    }

    /// Prints why a request got no answer; exits if the connection is gone.
    fn no_reply(&self, err: RequestError, what: &str) {
        match err {
            RequestError::Timeout => self.console.line(format!(
                "no {what} reply from the server within {} s",
                REPLY_TIMEOUT.as_secs()
            )),
            RequestError::Io(_) => {
                self.console.line(SERVER_CLOSED);
                std::process::exit(1);
            }
        }
    }

    fn register(&mut self) -> Flow {
        let Some(name) = self.input.line("username:") else {
            return Flow::Eof;
        };
        let Some(password) = self.input.line("userpassword:") else {
            return Flow::Eof;
        };
        let frame = register_request(&name, &password);
        match self
            .link
            .request(&frame, msgid::REG_MSG, msgid::REG_MSG_ACK, REPLY_TIMEOUT)
        {
            Ok(reply) => match refusal(&reply.frame) {
                None => {
                    let id = reply.frame.get("id").cloned().unwrap_or_default();
                    self.console.line(format!(
                        "name register success, userid is {id}, do not forget it!"
                    ));
                }
                Some(err) => self.console.line(format!("name register error: {err}")),
            },
            Err(e) => self.no_reply(e, "register"),
        }
        Flow::Continue
    }

    fn login(&mut self) -> Flow {
        let Some(id_text) = self.input.line("userid:") else {
            return Flow::Eof;
        };
        let Ok(id) = id_text.trim().parse::<i64>() else {
            self.console.line("invalid userid: it must be a number");
            return Flow::Continue;
        };
        let Some(password) = self.input.line("userpassword:") else {
            return Flow::Eof;
        };
        let frame = self.link.login_frame(id, &password);
        let me = match self.link.request(
            &frame,
            msgid::LOGIN_MSG,
            msgid::LOGIN_MSG_ACK,
            REPLY_TIMEOUT,
        ) {
            Ok(reply) => match refusal(&reply.frame) {
                None => {
                    self.console.lines(&login_lines(&reply.frame));
                    // Before the reply is dropped: the frames after it belong to this login.
                    self.link.logged_in(id, &password);
                    Me {
                        id: reply.frame.get("id").and_then(|v| v.as_i64()).unwrap_or(id),
                        name: reply
                            .frame
                            .get("name")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_owned(),
                    }
                }
                Some(err) => {
                    self.console.line(format!("login error: {err}"));
                    return Flow::Continue;
                }
            },
            Err(e) => {
                self.no_reply(e, "login");
                return Flow::Continue;
            }
        };
        self.chat(&me)
    }

    /// The chat menu, until `loginout` (back to the main menu) or end of input.
    fn chat(&mut self, me: &Me) -> Flow {
        self.console.line("type help to list the commands");
        loop {
            let Some(line) = self.input.line("> ") else {
                // End of input while logged in: log out, letting pending frames print.
                if let Some(frame) = Command::Loginout.request(me, "", 0) {
                    self.logout(&frame, DRAIN_TIMEOUT);
                }
                return Flow::Eof;
            };
            if line.trim().is_empty() {
                continue;
            }
            let cmd = match parse_command(&line) {
                Ok(cmd) => cmd,
                Err(e) => {
                    self.console.line(format!("invalid command: {e}"));
                    continue;
                }
            };
            self.ping_seq += 1;
            let time = now_utc();
            let seq = self.ping_seq;
            if cmd.is_chat() {
                let sent = self.link.send_chat(|cid| {
                    cmd.request_with_cid(me, &time, seq, Some(cid))
                        .unwrap_or_default()
                });
                if sent.is_err() {
                    self.console.line(SERVER_CLOSED);
                    std::process::exit(1);
                }
                continue;
            }
            let Some(frame) = cmd.request(me, &time, seq) else {
                self.console.lines(&help_lines());
                continue;
            };
            let sent = match cmd {
                Command::Loginout => {
                    self.logout(&frame, LOGOUT_TIMEOUT);
                    return Flow::Continue;
                }
                Command::Ping => self.link.ping(&frame, self.ping_seq),
                _ => self.link.send(&frame),
            };
            if sent.is_err() {
                self.console.line(SERVER_CLOSED);
                std::process::exit(1);
            }
        }
    }

    /// Sends LOGINOUT_MSG and waits up to `timeout` for its ack (frames before it print).
    fn logout(&self, frame: &[u8], timeout: Duration) {
        self.link.logging_out();
        match self
            .link
            .request(frame, msgid::LOGINOUT_MSG, msgid::LOGINOUT_ACK, timeout)
        {
            Ok(reply) => match refusal(&reply.frame) {
                None => self.console.line("logged out"),
                Some(err) => self.console.line(format!("loginout error: {err}")),
            },
            // The seeds' server does not answer LOGINOUT_MSG at all.
            Err(RequestError::Timeout) => {}
            Err(RequestError::Io(_)) => {
                self.console.line(SERVER_CLOSED);
                std::process::exit(1);
            }
        }
    }

    /// Leaves for good (quit or end of input).
    fn leave(&self) -> ExitCode {
        self.link.close();
        ExitCode::SUCCESS
    }
}
