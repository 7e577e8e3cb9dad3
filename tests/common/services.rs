//! External services the integration tests may use (MariaDB), found or skipped uniformly.
#![allow(dead_code)]

use std::time::Duration;

/// Base URL of the test MariaDB, without a database: tests create their own databases.
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";

/// `CHATSERVER_REQUIRE_SERVICES=1` turns a missing service into a test failure, so CI
/// cannot pass by skipping everything.
pub fn services_required() -> bool {
    std::env::var("CHATSERVER_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The MariaDB base URL (`CHATSERVER_MYSQL_URL` or [`DEFAULT_MYSQL_URL`]) if a server answers
/// there; otherwise prints `SKIPPED <test>: ...` and returns None, or panics when services
/// are required.
pub fn mysql_url_or_skip(test: &str) -> Option<String> {
    let url = std::env::var("CHATSERVER_MYSQL_URL").unwrap_or_else(|_| DEFAULT_MYSQL_URL.into());
    match try_mysql(&url) {
        Ok(()) => Some(url),
        Err(why) => skip_or_fail(test, &format!("MariaDB not reachable at {url} ({why})")),
    }
}

fn try_mysql(url: &str) -> Result<(), String> {
    let opts = mysql::Opts::from_url(url).map_err(|e| format!("bad URL: {e}"))?;
    let opts = mysql::OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(2)))
        .read_timeout(Some(Duration::from_secs(5)));
    mysql::Conn::new(opts).map(drop).map_err(|e| e.to_string())
}

pub fn skip_or_fail<T>(test: &str, reason: &str) -> Option<T> {
    if services_required() {
        panic!("{test}: {reason}, and CHATSERVER_REQUIRE_SERVICES=1 requires it");
    }
    // Straight to the stderr handle: the eprintln! macro is captured by the test harness,
    // and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    None
}
