//! One storage test suite, run against both backends: SQLite (a temp file) and MariaDB (a
//! throwaway database, dropped afterwards; skipped when no server answers).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chatserver::store::{
    self, Contact, FriendAdd, GroupJoin, GroupLeave, GroupRole, PasswordHasher, Store, UserId,
};

/// Enough connections for the concurrency case's 8 writers and 1 taker.
const POOL: usize = 10;

// ---------------------------------------------------------------------------------------
// Harness

fn with_sqlite(case: fn(&dyn Store)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("nested/dir/chat.db").display());
    let store = store::open(&url, POOL).expect("open sqlite store");
    assert_eq!(store.backend_name(), "sqlite");
    case(&*store);
}

fn with_mysql(test: &str, case: fn(&dyn Store)) {
    let Some(db) = TempDatabase::new(test) else {
        return;
    };
    let store = store::open(&db.url, POOL).expect("open mysql store");
    assert_eq!(store.backend_name(), "mysql");
    case(&*store);
}

/// A MariaDB database name of our own; dropped on drop, so also when a case panics. The
/// store creates it at open (which is part of what is tested).
struct TempDatabase {
    base: String,
    name: String,
    url: String,
}

impl TempDatabase {
    fn new(test: &str) -> Option<Self> {
        let base = common::services::mysql_url_or_skip(test)?;
        let base = base.trim_end_matches('/').to_owned();
        let name = format!("chat_test_{:016x}", rand::random::<u64>());
        let url = format!("{base}/{name}");
        Some(TempDatabase { base, name, url })
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        use ::mysql::prelude::Queryable;
        let dropped = ::mysql::Opts::from_url(&self.base)
            .map_err(|e| e.to_string())
            .and_then(|opts| ::mysql::Conn::new(opts).map_err(|e| e.to_string()))
            .and_then(|mut conn| {
                conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// Each case runs once per backend: `sqlite::case` and `mysql::case`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $case() { super::with_sqlite(super::$case) } )*
        }
        mod mysql {
            $( #[test] fn $case() {
                super::with_mysql(concat!("mysql::", stringify!($case)), super::$case)
            } )*
        }
    };
}

suite!(
    register_and_duplicate_name,
    user_lookup,
    friends,
    groups,
    offline_order_and_delivered_once,
    offline_taken_in_batches_of_a_budget,
    offline_put_back_goes_first,
    offline_big_and_odd_messages,
    offline_to_missing_user,
    offline_batch,
    concurrent_stores_during_takes_lose_nothing,
    resume_tokens,
);

/// Takes every message stored for `u` in one batch.
fn take_all(store: &dyn Store, u: UserId) -> store::StoreResult<Vec<String>> {
    let batch = store.take_offline(u, usize::MAX)?;
    assert!(!batch.more, "one unbounded take leaves nothing behind");
    Ok(batch.messages)
}

fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(name, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
        .expect("create user")
        .expect("name free")
}

// ---------------------------------------------------------------------------------------
// Cases

fn register_and_duplicate_name(store: &dyn Store) {
    let hasher = PasswordHasher::new(64, 1, 1).expect("cheap hasher");
    let hash = hasher.hash("secret").expect("hash");
    let alice = store
        .create_user("alice", &hash)
        .expect("create")
        .expect("free");
    let bob = store
        .create_user("bob", &hash)
        .expect("create")
        .expect("free");
    assert!(alice > 0 && bob > alice, "ids {alice} {bob}");
    assert_eq!(store.create_user("alice", "other").expect("create"), None);
    // Names are exact: case and non-ASCII matter.
    assert!(store.create_user("Alice", &hash).expect("create").is_some());
    assert!(store
        .create_user("zoë 🐱", &hash)
        .expect("create")
        .is_some());
    assert_eq!(store.create_user("zoë 🐱", &hash).expect("create"), None);

    let stored = store.user(alice).expect("lookup").expect("exists");
    assert!(hasher.verify("secret", &stored.password_hash));
    assert!(!hasher.verify("wrong", &stored.password_hash));
}

