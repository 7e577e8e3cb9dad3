//! Turning server frames into display lines. Everything here tolerates missing or mistyped
//! fields (other clients write the chat frames), and control characters in peer-supplied text
//! are escaped so nobody can drive the reader's terminal.

use std::time::Duration;

use serde_json::Value;

use crate::protocol::msgid;

/// Text made safe to print: control characters (ESC, CR, newlines, C1…) are escaped.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A field as display text: strings sanitized, other scalars as JSON, absent as "?".
fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => sanitize(s),
        Some(Value::Null) | None => "?".to_owned(),
        Some(other @ (Value::Array(_) | Value::Object(_))) => sanitize(&other.to_string()),
        Some(other) => other.to_string(),
    }
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// An entry of a login-ack list: the seeds' JSON *text* of an object, or (leniently) the object.
pub fn decode_entry(entry: &Value) -> Option<Value> {
    match entry {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object),
        Value::Object(_) => Some(entry.clone()),
        _ => None,
    }
}

fn entries(v: &Value, key: &str) -> Vec<Option<Value>> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(decode_entry).collect())
        .unwrap_or_default()
}

/// One friend: "id name state".
fn friend_line(f: &Value) -> String {
    format!(
        "{} {} {}",
        field(f, "id"),
        field(f, "name"),
        field(f, "state")
    )
}

/// A group and its members ("id name state role"), indented under it.
fn group_lines(g: &Value, out: &mut Vec<String>) {
    out.push(format!(
        "{} {} {}",
        field(g, "id"),
        field(g, "groupname"),
        field(g, "groupdesc")
    ));
    for user in entries(g, "users") {
        match user {
            Some(u) => out.push(format!(
                "    {} {} {} {}",
                field(&u, "id"),
                field(&u, "name"),
                field(&u, "state"),
                field(&u, "role")
            )),
            None => out.push("    (unreadable member entry)".to_owned()),
        }
    }
}

/// The user's data from a successful LOGIN_MSG_ACK, as the seeds' client showed it.
pub fn login_lines(ack: &Value) -> Vec<String> {
    let mut out = vec![
        "======================login user======================".to_owned(),
        format!(
            "current login user => id:{} name:{}",
            field(ack, "id"),
            field(ack, "name")
        ),
        "----------------------friend list---------------------".to_owned(),
    ];
    for f in entries(ack, "friends") {
        out.push(f.map_or_else(
            || "(unreadable friend entry)".to_owned(),
            |f| friend_line(&f),
        ));
    }
    out.push("----------------------group list----------------------".to_owned());
    for g in entries(ack, "groups") {
        match g {
            Some(g) => group_lines(&g, &mut out),
            None => out.push("(unreadable group entry)".to_owned()),
        }
    }
    let offline = entries(ack, "offlinemsg");
    if !offline.is_empty() {
        out.push("-------------------offline messages-------------------".to_owned());
        for m in offline {
            match m {
                Some(m) => out.extend(frame_lines(&m, None)),
                None => out.push("(unreadable offline message)".to_owned()),
            }
        }
    }
    out.push("======================================================".to_owned());
    out
}

/// The errmsg of a refusal (any errno other than 0), or `None` on success.
pub fn refusal(reply: &Value) -> Option<String> {
    match int(reply, "errno") {
        Some(0) => None,
        _ => Some(match reply.get("errmsg") {
            Some(Value::String(s)) => sanitize(s),
            _ => "request refused".to_owned(),
        }),
    }
}

