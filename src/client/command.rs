//! Chat-menu commands: parsing a typed line, and the request each one sends.

use std::fmt;

use crate::protocol::build;

/// One line typed at the chat menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Chat { toid: i64, msg: String },
    AddFriend { friendid: i64 },
    CreateGroup { name: String, desc: String },
    AddGroup { groupid: i64 },
    GroupChat { groupid: i64, msg: String },
    Loginout,
    Friends,
    Groups,
    LeaveGroup { groupid: i64 },
    DelFriend { friendid: i64 },
    Ping,
}

/// Why a typed line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Unknown(String),
    /// The command needs arguments (shown as its usage).
    Usage(&'static str),
    /// A command without arguments was given some.
    NoArguments(&'static str),
    BadId(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Unknown(name) => {
                write!(f, "unknown command {name:?} (type help for the list)")
            }
            CommandError::Usage(usage) => write!(f, "usage: {usage}"),
            CommandError::NoArguments(name) => write!(f, "{name} takes no arguments"),
            CommandError::BadId(text) => write!(f, "{text:?} is not a number"),
        }
    }
}

/// The logged-in user, as outgoing chat messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub id: i64,
    pub name: String,
}

/// (usage, description) of every command, in the order `help` lists them.
pub const COMMANDS: [(&str, &str); 12] = [
    ("help", "show this command list"),
    ("chat:friendid:message", "send a message to a user"),
    ("addfriend:friendid", "add a user to your friend list"),
    (
        "creategroup:groupname:groupdesc",
        "create a group (you become its creator)",
    ),
    ("addgroup:groupid", "join a group"),
    (
        "groupchat:groupid:message",
        "send a message to every member of a group",
    ),
    ("friends", "list your friends with their online state"),
    ("groups", "list your groups and their members"),
    ("leavegroup:groupid", "leave a group"),
    ("delfriend:friendid", "remove a user from your friend list"),
    ("ping", "measure the round-trip time to the server"),
    ("loginout", "log out and return to the main menu"),
];

/// The `help` text, one line per command.
pub fn help_lines() -> Vec<String> {
    let width = COMMANDS.iter().map(|(u, _)| u.len()).max().unwrap_or(0);
    let mut lines: Vec<String> = COMMANDS
        .iter()
        .map(|(usage, what)| format!("{usage:<width$}  {what}"))
        .collect();
    lines.push("(message times are sent in UTC)".to_owned());
    lines
}

fn id(text: &str) -> Result<i64, CommandError> {
    let text = text.trim();
    text.parse()
        .map_err(|_| CommandError::BadId(text.to_owned()))
}

/// Splits `rest` into an id and the text after the next ':' (which may itself contain ':').
fn id_and_text(rest: Option<&str>, usage: &'static str) -> Result<(i64, String), CommandError> {
    let (num, text) = rest
        .and_then(|r| r.split_once(':'))
        .ok_or(CommandError::Usage(usage))?;
    Ok((id(num)?, text.to_owned()))
}

fn one_id(rest: Option<&str>, usage: &'static str) -> Result<i64, CommandError> {
    match rest {
        Some(r) if !r.trim().is_empty() => id(r),
        _ => Err(CommandError::Usage(usage)),
    }
}

/// Parses one chat-menu line. Only as many ':' as the command needs are split on.
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let line = line.trim_start();
    let (name, rest) = match line.split_once(':') {
        Some((name, rest)) => (name.trim(), Some(rest)),
        None => (line.trim_end(), None),
    };
    let bare = |cmd: Command, name: &'static str| match rest {
        None => Ok(cmd),
        Some(_) => Err(CommandError::NoArguments(name)),
    };
    match name {
        "help" => bare(Command::Help, "help"),
        "loginout" => bare(Command::Loginout, "loginout"),
        "friends" => bare(Command::Friends, "friends"),
        "groups" => bare(Command::Groups, "groups"),
        "ping" => bare(Command::Ping, "ping"),
        "chat" => {
            let (toid, msg) = id_and_text(rest, COMMANDS[1].0)?;
            Ok(Command::Chat { toid, msg })
        }
        "groupchat" => {
            let (groupid, msg) = id_and_text(rest, COMMANDS[5].0)?;
            Ok(Command::GroupChat { groupid, msg })
        }
        "addfriend" => Ok(Command::AddFriend {
            friendid: one_id(rest, COMMANDS[2].0)?,
        }),
        "addgroup" => Ok(Command::AddGroup {
            groupid: one_id(rest, COMMANDS[4].0)?,
        }),
        "leavegroup" => Ok(Command::LeaveGroup {
            groupid: one_id(rest, COMMANDS[8].0)?,
        }),
        "delfriend" => Ok(Command::DelFriend {
            friendid: one_id(rest, COMMANDS[9].0)?,
        }),
        "creategroup" => {
            let rest = rest.unwrap_or("");
            let (name, desc) = rest.split_once(':').unwrap_or((rest, ""));
            if name.trim().is_empty() {
                return Err(CommandError::Usage(COMMANDS[3].0));
            }
            Ok(Command::CreateGroup {
                name: name.to_owned(),
                desc: desc.to_owned(),
            })
        }
        other => Err(CommandError::Unknown(other.to_owned())),
    }
}

