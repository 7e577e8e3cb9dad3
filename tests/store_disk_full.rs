//! SQLite on a full disk (a 3 MiB tmpfs of the test's own): messages for an offline user that
//! no longer fit are retried, then their sender is told which ones were lost (errno 19 with
//! the mid); none is lost silently: every accepted message is either delivered at the next
//! login or named in an error. Once space is freed, service returns without a restart.

mod common;

use common::client::{unique, Client};
use common::server::{Backend, Server};
use common::services::skip_or_fail;
use serde_json::Value;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(test: &str, size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return skip_or_fail(test, "cannot mount a tmpfs (not root?)");
        }
        Some(SmallDisk { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn offline_messages(ack: &Value) -> Vec<Value> {
    ack["offlinemsg"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| serde_json::from_str(s.as_str().unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn full_disk_loses_nothing_silently() {
    let Some(disk) = SmallDisk::mount("full_disk_loses_nothing_silently", "3m") else {
        return;
    };
    // Room to free later, so the test can show the service coming back by itself.
    let filler = disk.path("filler");
    std::fs::write(&filler, vec![7u8; 1 << 20]).expect("filler");
    let dir = tempfile::TempDir::new_in(disk.path("")).expect("db dir");
    let backend = Backend::Sqlite(Arc::new(dir));
    let server = Server::start(&backend, &["--store-retry-secs", "2"]);
    let addr = server.addr;
    let ida = Client::connect(addr).register(&unique("a"), "pw");
    let idc = Client::connect(addr).register(&unique("c"), "pw");
    let mut a = Client::connect(addr);
    assert_eq!(a.login(ida, "pw")["errno"], 0);

    // 60 messages of 40 KB for C (offline): about 2.4 MB, more than the disk has left.
    let big = "z".repeat(40_000);
    let mut accepted = Vec::new();
    for i in 0..60 {
        let cid = format!("f{i}");
        a.send_built(|o| {
            chatserver::protocol::build::one_chat_cid(o, (ida, "a"), idc, &big, "t", &cid)
        });
        let ack = a
            .wait_for(Duration::from_secs(10), |v| {
                v["msgid"] == 28 && v["cid"] == cid.as_str()
            })
            .expect("SEND_ACK");
        accepted.push(ack["mid"].as_u64().unwrap());
    }
    // The ones that did not fit are named to the sender once their retries ran out.
    let mut lost = HashSet::new();
    while let Some(e) = a.wait_for(Duration::from_secs(6), |v| v["msgid"] == 11) {
        assert_eq!(e["errno"], 19, "{e}");
        lost.insert(e["mid"].as_u64().expect("the error names the message"));
    }
    assert!(
        !lost.is_empty(),
        "the disk never filled up: {}",
        server.log()
    );

    // Space comes back: C's login (which deletes what it takes) and new messages work again.
    std::fs::remove_file(&filler).expect("free space");
    let mut c = Client::connect(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    let ack = loop {
        let ack = c.login(idc, "pw");
        if ack["errno"] == 0 {
            break ack;
        }
        assert!(
            Instant::now() < deadline,
            "no login after space came back: {ack}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut got: Vec<u64> = offline_messages(&ack)
        .iter()
        .map(|v| v["mid"].as_u64().unwrap())
        .collect();
    while let Some(v) = c.wait_for(Duration::from_secs(3), |v| v["msgid"] == 6) {
        got.push(v["mid"].as_u64().unwrap());
    }
    let got_set: HashSet<u64> = got.iter().copied().collect();
    assert_eq!(got_set.len(), got.len(), "delivered twice");
    for mid in &accepted {
        assert!(
            got_set.contains(mid) != lost.contains(mid),
            "message {mid}: delivered {} and reported lost {}\n{}",
            got_set.contains(mid),
            lost.contains(mid),
            server.log()
        );
    }
    eprintln!(
        "accepted {}, stored and delivered {}, reported lost {}",
        accepted.len(),
        got.len(),
        lost.len()
    );
    drop(c);
    // Writes work again without a restart.
    a.chat(ida, idc, "after");
    drop(server);
}