fn user_lookup(store: &dyn Store) {
    let id = store
        .create_user("carol \"c\" o'neil", "phc")
        .expect("create")
        .expect("free");
    let u = store.user(id).expect("lookup").expect("exists");
    assert_eq!(
        (u.id, u.name.as_str(), u.password_hash.as_str()),
        (id, "carol \"c\" o'neil", "phc")
    );
    assert_eq!(
        store.user_name(id).expect("name").as_deref(),
        Some("carol \"c\" o'neil")
    );
    assert_eq!(store.user(id + 1000).expect("lookup"), None);
    assert_eq!(store.user_name(-1).expect("name"), None);
}

fn friends(store: &dyn Store) {
    let a = user(store, "a");
    let c = user(store, "c");
    let b = user(store, "b");
    assert_eq!(
        store.add_friend(a, b).expect("add"),
        FriendAdd::Added { name: "b".into() }
    );
    assert_eq!(
        store.add_friend(a, c).expect("add"),
        FriendAdd::Added { name: "c".into() }
    );
    assert_eq!(
        store.add_friend(a, b).expect("add"),
        FriendAdd::AlreadyFriends
    );
    assert_eq!(
        store.add_friend(a, 9999).expect("add"),
        FriendAdd::NoSuchUser
    );
    assert_eq!(
        store.add_friend(9999, a).expect("add"),
        FriendAdd::NoSuchUser
    );

    // Ordered by id (c was registered before b), and one-directional.
    let expect = vec![
        Contact {
            id: c,
            name: "c".into(),
        },
        Contact {
            id: b,
            name: "b".into(),
        },
    ];
    assert_eq!(store.friends(a).expect("list"), expect);
    assert!(store.friends(b).expect("list").is_empty());

    assert!(store.remove_friend(a, c).expect("remove"));
    assert!(!store.remove_friend(a, c).expect("remove again"));
    assert!(!store.remove_friend(b, a).expect("never friends"));
    assert_eq!(
        store.friends(a).expect("list"),
        vec![Contact {
            id: b,
            name: "b".into()
        }]
    );
}

fn groups(store: &dyn Store) {
    let boss = user(store, "boss");
    let x = user(store, "x");
    let y = user(store, "y");

    let g1 = store
        .create_group(boss, "rust", "crabs 🦀")
        .expect("create")
        .expect("free");
    assert_eq!(
        store.create_group(x, "rust", "again").expect("create"),
        None
    );
    let g2 = store
        .create_group(y, "tea", "")
        .expect("create")
        .expect("free");
    assert!(g2 > g1);

    assert_eq!(store.join_group(y, g1).expect("join"), GroupJoin::Joined);
    assert_eq!(store.join_group(x, g1).expect("join"), GroupJoin::Joined);
    assert_eq!(
        store.join_group(x, g1).expect("join"),
        GroupJoin::AlreadyMember
    );
    assert_eq!(
        store.join_group(boss, g1).expect("join"),
        GroupJoin::AlreadyMember
    );
    assert_eq!(
        store.join_group(x, 9999).expect("join"),
        GroupJoin::NoSuchGroup
    );

    assert_eq!(
        store.group_member_ids(g1).expect("ids"),
        Some(vec![boss, x, y])
    );
    assert_eq!(store.group_member_ids(g2).expect("ids"), Some(vec![y]));
    assert_eq!(store.group_member_ids(9999).expect("ids"), None);

    let of_y = store.groups_of(y).expect("groups");
    assert_eq!(of_y.iter().map(|g| g.id).collect::<Vec<_>>(), vec![g1, g2]);
    let rust = &of_y[0];
    assert_eq!(
        (rust.name.as_str(), rust.desc.as_str()),
        ("rust", "crabs 🦀")
    );
    let members: Vec<_> = rust
        .members
        .iter()
        .map(|m| (m.id, m.name.as_str(), m.role))
        .collect();
    assert_eq!(
        members,
        vec![
            (boss, "boss", GroupRole::Creator),
            (x, "x", GroupRole::Normal),
            (y, "y", GroupRole::Normal),
        ]
    );
    assert_eq!(of_y[1].members.len(), 1);
    assert_eq!(of_y[1].members[0].role, GroupRole::Creator);
    assert_eq!(GroupRole::Creator.as_str(), "creator");
    assert_eq!(GroupRole::Normal.as_str(), "normal");

    assert_eq!(store.leave_group(x, g1).expect("leave"), GroupLeave::Left);
    assert_eq!(
        store.leave_group(x, g1).expect("leave"),
        GroupLeave::NotMember
    );
    assert_eq!(
        store.leave_group(x, 9999).expect("leave"),
        GroupLeave::NotMember
    );
    assert_eq!(
        store.group_member_ids(g1).expect("ids"),
        Some(vec![boss, y])
    );
    assert!(store.groups_of(x).expect("groups").is_empty());
    // An empty group still exists.
    assert_eq!(store.leave_group(y, g2).expect("leave"), GroupLeave::Left);
    assert_eq!(store.group_member_ids(g2).expect("ids"), Some(vec![]));
}