impl Command {
    /// The JSON text of the request this command sends, or `None` for `help` (handled
    /// locally). `time` stamps chat messages; `seq` tags a ping.
    pub fn request(&self, me: &Me, time: &str, seq: u64) -> Option<Vec<u8>> {
        self.request_with_cid(me, time, seq, None)
    }

    /// Whether this command sends a chat message (which may carry a client id).
    pub fn is_chat(&self) -> bool {
        matches!(self, Command::Chat { .. } | Command::GroupChat { .. })
    }

    /// As [`Command::request`]; a chat message carries `cid` when one is given.
    pub fn request_with_cid(
        &self,
        me: &Me,
        time: &str,
        seq: u64,
        cid: Option<&str>,
    ) -> Option<Vec<u8>> {
        let id = me.id;
        let mut out = Vec::new();
        match (self, cid) {
            (Command::Help, _) => return None,
            (Command::Chat { toid, msg }, Some(cid)) => {
                build::one_chat_cid(&mut out, (id, &me.name), *toid, msg, time, cid)
            }
            (Command::Chat { toid, msg }, None) => {
                build::one_chat(&mut out, id, &me.name, *toid, msg, time)
            }
            (Command::GroupChat { groupid, msg }, Some(cid)) => {
                build::group_chat_cid(&mut out, (id, &me.name), *groupid, msg, time, cid)
            }
            (Command::GroupChat { groupid, msg }, None) => {
                build::group_chat(&mut out, id, &me.name, *groupid, msg, time)
            }
            (Command::AddFriend { friendid }, _) => build::add_friend(&mut out, id, *friendid),
            (Command::CreateGroup { name, desc }, _) => {
                build::create_group(&mut out, id, name, desc)
            }
            (Command::AddGroup { groupid }, _) => build::join_group(&mut out, id, *groupid),
            (Command::Loginout, _) => build::logout(&mut out, id),
            (Command::Friends, _) => build::friend_list(&mut out, id),
            (Command::Groups, _) => build::group_list(&mut out, id),
            (Command::LeaveGroup { groupid }, _) => build::leave_group(&mut out, id, *groupid),
            (Command::DelFriend { friendid }, _) => build::remove_friend(&mut out, id, *friendid),
            (Command::Ping, _) => build::ping(&mut out, Some(seq)),
        }
        Some(out)
    }
}

/// LOGIN_MSG.
pub fn login_request(id: i64, password: &str) -> Vec<u8> {
    let mut out = Vec::new();
    build::login(&mut out, id, password);
    out
}

/// REG_MSG.
pub fn register_request(name: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::new();
    build::register(&mut out, name, password);
    out
}

