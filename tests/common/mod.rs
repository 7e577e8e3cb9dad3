//! Helpers shared by the integration tests: services, a server process, a protocol client.
#![allow(dead_code)]

pub mod client;
pub mod cluster;
pub mod private_mysql;
pub mod seeds_client;
pub mod server;
pub mod services;

/// Instantiates each `fn case(backend: Backend)` as two tests, `sqlite::case` and
/// `mysql::case` (the latter skipped, or failed under CHATSERVER_REQUIRE_SERVICES=1, when
/// MariaDB is not there). Use with `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    super::$case($crate::common::server::Backend::sqlite());
                }
            )*
        }
        mod mysql {
            $(
                #[test]
                fn $case() {
                    let test = concat!("mysql::", stringify!($case));
                    if let Some(backend) = $crate::common::server::Backend::mysql(test) {
                        super::$case(backend);
                    }
                }
            )*
        }
    };
}
