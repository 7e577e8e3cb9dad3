//! chat-bench against a real server: each scenario for a second, with sane numbers in its JSON.

mod common;

use common::server::{Backend, Server};
use serde_json::Value;
use std::process::Command;

/// Runs chat-bench with `args` against `server`; returns its JSON report.
fn bench(server: &Server, args: &[&str]) -> Value {
    let target = server.addr.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .args(["--target", &target, "--threads", "2", "--json", "--quiet"])
        .args([
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--setup-timeout",
            "60",
        ])
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chat-bench {args:?} failed: {}\n{stdout}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A timed scenario: something was measured, nothing lost, percentiles in order.
fn assert_sane(report: &Value) {
    let n = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    assert!(n("count") > 0.0, "{report}");
    assert!(n("rate_per_s") > 0.0, "{report}");
    assert_eq!(n("lost"), 0.0, "{report}");
    assert_eq!(n("errors"), 0.0, "{report}");
    let lat = &report["latency"];
    let p = |k: &str| lat[k].as_f64().unwrap_or_else(|| panic!("{k} in {lat}"));
    assert!(p("p50_us") > 0.0, "{lat}");
    assert!(p("p50_us") <= p("p90_us"), "{lat}");
    assert!(p("p90_us") <= p("p99_us"), "{lat}");
    assert!(p("p99_us") <= p("p999_us"), "{lat}");
    assert!(p("p999_us") <= p("max_us"), "{lat}");
}

#[test]
fn every_scenario_reports_sane_numbers() {
    let mut server = Server::start(&Backend::sqlite(), &["--threads", "2"]);
    let pid = server.pid().to_string();

    let reg = bench(&server, &["reg", "--connections", "4"]);
    assert_sane(&reg);
    assert_eq!(reg["unit"], "registrations");

    let login = bench(&server, &["login", "--connections", "4"]);
    assert_sane(&login);

    // Resume tokens: a password login each in the set-up, then token logins, one per connection.
    let token = bench(&server, &["login", "--connections", "4", "--token"]);
    assert_sane(&token);
    assert_eq!(
        token["mode"], "resume token, reconnect per login",
        "{token}"
    );

    let chat = bench(&server, &["chat", "--pairs", "4", "--size", "100"]);
    assert_sane(&chat);
    assert_eq!(chat["size"], 100);

    let pipelined = bench(&server, &["chat", "--pairs", "2", "--inflight", "8"]);
    assert_sane(&pipelined);

    // Acknowledged delivery: the receivers ack every read; nothing lost, no error reply.
    let acked = bench(
        &server,
        &["chat", "--pairs", "2", "--inflight", "8", "--acks"],
    );
    assert_sane(&acked);
    assert_eq!(acked["acks"], true, "{acked}");
    assert_eq!(pipelined["acks"], false, "{pipelined}");

    let acked_group = bench(
        &server,
        &[
            "group",
            "--members",
            "4",
            "--senders",
            "2",
            "--inflight",
            "2",
            "--acks",
        ],
    );
    assert_sane(&acked_group);

    let group = bench(
        &server,
        &[
            "group",
            "--members",
            "6",
            "--senders",
            "2",
            "--inflight",
            "2",
        ],
    );
    assert_sane(&group);
    assert!(group["messages_per_s"].as_f64().unwrap() > 0.0, "{group}");

    let idle = bench(
        &server,
        &[
            "idle",
            "--connections",
            "20",
            "--server-pid",
            &pid,
            "--drop",
        ],
    );
    assert_eq!(idle["connections"], 20);
    assert_eq!(idle["closed"], 0, "{idle}");
    assert!(
        idle["server_rss_logged_in_kib"].as_u64().unwrap() > 0,
        "{idle}"
    );
    assert!(idle["drop_clean_ms"].as_f64().unwrap() >= 0.0, "{idle}");
    assert!(idle["drop_probes"].as_u64().unwrap() > 0, "{idle}");

    assert!(server.is_running(), "server died: {}", server.log());
    assert_eq!(server.stop(), Some(0), "{}", server.log());
}