/// A frame as a modern client sends it: the JSON text and a newline. (The seeds' client ends
/// its frames with a NUL, which tells the server to write to it one frame per read; this
/// client frames what it reads itself, so it takes the server's coalesced writes.)
pub fn encode(json: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(json.len() + 1);
    bytes.extend_from_slice(json);
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn me() -> Me {
        Me {
            id: 13,
            name: "zhang san".into(),
        }
    }

    #[test]
    fn chat_keeps_colons_in_the_message() {
        assert_eq!(
            parse_command("chat:15:hi: there:)"),
            Ok(Command::Chat {
                toid: 15,
                msg: "hi: there:)".into()
            })
        );
        assert_eq!(
            parse_command("groupchat: 2 :a:b"),
            Ok(Command::GroupChat {
                groupid: 2,
                msg: "a:b".into()
            })
        );
        assert_eq!(
            parse_command("chat:15:"),
            Ok(Command::Chat {
                toid: 15,
                msg: String::new()
            })
        );
    }

    #[test]
    fn bare_commands() {
        assert_eq!(parse_command("help"), Ok(Command::Help));
        assert_eq!(parse_command("  loginout "), Ok(Command::Loginout));
        assert_eq!(parse_command("friends"), Ok(Command::Friends));
        assert_eq!(parse_command("groups"), Ok(Command::Groups));
        assert_eq!(parse_command("ping"), Ok(Command::Ping));
        assert_eq!(
            parse_command("ping:3"),
            Err(CommandError::NoArguments("ping"))
        );
    }

    #[test]
    fn id_commands() {
        assert_eq!(
            parse_command("addfriend:15"),
            Ok(Command::AddFriend { friendid: 15 })
        );
        assert_eq!(
            parse_command("addgroup:2"),
            Ok(Command::AddGroup { groupid: 2 })
        );
        assert_eq!(
            parse_command("leavegroup:2"),
            Ok(Command::LeaveGroup { groupid: 2 })
        );
        assert_eq!(
            parse_command("delfriend: 15"),
            Ok(Command::DelFriend { friendid: 15 })
        );
        assert_eq!(
            parse_command("addfriend:x"),
            Err(CommandError::BadId("x".into()))
        );
        assert_eq!(
            parse_command("addfriend:15:16"),
            Err(CommandError::BadId("15:16".into()))
        );
        assert!(matches!(
            parse_command("addfriend"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            parse_command("chat:15"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            parse_command("chat:99999999999999999999:x"),
            Err(CommandError::BadId(_))
        ));
    }

    #[test]
    fn creategroup_desc_is_optional_and_may_hold_colons() {
        assert_eq!(
            parse_command("creategroup:rust:crabs: all of them"),
            Ok(Command::CreateGroup {
                name: "rust".into(),
                desc: "crabs: all of them".into()
            })
        );
        assert_eq!(
            parse_command("creategroup:rust"),
            Ok(Command::CreateGroup {
                name: "rust".into(),
                desc: String::new()
            })
        );
        assert!(matches!(
            parse_command("creategroup::x"),
            Err(CommandError::Usage(_))
        ));
    }

    #[test]
    fn unknown_and_empty() {
        assert!(matches!(
            parse_command("dance:1"),
            Err(CommandError::Unknown(_))
        ));
        assert!(matches!(parse_command(""), Err(CommandError::Unknown(_))));
        assert!(!parse_command("x").unwrap_err().to_string().is_empty());
    }

    fn value(bytes: Option<Vec<u8>>) -> Option<Value> {
        bytes.map(|b| serde_json::from_slice(&b).expect("requests are JSON"))
    }

    #[test]
    fn requests_carry_the_fields() {
        let t = "2024-05-01 10:00:00";
        let chat = value(parse_command("chat:15:hello").unwrap().request(&me(), t, 0)).unwrap();
        assert_eq!(
            chat,
            json!({"msgid":6,"id":13,"name":"zhang san","toid":15,"msg":"hello","time":t})
        );
        let gc = value(
            parse_command("groupchat:2:hi all")
                .unwrap()
                .request(&me(), t, 0),
        )
        .unwrap();
        assert_eq!(
            gc,
            json!({"msgid":10,"id":13,"name":"zhang san","groupid":2,"msg":"hi all","time":t})
        );
        let cases = [
            ("addfriend:15", json!({"msgid":7,"id":13,"friendid":15})),
            (
                "creategroup:rust:crabs",
                json!({"msgid":8,"id":13,"groupname":"rust","groupdesc":"crabs"}),
            ),
            ("addgroup:2", json!({"msgid":9,"id":13,"groupid":2})),
            ("loginout", json!({"msgid":3,"id":13})),
            ("friends", json!({"msgid":16,"id":13})),
            ("groups", json!({"msgid":18,"id":13})),
            ("leavegroup:2", json!({"msgid":20,"id":13,"groupid":2})),
            ("delfriend:15", json!({"msgid":22,"id":13,"friendid":15})),
            ("ping", json!({"msgid":24,"seq":7})),
        ];
        for (line, want) in cases {
            let got = value(parse_command(line).unwrap().request(&me(), t, 7));
            assert_eq!(got, Some(want), "{line}");
        }
        assert_eq!(Command::Help.request(&me(), t, 0), None);
        let tagged = parse_command("chat:15:hi").unwrap();
        assert!(tagged.is_chat());
        let with_cid = value(tagged.request_with_cid(&me(), t, 0, Some("c-1"))).unwrap();
        assert_eq!(
            with_cid,
            json!({"msgid":6,"id":13,"name":"zhang san","toid":15,"msg":"hi","time":t,"cid":"c-1"})
        );
        let group = parse_command("groupchat:2:yo").unwrap();
        let with_cid = value(group.request_with_cid(&me(), t, 0, Some("c-2"))).unwrap();
        assert_eq!(with_cid["cid"], "c-2");
        assert_eq!(with_cid["groupid"], 2);
        assert!(!Command::Ping.is_chat());
    }

    #[test]
    fn menu_requests_and_encoding() {
        assert_eq!(
            value(Some(login_request(13, "pw"))),
            Some(json!({"msgid":1,"id":13,"password":"pw"}))
        );
        assert_eq!(
            value(Some(register_request("li si", "pw"))),
            Some(json!({"msgid":4,"name":"li si","password":"pw"}))
        );
        let bytes = encode(b"{\"msgid\":24}");
        assert_eq!(bytes, b"{\"msgid\":24}\n");
    }

    #[test]
    fn help_lists_every_command() {
        let help = help_lines();
        for (usage, _) in COMMANDS {
            assert!(help.iter().any(|l| l.starts_with(usage)), "{usage}");
        }
    }
}
