//! Tests of the reply builders: each frame parsed back and its shape checked.

use serde_json::{json, Value};

use crate::protocol::reply;
use crate::protocol::{parse_request, ErrorCode, FrameError, FriendView, GroupView, MemberView};

/// Parses a server frame, checking it is one line ending in `\n`.
fn parse(frame: &[u8]) -> Value {
    let (last, body) = frame.split_last().expect("empty frame");
    assert_eq!(*last, b'\n');
    assert!(!body.contains(&b'\n'), "a server frame is one line");
    serde_json::from_slice(body).unwrap()
}

/// Parses a string that itself holds JSON text (the login reply's nesting).
fn parse_text(v: &Value) -> Value {
    serde_json::from_str(v.as_str().expect("a JSON text inside a string")).unwrap()
}

fn sample_groups() -> Vec<GroupView<'static>> {
    vec![GroupView {
        id: 2,
        name: "rust \"crabs\"",
        desc: "多字节\n",
        users: vec![
            MemberView {
                id: 13,
                name: "zhang san",
                online: true,
                role: "creator",
            },
            MemberView {
                id: 15,
                name: "li si",
                online: false,
                role: "normal",
            },
        ],
    }]
}

#[test]
fn login_ok_without_extras_omits_the_arrays() {
    let v = parse(&reply::login_ok::<&str>(
        13,
        "zhang san",
        Default::default(),
        &[],
        &[],
        &[],
    ));
    assert_eq!(v, json!({"msgid":2,"errno":0,"id":13,"name":"zhang san"}));
}

#[test]
fn login_ok_nests_json_texts_in_strings() {
    let offline = [
        r#"{"msgid":6,"id":15,"name":"li si","toid":13,"msg":"hi \"x\"","time":"t"}"#.to_string(),
    ];
    let friends = [FriendView {
        id: 15,
        name: "li si",
        online: false,
    }];
    let v = parse(&reply::login_ok(
        13,
        "zhang san",
        reply::LoginExtras::default(),
        &offline,
        &friends,
        &sample_groups(),
    ));
    assert_eq!(v["msgid"], 2);
    assert_eq!(v["errno"], 0);
    // Offline messages come back byte for byte as stored.
    assert_eq!(v["offlinemsg"], json!([offline[0]]));
    assert_eq!(
        parse_text(&v["friends"][0]),
        json!({"id":15,"name":"li si","state":"offline"})
    );
    let group = parse_text(&v["groups"][0]);
    assert_eq!(group["id"], 2);
    assert_eq!(group["groupname"], "rust \"crabs\"");
    assert_eq!(group["groupdesc"], "多字节\n");
    assert_eq!(
        parse_text(&group["users"][0]),
        json!({"id":13,"name":"zhang san","state":"online","role":"creator"})
    );
    assert_eq!(
        parse_text(&group["users"][1]),
        json!({"id":15,"name":"li si","state":"offline","role":"normal"})
    );
}

#[test]
fn login_and_register_refusals_use_the_seeds_texts() {
    assert_eq!(
        parse(&reply::login_invalid()),
        json!({"msgid":2,"errno":1,"errmsg":"id or password is invalid!"})
    );
    assert_eq!(
        parse(&reply::login_in_use()),
        json!({"msgid":2,"errno":2,"errmsg":"this account is using, input another!"})
    );
    assert_eq!(
        parse(&reply::reg_ok(17)),
        json!({"msgid":5,"errno":0,"id":17})
    );
    assert_eq!(
        parse(&reply::reg_name_taken()),
        json!({"msgid":5,"errno":1,"errmsg":"name is already taken!"})
    );
}

#[test]
fn error_reply_appends_the_detail_and_the_request_msgid() {
    assert_eq!(
        parse(&reply::error(ErrorCode::BadField, Some("toid"), Some(6))),
        json!({"msgid":11,"errno":5,"errmsg":"missing or mistyped field: toid","reqmsgid":6})
    );
    assert_eq!(
        parse(&reply::error(ErrorCode::BadJson, None, None)),
        json!({"msgid":11,"errno":1,"errmsg":"malformed JSON"})
    );
    assert_eq!(
        parse(&reply::error(ErrorCode::NotLoggedIn, Some(""), Some(7)))["errmsg"],
        "log in first"
    );
}

#[test]
fn error_reply_from_parse_and_frame_errors() {
    let err = parse_request(br#"{"msgid":99}"#).unwrap_err();
    assert_eq!(
        parse(&reply::parse_error(&err)),
        json!({"msgid":11,"errno":4,"errmsg":"unknown msgid","reqmsgid":99})
    );
    assert_eq!(
        parse(&reply::frame_error(FrameError::TooLarge { limit: 10 })),
        json!({"msgid":11,"errno":11,"errmsg":"frame too large"})
    );
    assert_eq!(
        parse(&reply::frame_error(FrameError::Garbage { byte: 0 }))["errno"],
        12
    );
}

#[test]
fn simple_acks() {
    assert_eq!(
        parse(&reply::logout_ack(13)),
        json!({"msgid":12,"errno":0,"id":13})
    );
    assert_eq!(
        parse(&reply::add_friend_ack(15, "li \"si\"")),
        json!({"msgid":13,"errno":0,"friendid":15,"name":"li \"si\""})
    );
    assert_eq!(
        parse(&reply::create_group_ack(2, "rust")),
        json!({"msgid":14,"errno":0,"groupid":2,"groupname":"rust"})
    );
    assert_eq!(
        parse(&reply::add_group_ack(2)),
        json!({"msgid":15,"errno":0,"groupid":2})
    );
    assert_eq!(
        parse(&reply::leave_group_ack(2)),
        json!({"msgid":21,"errno":0,"groupid":2})
    );
    assert_eq!(
        parse(&reply::remove_friend_ack(15)),
        json!({"msgid":23,"errno":0,"friendid":15})
    );
}

#[test]
fn friend_list_uses_real_objects() {
    let friends = [
        FriendView {
            id: 15,
            name: "li si",
            online: true,
        },
        FriendView {
            id: 16,
            name: "王五",
            online: false,
        },
    ];
    assert_eq!(
        parse(&reply::friend_list_ack(&friends)),
        json!({"msgid":17,"errno":0,"friends":[
            {"id":15,"name":"li si","state":"online"},
            {"id":16,"name":"王五","state":"offline"}
        ]})
    );
    assert_eq!(
        parse(&reply::friend_list_ack(&[])),
        json!({"msgid":17,"errno":0,"friends":[]})
    );
}

#[test]
fn group_list_uses_real_objects() {
    assert_eq!(
        parse(&reply::group_list_ack(&sample_groups())),
        json!({"msgid":19,"errno":0,"groups":[{
            "id":2,"groupname":"rust \"crabs\"","groupdesc":"多字节\n","users":[
                {"id":13,"name":"zhang san","state":"online","role":"creator"},
                {"id":15,"name":"li si","state":"offline","role":"normal"}
            ]
        }]})
    );
}

#[test]
fn pong_echoes_seq_only_when_given() {
    assert_eq!(parse(&reply::pong(None)), json!({"msgid":25}));
    assert_eq!(
        parse(&reply::pong(Some(&json!(null)))),
        json!({"msgid":25,"seq":null})
    );
    assert_eq!(
        parse(&reply::pong(Some(&json!({"n":[1]})))),
        json!({"msgid":25,"seq":{"n":[1]}})
    );
}