fn offline_order_and_delivered_once(store: &dyn Store) {
    let u = user(store, "u");
    let v = user(store, "v");
    for i in 0..20 {
        assert!(store.store_offline(u, &format!("m{i}")).expect("store"));
    }
    assert!(store.store_offline(v, "for v").expect("store"));
    let expect: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(take_all(store, u).expect("take"), expect);
    assert!(take_all(store, u).expect("take again").is_empty());
    assert_eq!(take_all(store, v).expect("take"), vec!["for v".to_owned()]);
    assert!(store.store_offline(u, "later").expect("store"));
    assert_eq!(take_all(store, u).expect("take"), vec!["later".to_owned()]);
}

fn offline_big_and_odd_messages(store: &dyn Store) {
    let u = user(store, "u");
    let big: String = "0123456789abcdef🦀\"'\\"
        .chars()
        .cycle()
        .take(60 * 1024)
        .collect();
    assert!(big.len() >= 60 * 1024);
    let odd = [
        r#"{"msgid":6,"msg":"she said \"hi\" \\ o/"}"#.to_owned(),
        "it's; DROP TABLE user; --".to_owned(),
        "emoji 😀👍🏽 and 中文 and \u{10FFFF}".to_owned(),
        "line1\nline2\r\n\ttabbed".to_owned(),
        "back\\slash \\\\ and %_ wildcards".to_owned(),
        " ".to_owned(),
        String::new(),
        big,
    ];
    for m in &odd {
        assert!(store.store_offline(u, m).expect("store"));
    }
    let taken = take_all(store, u).expect("take");
    assert_eq!(taken.len(), odd.len());
    for (got, want) in taken.iter().zip(&odd) {
        assert!(
            got == want,
            "round trip changed a message of {} bytes",
            want.len()
        );
    }
}

fn offline_taken_in_batches_of_a_budget(store: &dyn Store) {
    let u = user(store, "u");
    // More than one page of rows (256), of 100 bytes each.
    let all: Vec<String> = (0..700).map(|i| format!("{i:0>100}")).collect();
    for m in &all {
        assert!(store.store_offline(u, m).expect("store"));
    }
    let mut got = Vec::new();
    let mut takes = 0;
    loop {
        let batch = store.take_offline(u, 30_000).expect("take");
        takes += 1;
        assert!(
            !batch.messages.is_empty(),
            "a take with more left returns some"
        );
        let bytes: usize = batch.messages.iter().map(String::len).sum();
        assert!(
            bytes <= 30_000 + 100,
            "a batch stops at its budget: {bytes}"
        );
        got.extend(batch.messages);
        if !batch.more {
            break;
        }
    }
    assert_eq!(got, all, "in order, each once");
    assert_eq!(takes, 3);
    // One message longer than the budget still comes, whole.
    let long = "x".repeat(5000);
    assert!(store.store_offline(u, &long).expect("store"));
    let batch = store.take_offline(u, 10).expect("take");
    assert_eq!((batch.messages, batch.more), (vec![long], false));
}

