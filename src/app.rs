//! The server process: wires store, chat service, loops and signals from a `Config`.

use crate::chat::{ChatConfig, ChatHandler, ChatService};
use crate::cluster::{Bus, LocalBus, RedisBus};
use crate::config::Config;
use crate::net::{
    block_termination_signals, EventLoop, EventLoopThreadPool, ServerOptions, TcpServer,
};
use crate::store::{self, PasswordHasher};
use std::sync::Arc;
use std::time::Duration;

/// How long a graceful stop waits for connections to take what they are owed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the server until SIGINT/SIGTERM; `Err` carries a message for the operator.
pub fn run(config: Config) -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask (see signals.rs).
    let signals = block_termination_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    let store = store::open(&config.db, config.store_workers + 1)
        .map_err(|e| format!("database {}: {e}", config.db))?;
    let hasher = PasswordHasher::new(
        config.argon2_m_cost_kib,
        config.argon2_t_cost,
        config.argon2_p_cost,
    )
    .map_err(|e| format!("argon2 settings: {e}"))?;
    let chat_config = ChatConfig {
        max_frame: config.max_frame,
        login_idle: config.login_idle,
        login_deadline: config.login_deadline,
        seeds_frame_gap: config.seeds_frame_gap,
        store_workers: config.store_workers,
        output_high_water: config.output_high_water,
        slow_reader_deadline: config.slow_reader_deadline,
        heartbeat: config.heartbeat,
        token_ttl: config.token_ttl,
        store_retry: config.store_retry,
        store_queue_high: config.store_queue_high,
    };
    let bus: Arc<dyn Bus> = match &config.redis {
        Some(url) => {
            RedisBus::new(url, &config.server_name()).map_err(|e| format!("--redis {url}: {e}"))?
        }
        None => Arc::new(LocalBus::default()),
    };
    let svc = ChatService::new(chat_config, store, hasher, bus)
        .map_err(|e| format!("service threads: {e}"))?;

    let mut base = EventLoop::new(0).map_err(|e| format!("event loop: {e}"))?;
    let pool = EventLoopThreadPool::start(config.threads, "io")
        .map_err(|e| format!("I/O threads: {e}"))?;
    let mut loops = vec![base.handle()];
    loops.extend(pool.handles());
    svc.set_loops(loops);

    let handler = Arc::new(ChatHandler::new(svc.clone()));
    let server = TcpServer::start(
        &mut base,
        config.listen,
        ServerOptions::default(),
        handler,
        pool.handles(),
    )
    .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    log::info!(
        "listening on {} ({} I/O threads, {} store workers, {} store, {})",
        server.local_addr(),
        config.threads,
        config.store_workers,
        config.db.split(':').next().unwrap_or("?"),
        match &config.redis {
            Some(url) => format!("cluster member '{}' via {url}", config.server_name()),
            None => "single node".to_owned(),
        }
    );

    let stop_svc = svc.clone();
    let mut server = Some(server);
    base.watch_signals(&signals, move |lp, signal| {
        let Some(server) = server.take() else {
            log::info!("{signal:?}: already stopping");
            return;
        };
        log::info!("{signal:?}: stopping (in-flight output gets {STOP_GRACE:?})");
        stop_svc.begin_stop();
        // Queued behind the shutdown notices begin_stop queued on every loop, this one too.
        lp.handle()
            .queue_in_loop(move |lp| server.stop(lp, STOP_GRACE));
    })
    .map_err(|e| format!("signalfd: {e}"))?;

    base.run();
    pool.join();
    svc.finish_stop();
    log::info!("stopped");
    Ok(())
}
