//! `./bin/server [IP PORT] [--listen ADDR] [--threads N] [--db URL] [--config FILE] ...`

use chatserver::config::{Config, USAGE};

fn main() {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("server: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&config.log))
        .format_timestamp_millis()
        .init();
    if let Err(e) = chatserver::app::run(config) {
        log::error!("{e}");
        std::process::exit(1);
    }
}