fn offline_put_back_goes_first(store: &dyn Store) {
    let u = user(store, "u");
    let v = user(store, "v");
    for m in ["c", "d"] {
        assert!(store.store_offline(u, m).expect("store"));
    }
    assert!(store.store_offline(v, "v1").expect("store"));
    assert!(store.store_offline_front(u, &["a", "b"]).expect("front"));
    assert!(store.store_offline(u, "e").expect("store"));
    assert_eq!(take_all(store, u).expect("take"), ["a", "b", "c", "d", "e"]);
    assert_eq!(
        take_all(store, v).expect("take"),
        ["v1"],
        "other users untouched"
    );
    // Into an empty queue, and for nobody.
    assert!(store.store_offline_front(u, &["x"]).expect("front"));
    assert_eq!(take_all(store, u).expect("take"), ["x"]);
    assert!(!store.store_offline_front(4242, &["x"]).expect("front"));
}

fn resume_tokens(store: &dyn Store) {
    let (a, b) = (user(store, "tok_a"), user(store, "tok_b"));
    let (one, two, gone) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let now = 1_000_000;
    assert!(store.put_token(a, &one, now + 60, now).unwrap());
    assert!(
        store.put_token(a, &two, now + 120, now).unwrap(),
        "several per user"
    );
    assert!(store.put_token(b, &gone, now + 10, now).unwrap());
    assert_eq!(store.token_user(&one, now).unwrap(), Some(a));
    assert_eq!(store.token_user(&two, now).unwrap(), Some(a));
    assert_eq!(store.token_user(&gone, now).unwrap(), Some(b));
    assert_eq!(store.token_user(&[9u8; 32], now).unwrap(), None, "unknown");
    assert_eq!(store.token_user(&gone, now + 10).unwrap(), None, "expired");
    store.drop_token(&one).unwrap();
    store.drop_token(&one).unwrap();
    assert_eq!(store.token_user(&one, now).unwrap(), None, "revoked");
    assert_eq!(store.token_user(&two, now).unwrap(), Some(a), "others stay");
    // A new token for b clears b's expired one (its digest may then be reused).
    assert!(store.put_token(b, &[4u8; 32], now + 500, now + 20).unwrap());
    assert!(store.put_token(a, &gone, now + 500, now + 20).unwrap());
    assert_eq!(store.token_user(&gone, now + 20).unwrap(), Some(a));
    assert!(
        !store.put_token(999_999, &[5u8; 32], now + 60, now).unwrap(),
        "no such user"
    );
    assert_eq!(store.token_user(&[5u8; 32], now).unwrap(), None);
}

fn offline_to_missing_user(store: &dyn Store) {
    assert!(!store.store_offline(4242, "nobody").expect("store"));
    assert!(take_all(store, 4242).expect("take").is_empty());
}

fn offline_batch(store: &dyn Store) {
    let a = user(store, "a");
    let b = user(store, "b");
    store.store_offline_batch(&[]).expect("empty batch");
    store
        .store_offline_batch(&[(a, "1"), (b, "x"), (a, "2"), (a, "3")])
        .expect("batch");
    // All or none: one bad recipient fails the batch and stores nothing.
    assert!(store
        .store_offline_batch(&[(b, "y"), (9999, "lost")])
        .is_err());
    assert_eq!(take_all(store, a).expect("take"), vec!["1", "2", "3"]);
    assert_eq!(take_all(store, b).expect("take"), vec!["x"]);
}