/// Display lines for one incoming frame. `rtt` is the measured round trip when it is a pong
/// answering one of our pings.
pub fn frame_lines(v: &Value, rtt: Option<Duration>) -> Vec<String> {
    let Some(id) = int(v, "msgid") else {
        return vec![format!(
            "unreadable message from server: {}",
            sanitize(&v.to_string())
        )];
    };
    if id != msgid::ERROR_MSG && v.get("errno").is_some() {
        if let Some(err) = refusal(v) {
            return vec![format!("error: {err}")];
        }
    }
    let line = match id {
        msgid::ONE_CHAT_MSG => format!(
            "[{}] {}({}) said: {}",
            field(v, "time"),
            field(v, "name"),
            field(v, "id"),
            field(v, "msg")
        ),
        msgid::GROUP_CHAT_MSG => format!(
            "group[{}] [{}] {}({}) said: {}",
            field(v, "groupid"),
            field(v, "time"),
            field(v, "name"),
            field(v, "id"),
            field(v, "msg")
        ),
        msgid::ERROR_MSG => format!("error: {}", field(v, "errmsg")),
        msgid::LOGIN_MSG_ACK => format!("logged in as {}", field(v, "id")),
        msgid::REG_MSG_ACK => format!("registered, your id is {}", field(v, "id")),
        msgid::LOGINOUT_ACK => "logged out".to_owned(),
        msgid::ADD_FRIEND_ACK => match v.get("name") {
            Some(_) => format!(
                "friend added: {}({})",
                field(v, "name"),
                field(v, "friendid")
            ),
            None => format!("friend added: {}", field(v, "friendid")),
        },
        msgid::CREATE_GROUP_ACK => format!(
            "group created: {} (id {})",
            field(v, "groupname"),
            field(v, "groupid")
        ),
        msgid::ADD_GROUP_ACK => format!("joined group {}", field(v, "groupid")),
        msgid::LEAVE_GROUP_ACK => format!("left group {}", field(v, "groupid")),
        msgid::REMOVE_FRIEND_ACK => format!("friend removed: {}", field(v, "friendid")),
        msgid::FRIEND_LIST_ACK => {
            let mut out = vec!["friends (id name state):".to_owned()];
            let list = entries(v, "friends");
            if list.is_empty() {
                out.push("  (none)".to_owned());
            }
            for f in list {
                out.push(f.map_or_else(
                    || "  (unreadable entry)".to_owned(),
                    |f| format!("  {}", friend_line(&f)),
                ));
            }
            return out;
        }
        msgid::GROUP_LIST_ACK => {
            let mut out = vec!["groups (id name desc; members: id name state role):".to_owned()];
            let list = entries(v, "groups");
            if list.is_empty() {
                out.push("  (none)".to_owned());
            }
            for g in list {
                match g {
                    Some(g) => group_lines(&g, &mut out),
                    None => out.push("(unreadable group entry)".to_owned()),
                }
            }
            return out;
        }
        msgid::PONG_MSG => match rtt {
            Some(d) => format!("pong: round trip {:.3} ms", d.as_secs_f64() * 1000.0),
            None => format!("pong (seq {})", field(v, "seq")),
        },
        msgid::SEND_ACK => format!("sent (mid {})", field(v, "mid")),
        msgid::SHUTDOWN_MSG => match v.get("errmsg") {
            Some(_) => format!("notice: {}", field(v, "errmsg")),
            None => "notice: the server is shutting down".to_owned(),
        },
        msgid::HEARTBEAT_MSG => "heartbeat from the server".to_owned(),
        other => format!("message with unknown msgid {other} from server"),
    };
    vec![line]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> String {
        let lines = frame_lines(&v, None);
        assert_eq!(lines.len(), 1, "{lines:?}");
        lines.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn chat_frames() {
        assert_eq!(
            one(
                json!({"msgid":6,"id":15,"name":"li si","toid":13,"msg":"hi: you","time":"2024-05-01 10:00:00"})
            ),
            "[2024-05-01 10:00:00] li si(15) said: hi: you"
        );
        assert_eq!(
            one(json!({"msgid":10,"id":15,"name":"li si","groupid":2,"msg":"yo","time":"t"})),
            "group[2] [t] li si(15) said: yo"
        );
        // Fields a foreign client left out or mistyped.
        assert_eq!(one(json!({"msgid":6,"id":"x","msg":5})), "[?] ?(x) said: 5");
    }

    #[test]
    fn control_characters_are_escaped() {
        let line =
            one(json!({"msgid":6,"id":1,"name":"a\u{1b}[2J","msg":"x\r\ny\u{9b}","time":"t"}));
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}[2J"));
        assert!(line.contains("x\\r\\ny"));
    }

    #[test]
    fn acks_and_errors() {
        assert_eq!(
            one(
                json!({"msgid":11,"errno":5,"errmsg":"missing or mistyped field: toid","reqmsgid":6})
            ),
            "error: missing or mistyped field: toid"
        );
        assert_eq!(one(json!({"msgid":12,"errno":0,"id":13})), "logged out");
        assert_eq!(
            one(json!({"msgid":13,"errno":0,"friendid":15,"name":"li si"})),
            "friend added: li si(15)"
        );
        assert_eq!(
            one(json!({"msgid":14,"errno":0,"groupid":2,"groupname":"rust"})),
            "group created: rust (id 2)"
        );
        assert_eq!(
            one(json!({"msgid":15,"errno":0,"groupid":2})),
            "joined group 2"
        );
        assert_eq!(
            one(json!({"msgid":21,"errno":0,"groupid":2})),
            "left group 2"
        );
        assert_eq!(
            one(json!({"msgid":23,"errno":0,"friendid":15})),
            "friend removed: 15"
        );
        assert_eq!(one(json!({"msgid":25,"seq":"a"})), "pong (seq a)");
        assert_eq!(
            one(json!({"msgid":5,"errno":1,"errmsg":"name is already taken!"})),
            "error: name is already taken!"
        );
        assert_eq!(
            one(json!({"msgid":99})),
            "message with unknown msgid 99 from server"
        );
        assert_eq!(
            one(json!({"msgid":28,"cid":"c-1","mid":42})),
            "sent (mid 42)"
        );
        assert_eq!(
            one(json!({"msgid":29,"errmsg":"server is shutting down, log in again"})),
            "notice: server is shutting down, log in again"
        );
        assert_eq!(
            one(json!({"msgid":29})),
            "notice: the server is shutting down"
        );
        assert!(one(json!({"hello":1})).starts_with("unreadable"));
        assert!(one(json!([1, 2])).starts_with("unreadable"));
        let pong = frame_lines(
            &json!({"msgid":25,"seq":1}),
            Some(Duration::from_micros(1500)),
        );
        assert_eq!(pong, vec!["pong: round trip 1.500 ms"]);
    }

    #[test]
    fn lists() {
        let friends = frame_lines(
            &json!({"msgid":17,"errno":0,"friends":[{"id":15,"name":"li si","state":"online"}]}),
            None,
        );
        assert_eq!(
            friends,
            vec!["friends (id name state):", "  15 li si online"]
        );
        let empty = frame_lines(&json!({"msgid":17,"errno":0,"friends":[]}), None);
        assert_eq!(empty, vec!["friends (id name state):", "  (none)"]);
        let groups = frame_lines(
            &json!({"msgid":19,"errno":0,"groups":[{"id":2,"groupname":"rust","groupdesc":"crabs",
                "users":[{"id":13,"name":"zhang san","state":"online","role":"creator"}]}]}),
            None,
        );
        assert_eq!(
            groups[1..],
            ["2 rust crabs", "    13 zhang san online creator"]
        );
    }

    #[test]
    fn login_ack_with_double_encoded_lists() {
        // The example from docs/PROTOCOL.md.
        let text = r#"{"msgid":2,"errno":0,"id":13,"name":"zhang san","offlinemsg":["{\"msgid\":6,\"id\":15,\"name\":\"li si\",\"toid\":13,\"msg\":\"hi\",\"time\":\"2024-05-01 10:00:00\"}"],"friends":["{\"id\":15,\"name\":\"li si\",\"state\":\"offline\"}"],"groups":["{\"id\":2,\"groupname\":\"rust\",\"groupdesc\":\"crabs\",\"users\":[\"{\\\"id\\\":13,\\\"name\\\":\\\"zhang san\\\",\\\"state\\\":\\\"online\\\",\\\"role\\\":\\\"creator\\\"}\"]}"]}"#;
        let ack: Value = serde_json::from_str(text).unwrap();
        assert_eq!(refusal(&ack), None);
        let lines = login_lines(&ack);
        let has = |s: &str| lines.iter().any(|l| l == s);
        assert!(
            has("current login user => id:13 name:zhang san"),
            "{lines:?}"
        );
        assert!(has("15 li si offline"));
        assert!(has("2 rust crabs"));
        assert!(has("    13 zhang san online creator"));
        assert!(has("[2024-05-01 10:00:00] li si(15) said: hi"));
    }

    #[test]
    fn login_ack_garbage_entries_do_not_panic() {
        let ack = json!({"msgid":2,"errno":0,"id":1,"name":"a",
            "friends":["not json", 5, "[1]"], "groups":"x", "offlinemsg":[null]});
        let lines = login_lines(&ack);
        assert!(lines.iter().any(|l| l == "(unreadable friend entry)"));
        assert!(lines.iter().any(|l| l == "(unreadable offline message)"));
        let refused = json!({"msgid":2,"errno":1,"errmsg":"id or password is invalid!"});
        assert_eq!(
            refusal(&refused).as_deref(),
            Some("id or password is invalid!")
        );
        assert_eq!(
            refusal(&json!({"msgid":2})).as_deref(),
            Some("request refused")
        );
    }
}
