//! Signals a daemon receives: SIGTERM and SIGINT stop the broker (after draining requests in
//! flight), SIGHUP re-reads every secret now and changes nothing else, as daemons under systemd
//! or on EC2 are expected to behave.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal as Stream, SignalKind};
use tokio::task::JoinHandle;

use super::Broker;

/// What a signal asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the secrets now.
    Reload,
    /// SIGTERM or SIGINT: drain and stop.
    Stop,
}

/// The installed handlers. Install them before the port opens, so that a signal arriving early
/// is handled rather than killing the process.
pub struct Signals {
    term: Stream,
    int: Stream,
    hup: Stream,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The one signal loop of every process serving a broker (the extension, `serve`, `dev`):
    /// SIGHUP re-reads every account's source in the background, one re-read at a time (a
    /// SIGHUP during one is folded into it); resolves at SIGTERM or SIGINT, without waiting for
    /// a re-read, and the caller drains.
    pub async fn until_stop(mut self, broker: Arc<Broker>) {
        let mut rereading: Option<JoinHandle<()>> = None;
        loop {
            match self.next().await {
                Signal::Reload if rereading.as_ref().is_none_or(JoinHandle::is_finished) => {
                    let broker = broker.clone();
                    rereading = Some(tokio::spawn(async move { broker.reload_all().await }));
                }
                Signal::Reload => tracing::info!("SIGHUP: a re-read is already running"),
                Signal::Stop => return,
            }
        }
    }

    /// The next signal.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
