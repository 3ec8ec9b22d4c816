//! Signals a daemon receives: SIGTERM and SIGINT stop the broker (after draining requests in
//! flight), SIGHUP re-reads every secret now and changes nothing else, as daemons under systemd
//! or on EC2 are expected to behave.

use tokio::signal::unix::{signal, Signal as Stream, SignalKind};

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
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