fn concurrent_stores_during_takes_lose_nothing(store: &dyn Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 500;
    let u = user(store, "busy");
    let done = AtomicBool::new(false);
    let mut takes: Vec<Vec<String>> = Vec::new();

    std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                s.spawn(move || {
                    for i in 0..EACH {
                        assert!(store.store_offline(u, &format!("{t}:{i}")).expect("store"));
                    }
                })
            })
            .collect();
        let taker = s.spawn(|| {
            let mut takes = Vec::new();
            while !done.load(Ordering::Acquire) {
                takes.push(take_all(store, u).expect("take"));
            }
            takes
        });
        // Join every writer before judging any, so that a failing writer still stops the
        // taker instead of leaving the scope waiting on it forever.
        let joined: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::Release);
        takes = taker.join().expect("taker");
        assert!(joined.iter().all(Result::is_ok), "a writer failed");
    });
    takes.push(take_all(store, u).expect("final take"));
    assert!(take_all(store, u).expect("empty take").is_empty());

    let nonempty = takes.iter().filter(|t| !t.is_empty()).count();
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut total = 0;
    for m in takes.iter().flatten() {
        let (t, i) = m.split_once(':').expect("own format");
        let (t, i): (usize, usize) = (t.parse().expect("thread"), i.parse().expect("seq"));
        let expected = next.entry(t).or_insert(0);
        assert_eq!(
            i, *expected,
            "thread {t}: lost, duplicated or reordered message"
        );
        *expected += 1;
        total += 1;
    }
    assert_eq!(total, WRITERS * EACH);
    assert!((0..WRITERS).all(|t| next.get(&t) == Some(&EACH)));
    eprintln!(
        "{} messages arrived over {nonempty} non-empty takes",
        WRITERS * EACH
    );
}

// ---------------------------------------------------------------------------------------
// Persistence: data outlives the store value.

fn write_some(store: &dyn Store) -> (UserId, i64) {
    let a = user(store, "kept");
    let b = user(store, "friend");
    assert!(matches!(
        store.add_friend(a, b).expect("add"),
        FriendAdd::Added { .. }
    ));
    let g = store
        .create_group(a, "club", "d")
        .expect("create")
        .expect("free");
    assert!(store.store_offline(a, "still here").expect("store"));
    (a, g)
}

fn check_some(store: &dyn Store, (a, g): (UserId, i64)) {
    assert_eq!(store.user_name(a).expect("name").as_deref(), Some("kept"));
    assert_eq!(store.friends(a).expect("friends").len(), 1);
    assert_eq!(store.group_member_ids(g).expect("ids"), Some(vec![a]));
    assert_eq!(take_all(store, a).expect("take"), vec!["still here"]);
    // Ids keep growing after a reopen.
    assert!(user(store, "newcomer") > a);
}

#[test]
fn sqlite_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("chat.db").display());
    let ids = write_some(&*store::open(&url, 2).expect("open"));
    let reopened: Arc<dyn Store> = store::open(&url, 2).expect("reopen");
    check_some(&*reopened, ids);
}

#[test]
fn mysql_persists_across_reopen() {
    let Some(db) = TempDatabase::new("mysql_persists_across_reopen") else {
        return;
    };
    let ids = write_some(&*store::open(&db.url, 2).expect("open"));
    let reopened = store::open(&db.url, 2).expect("reopen");
    check_some(&*reopened, ids);
}

#[test]
fn bad_urls_are_config_errors() {
    for url in [
        "",
        "postgres://x/y",
        "sqlite:",
        "mysql://root@127.0.0.1:1/bad-name",
    ] {
        match store::open(url, 2) {
            Err(store::StoreError::Config(msg)) => assert!(!msg.is_empty()),
            Err(e) => panic!("{url:?}: expected a configuration error, got {e}"),
            Ok(_) => panic!("{url:?}: expected a configuration error"),
        }
    }
    assert!(matches!(
        store::open("sqlite:x.db", 0),
        Err(store::StoreError::Config(_))
    ));
}
