//! Tests of `parse_request`: every msgid, every kind of bad frame, strings that need unescaping.

use std::borrow::Cow;

use serde_json::json;

use crate::protocol::{parse_request, ErrorCode, ParseError, Request, Secret};

fn ok(frame: &str) -> Request<'_> {
    match parse_request(frame.as_bytes()) {
        Ok(req) => req,
        Err(e) => panic!("{frame}: {e}"),
    }
}

fn err(frame: &str) -> ParseError {
    match parse_request(frame.as_bytes()) {
        Ok(req) => panic!("{frame}: parsed as {req:?}"),
        Err(e) => e,
    }
}

fn bad_field(frame: &str, field: &str, msgid: i64) {
    let e = err(frame);
    assert_eq!(
        (e.code, e.detail.as_str(), e.msgid),
        (ErrorCode::BadField, field, Some(msgid)),
        "{frame}"
    );
}

#[test]
fn every_msgid_parses() {
    let cases: Vec<(&str, Request<'_>)> = vec![
        (
            r#"{"msgid":1,"id":13,"password":"123456"}"#,
            Request::Login {
                id: 13,
                secret: Secret::Password("123456".into()),
                acks: false,
            },
        ),
        (r#"{"msgid":3,"id":13}"#, Request::Logout { id: 13 }),
        (
            r#"{"msgid":4,"name":"li si","password":"pw"}"#,
            Request::Register {
                name: "li si".into(),
                password: "pw".into(),
            },
        ),
        (
            r#"{"msgid":6,"id":13,"name":"zhang san","toid":15,"msg":"hello","time":"2024-01-01 10:00:00"}"#,
            Request::OneChat {
                id: 13,
                toid: 15,
                cid: None,
            },
        ),
        (
            r#"{"msgid":7,"id":13,"friendid":15}"#,
            Request::AddFriend {
                id: 13,
                friendid: 15,
            },
        ),
        (
            r#"{"msgid":8,"id":13,"groupname":"rust","groupdesc":"crabs"}"#,
            Request::CreateGroup {
                id: 13,
                groupname: "rust".into(),
                groupdesc: "crabs".into(),
            },
        ),
        (
            r#"{"msgid":9,"id":13,"groupid":2}"#,
            Request::AddGroup { id: 13, groupid: 2 },
        ),
        (
            r#"{"msgid":10,"id":13,"name":"zhang san","groupid":2,"msg":"hi all","time":"t"}"#,
            Request::GroupChat {
                id: 13,
                groupid: 2,
                cid: None,
            },
        ),
        (r#"{"msgid":16,"id":13}"#, Request::FriendList { id: 13 }),
        (r#"{"msgid":18,"id":13}"#, Request::GroupList { id: 13 }),
        (
            r#"{"msgid":20,"id":13,"groupid":2}"#,
            Request::LeaveGroup { id: 13, groupid: 2 },
        ),
        (
            r#"{"msgid":22,"id":13,"friendid":15}"#,
            Request::RemoveFriend {
                id: 13,
                friendid: 15,
            },
        ),
        (
            r#"{"msgid":24,"seq":7}"#,
            Request::Ping {
                seq: Some(json!(7)),
            },
        ),
    ];
    for (frame, want) in cases {
        let got = ok(frame);
        assert_eq!(got, want, "{frame}");
        let msgid = serde_json::from_str::<serde_json::Value>(frame).unwrap()["msgid"].as_i64();
        assert_eq!(Some(got.msgid()), msgid);
        let want_id = if matches!(got, Request::Register { .. } | Request::Ping { .. }) {
            None
        } else {
            Some(13)
        };
        assert_eq!(got.claimed_id(), want_id, "{frame}");
    }
}

#[test]
fn msgid_may_come_anywhere_and_extra_fields_are_ignored() {
    let req = ok(r#" {"id":13,"extra":{"deep":[1,2,{"x":null}]},"toid":15,"msg":"m","msgid":6} "#);
    assert_eq!(
        req,
        Request::OneChat {
            id: 13,
            toid: 15,
            cid: None
        }
    );
}

#[test]
fn malformed_json() {
    for frame in [
        r#"{"msgid":1,}"#,
        r#"{"msgid":1"#,
        "{msgid:1}",
        r#"{"a":"\x"}"#,
        "",
        "[1,",
        "{}}",
    ] {
        let e = err(frame);
        assert_eq!((e.code, e.msgid), (ErrorCode::BadJson, None), "{frame}");
    }
    assert_eq!(
        parse_request(b"{\"msgid\":1,\"id\":1,\"password\":\"\xff\"}")
            .unwrap_err()
            .code,
        ErrorCode::BadJson
    );
}

#[test]
fn duplicate_field_is_malformed() {
    // A forwarded frame with two `toid`s would mean different things to different parsers.
    assert_eq!(
        err(r#"{"msgid":6,"id":1,"toid":2,"toid":3,"msg":""}"#).code,
        ErrorCode::BadJson
    );
}

#[test]
fn not_an_object() {
    for frame in ["[1,2]", " [] ", "42", r#""str""#, "null"] {
        let e = err(frame);
        assert_eq!((e.code, e.msgid), (ErrorCode::NotObject, None), "{frame}");
    }
}

#[test]
fn bad_msgid() {
    for frame in [
        r#"{"id":1}"#,
        r#"{"msgid":"1"}"#,
        r#"{"msgid":1.5}"#,
        r#"{"msgid":1.0}"#,
        r#"{"msgid":null}"#,
        r#"{"msgid":[1]}"#,
        r#"{"msgid":true}"#,
        r#"{"msgid":18446744073709551615}"#,
    ] {
        let e = err(frame);
        assert_eq!((e.code, e.msgid), (ErrorCode::BadMsgId, None), "{frame}");
    }
}

#[test]
fn unknown_msgid() {
    for (frame, msgid) in [
        (r#"{"msgid":99}"#, 99),
        (r#"{"msgid":2}"#, 2),
        (r#"{"msgid":0}"#, 0),
        (r#"{"msgid":-1}"#, -1),
    ] {
        let e = err(frame);
        assert_eq!(
            (e.code, e.msgid),
            (ErrorCode::UnknownMsgId, Some(msgid)),
            "{frame}"
        );
    }
}

#[test]
fn missing_or_mistyped_fields_are_named() {
    bad_field(r#"{"msgid":1,"password":"x"}"#, "id", 1);
    bad_field(r#"{"msgid":1,"id":"13","password":"x"}"#, "id", 1);
    bad_field(r#"{"msgid":1,"id":13.0,"password":"x"}"#, "id", 1);
    bad_field(r#"{"msgid":1,"id":true,"password":"x"}"#, "id", 1);
    bad_field(r#"{"msgid":1,"id":null,"password":"x"}"#, "id", 1);
    bad_field(
        r#"{"msgid":1,"id":9223372036854775808,"password":"x"}"#,
        "id",
        1,
    );
    bad_field(r#"{"msgid":1,"id":13,"password":123456}"#, "password", 1);
    bad_field(r#"{"msgid":3}"#, "id", 3);
    bad_field(r#"{"msgid":4,"password":"x"}"#, "name", 4);
    bad_field(r#"{"msgid":4,"name":["a"],"password":"x"}"#, "name", 4);
    bad_field(r#"{"msgid":4,"name":"a"}"#, "password", 4);
    bad_field(r#"{"msgid":6,"id":1,"msg":"m"}"#, "toid", 6);
    bad_field(r#"{"msgid":6,"id":1,"toid":"2","msg":"m"}"#, "toid", 6);
    bad_field(r#"{"msgid":6,"id":1,"toid":2}"#, "msg", 6);
    bad_field(r#"{"msgid":6,"id":1,"toid":2,"msg":{"a":1}}"#, "msg", 6);
    bad_field(
        r#"{"msgid":6,"id":1,"toid":2,"msg":"m","name":5}"#,
        "name",
        6,
    );
    bad_field(
        r#"{"msgid":6,"id":1,"toid":2,"msg":"m","time":5}"#,
        "time",
        6,
    );
    bad_field(r#"{"msgid":7,"id":1}"#, "friendid", 7);
    bad_field(r#"{"msgid":8,"id":1}"#, "groupname", 8);
    bad_field(
        r#"{"msgid":8,"id":1,"groupname":"g","groupdesc":1}"#,
        "groupdesc",
        8,
    );
    bad_field(r#"{"msgid":9,"id":1,"groupid":[]}"#, "groupid", 9);
    bad_field(r#"{"msgid":10,"id":1,"groupid":2}"#, "msg", 10);
    bad_field(r#"{"msgid":10,"id":1,"msg":"m"}"#, "groupid", 10);
    bad_field(r#"{"msgid":16}"#, "id", 16);
    bad_field(r#"{"msgid":18,"id":"x"}"#, "id", 18);
    bad_field(r#"{"msgid":20,"id":1}"#, "groupid", 20);
    bad_field(r#"{"msgid":22,"id":1}"#, "friendid", 22);
}

#[test]
fn chat_name_and_time_are_optional() {
    assert_eq!(
        ok(r#"{"msgid":6,"id":1,"toid":2,"msg":""}"#),
        Request::OneChat {
            id: 1,
            toid: 2,
            cid: None
        }
    );
    assert_eq!(
        ok(r#"{"msgid":10,"id":1,"groupid":2,"msg":"x"}"#),
        Request::GroupChat {
            id: 1,
            groupid: 2,
            cid: None
        }
    );
}

#[test]
fn group_description_defaults_to_empty() {
    assert_eq!(
        ok(r#"{"msgid":8,"id":1,"groupname":"g"}"#),
        Request::CreateGroup {
            id: 1,
            groupname: "g".into(),
            groupdesc: "".into()
        }
    );
}

#[test]
fn invalid_values() {
    let long_name = "n".repeat(51);
    let long_pw = "p".repeat(129);
    let long_desc = "d".repeat(201);
    let cases = [
        (
            r#"{"msgid":4,"name":"","password":"x"}"#.to_string(),
            "name",
            4,
        ),
        (
            format!(r#"{{"msgid":4,"name":"{long_name}","password":"x"}}"#),
            "name",
            4,
        ),
        (
            r#"{"msgid":4,"name":"a","password":""}"#.to_string(),
            "password",
            4,
        ),
        (
            format!(r#"{{"msgid":4,"name":"a","password":"{long_pw}"}}"#),
            "password",
            4,
        ),
        (
            r#"{"msgid":8,"id":1,"groupname":""}"#.to_string(),
            "groupname",
            8,
        ),
        (
            format!(r#"{{"msgid":8,"id":1,"groupname":"{long_name}"}}"#),
            "groupname",
            8,
        ),
        (
            format!(r#"{{"msgid":8,"id":1,"groupname":"g","groupdesc":"{long_desc}"}}"#),
            "groupdesc",
            8,
        ),
    ];
    for (frame, field, msgid) in &cases {
        let e = err(frame);
        assert_eq!(
            (e.code, e.detail.as_str(), e.msgid),
            (ErrorCode::BadValue, *field, Some(*msgid)),
            "{frame}"
        );
    }
    // Limits count characters, not bytes: 50 Chinese characters are 150 bytes and still fine.
    let chinese = "张".repeat(50);
    let frame = format!(r#"{{"msgid":4,"name":"{chinese}","password":"x"}}"#);
    assert!(matches!(ok(&frame), Request::Register { name, .. } if name == chinese));
}

#[test]
fn escaped_and_non_ascii_strings_round_trip() {
    let frame = r#"{"msgid":4,"name":"张三 \"quoted\" back\\slash \u00e9\n","password":"密码✓"}"#;
    match ok(frame) {
        Request::Register { name, password } => {
            assert_eq!(name, "张三 \"quoted\" back\\slash é\n");
            assert!(matches!(name, Cow::Owned(_)), "escapes force a copy");
            assert_eq!(password, "密码✓");
            assert!(
                matches!(password, Cow::Borrowed(_)),
                "plain strings are borrowed from the frame"
            );
        }
        other => panic!("{other:?}"),
    }
    let frame =
        r#"{"msgid":6,"id":1,"toid":2,"name":"\u5f20","msg":"多字节 \"esc\" {}","time":"\t"}"#;
    assert_eq!(
        ok(frame),
        Request::OneChat {
            id: 1,
            toid: 2,
            cid: None
        }
    );
}

#[test]
fn ping_seq_is_kept_as_sent() {
    assert_eq!(ok(r#"{"msgid":24}"#), Request::Ping { seq: None });
    assert_eq!(
        ok(r#"{"msgid":24,"seq":null}"#),
        Request::Ping {
            seq: Some(serde_json::Value::Null)
        }
    );
    assert_eq!(
        ok(r#"{"msgid":24,"seq":{"a":[1,"b"]}}"#),
        Request::Ping {
            seq: Some(json!({"a":[1,"b"]}))
        }
    );
}

#[test]
fn parse_error_displays_code_and_detail() {
    assert_eq!(
        err(r#"{"msgid":6,"id":1,"msg":"m"}"#).to_string(),
        "missing or mistyped field: toid"
    );
    assert_eq!(err(r#"{"msgid":99}"#).to_string(), "unknown msgid");
}

#[test]
fn error_codes_are_numbered_as_documented() {
    let codes: Vec<i64> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(codes, (1..=22).collect::<Vec<_>>());
    assert_eq!(ErrorCode::BadValue.message(), "invalid value");
    assert_eq!(ErrorCode::FrameTooLarge.code(), 11);
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    // Unknown fields are skipped by serde_json without recursion, so this one is harmless.
    let deep = format!(
        r#"{{"msgid":24,"x":{}1{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    assert_eq!(ok(&deep), Request::Ping { seq: None });
    // A ping's seq is built into a Value, which stops at serde_json's recursion limit (128).
    let deep = format!(
        r#"{{"msgid":24,"seq":{}1{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    assert_eq!(err(&deep).code, ErrorCode::BadJson);
    // A slot drains a mistyped value the same iterative way, then names the field.
    let deep = format!(
        r#"{{"msgid":1,"id":{}1{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    bad_field(&deep, "id", 1);
}

#[test]
fn examples_in_the_protocol_document_parse() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let mut requests = 0;
    for block in doc.split("```\n").skip(1).step_by(2) {
        for line in block.lines() {
            // Replies are not requests: those must fail only for their msgid.
            match parse_request(line.as_bytes()) {
                Ok(_) => requests += 1,
                Err(e) => assert_eq!(e.code, ErrorCode::UnknownMsgId, "{line}"),
            }
        }
    }
    // One per request msgid (13), plus the extensions' examples: a login with acks, one with a
    // token, a chat with a cid, a delivered chat (its mid first) and DELIVERY_ACK_MSG.
    assert_eq!(requests, 18, "the requests of docs/PROTOCOL.md");
}
