//! `Connections`: the open connections, bounded. At the cap a newcomer takes the place of the
//! least recently active idle connection (as nginx reuses keep-alive connections when it runs out),
//! so thousands of idle or slow connections cannot lock out a fresh request; when every connection
//! is busy in a request, the newcomer is refused. The table also drives the drain on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Every open connection's activity, and the cap.
pub struct Connections {
    max: usize,
    table: Mutex<Table>,
    /// Signalled whenever the table becomes empty.
    emptied: Notify,
    /// Orders activity across connections: each request start and end takes the next number.
    /// A counter, not a clock, so the per-request path takes no lock and reads no time.
    sequence: AtomicU64,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
    draining: bool,
}

struct Entry {
    activity: Arc<Activity>,
    close: Arc<Notify>,
}

/// A connection's latest activity: the sequence number of when a request last started or ended
/// on it (or it opened), shifted left by one, with the low bit set while a request is being
/// answered (it must not be closed under it). One word, so it is updated without a lock.
#[derive(Default)]
struct Activity(AtomicU64);

impl Activity {
    fn set(&self, sequence: u64, busy: bool) {
        self.0.store(sequence << 1 | u64::from(busy), Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) & 1 == 1
    }

    fn last_active(&self) -> u64 {
        self.0.load(Ordering::Relaxed) >> 1
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// Every one of the `max` connections is busy answering a request.
    Full { max: usize },
    /// The broker is shutting down.
    Draining,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    id: u64,
    connections: Arc<Connections>,
    activity: Arc<Activity>,
    /// Notified when the connection must close: evicted, or draining.
    pub close: Arc<Notify>,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max: max.max(1), table: Mutex::default(), emptied: Notify::new(), sequence: AtomicU64::new(0) })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        crate::lock(&self.table)
    }

    /// Admits a new connection, closing the least recently active idle one when at the cap.
    pub fn admit(self: &Arc<Self>) -> Result<Admitted, NoRoom> {
        let mut table = self.table();
        if table.draining {
            return Err(NoRoom::Draining);
        }
        if table.open.len() >= self.max {
            let victim = table
                .open
                .iter()
                .filter(|(_, e)| !e.activity.busy())
                .min_by_key(|(_, e)| e.activity.last_active())
                .map(|(id, _)| *id);
            match victim.and_then(|id| table.open.remove(&id)) {
                // Its task sees the signal and drops the connection.
                Some(evicted) => evicted.close.notify_one(),
                None => return Err(NoRoom::Full { max: self.max }),
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let close = Arc::new(Notify::new());
        let activity = Arc::new(Activity::default());
        activity.set(self.next_sequence(), false);
        table.open.insert(id, Entry { activity: activity.clone(), close: close.clone() });
        Ok(Admitted { id, connections: self.clone(), activity, close })
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.table().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops admitting, and tells every connection to close (busy ones after their answer).
    pub fn drain(&self) {
        let mut table = self.table();
        table.draining = true;
        for entry in table.open.values() {
            entry.close.notify_one();
        }
    }

    /// Resolves once no connection is open.
    pub async fn closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }

    fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }
}

impl Admitted {
    /// Marks a request as being answered (the connection is not idle until [`Self::done`]).
    pub fn busy(&self) {
        self.activity.set(self.connections.next_sequence(), true);
    }

    /// Marks the answer as written: the connection is idle again.
    pub fn done(&self) {
        self.activity.set(self.connections.next_sequence(), false);
    }

    /// Whether a request is being answered on it now.
    pub fn is_busy(&self) -> bool {
        self.activity.busy()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.connections.table();
        table.open.remove(&self.id);
        if table.open.is_empty() {
            self.connections.emptied.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_least_recently_active_idle_connection_makes_room() {
        let c = Connections::new(3);
        let a = c.admit().unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let b = c.admit().unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let d = c.admit().unwrap();
        a.busy(); // a is the oldest, but busy: b goes
        let e = c.admit().unwrap();
        assert_eq!(c.len(), 3);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(1), b.close.notified()).await.is_ok());
        assert!(tokio::time::timeout(std::time::Duration::from_millis(1), d.close.notified()).await.is_err());
        drop(b); // its task ends; the table already let it go
        assert_eq!(c.len(), 3);
        d.busy();
        e.busy();
        assert_eq!(c.admit().err(), Some(NoRoom::Full { max: 3 }));
        e.done();
        assert!(c.admit().is_ok(), "an idle connection makes room again");
        drop((a, d));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_closes_everything_and_refuses_newcomers() {
        let c = Connections::new(4);
        let (a, b) = (c.admit().unwrap(), c.admit().unwrap());
        c.drain();
        assert_eq!(c.admit().err(), Some(NoRoom::Draining));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(1), a.close.notified()).await.is_ok());
        let closed = tokio::spawn({
            let c = c.clone();
            async move { c.closed().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!closed.is_finished());
        drop(b);
        closed.await.unwrap();
    }
}
