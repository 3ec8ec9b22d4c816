//! `Connections`: the open connections, bounded. At the cap a newcomer takes the place of the
//! least recently active idle connection (as nginx reuses keep-alive connections when it runs out),
//! so thousands of idle or slow connections cannot lock out a fresh request; when every connection
//! is busy in a request, the newcomer is refused. The table also closes connections left idle
//! (a slow request head, a keep-alive connection nobody uses) and drives the drain on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// Sweeps per idle timeout: a connection idle for the timeout is closed within a quarter more.
const SWEEPS_PER_TIMEOUT: u32 = 4;

/// Every open connection's activity, and the cap.
pub struct Connections {
    max: usize,
    table: Mutex<Table>,
    /// Signalled whenever the table becomes empty.
    emptied: Notify,
    /// Signalled when a connection opens, so the idle sweep rests while none is open.
    opened: Notify,
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
    /// The activity word the last idle sweep saw, and for how many sweeps since it has not changed.
    seen: u64,
    unchanged: u32,
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

    /// The whole word: it changes whenever a request starts or ends.
    fn word(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn busy(&self) -> bool {
        self.word() & 1 == 1
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
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::default(),
            emptied: Notify::new(),
            opened: Notify::new(),
            sequence: AtomicU64::new(0),
        })
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
        if table.open.is_empty() {
            self.opened.notify_one();
        }
        // No idle word is odd: the first sweep sees a change and starts counting from there.
        table.open.insert(id, Entry { activity: activity.clone(), close: close.clone(), seen: u64::MAX, unchanged: 0 });
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
        self.opened.notify_one(); // the idle sweep ends
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

    /// Closes every connection that has been idle for `timeout`: no request being answered, and
    /// none started or ended, since it opened or its last answer ended. That is a request head
    /// that never completes (slowloris) as much as a keep-alive connection nobody uses. One sweep
    /// every quarter of `timeout` while connections are open, instead of a timer per request:
    /// the request path reads no clock and arms nothing. Ends when the table drains.
    pub async fn close_idle(&self, timeout: Duration) {
        let every = (timeout / SWEEPS_PER_TIMEOUT).max(Duration::from_millis(1));
        loop {
            if self.table().draining {
                return;
            }
            if self.is_empty() {
                self.opened.notified().await;
            }
            tokio::time::sleep(every).await;
            self.sweep();
        }
    }

    /// One idle sweep: a connection seen idle with the same activity for [`SWEEPS_PER_TIMEOUT`]
    /// sweeps after the one that saw it change has been idle for at least the timeout (at most
    /// a sweep more), and is told to close.
    fn sweep(&self) {
        let mut table = self.table();
        table.open.retain(|_, entry| {
            let word = entry.activity.word();
            if word & 1 == 1 || word != entry.seen {
                (entry.seen, entry.unchanged) = (word, 0);
                return true;
            }
            entry.unchanged += 1;
            if entry.unchanged < SWEEPS_PER_TIMEOUT {
                return true;
            }
            entry.close.notify_one();
            false
        });
        if table.open.is_empty() {
            self.emptied.notify_waiters();
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
    async fn a_connection_idle_for_the_timeout_is_closed_and_a_busy_one_never() {
        let c = Connections::new(8);
        let sweeping = tokio::spawn({
            let c = c.clone();
            async move { c.close_idle(Duration::from_secs(4)).await }
        });
        let closed = |a: &Admitted| {
            let close = a.close.clone();
            async move { tokio::time::timeout(Duration::ZERO, close.notified()).await.is_ok() }
        };
        // Sweeps every second from the first admission: at 1, 2, 3 s...
        let (idle, busy, used) = (c.admit().unwrap(), c.admit().unwrap(), c.admit().unwrap());
        busy.busy();
        tokio::time::sleep(Duration::from_millis(3300)).await;
        used.busy();
        used.done(); // its last answer ended at 3.3 s: idle from then
        tokio::time::sleep(Duration::from_millis(2200)).await; // 5.5 s
        assert!(closed(&idle).await, "idle since it opened, closed at 5 s");
        assert!(!closed(&busy).await && !closed(&used).await);
        assert_eq!(c.len(), 2);
        tokio::time::sleep(Duration::from_secs(3)).await; // 8.5 s
        assert!(closed(&used).await, "idle since 3.3 s, closed at 8 s");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!closed(&busy).await, "a request being answered is never cut off here");
        busy.done(); // 68.5 s
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!closed(&busy).await, "3.5 s idle is under the timeout");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(closed(&busy).await, "closed at 73 s, 4.5 s idle");
        assert!(c.is_empty(), "the table let them all go");
        // With nothing open the sweep rests; a newcomer wakes it.
        let late = c.admit().unwrap();
        tokio::time::sleep(Duration::from_millis(3900)).await;
        assert!(!closed(&late).await, "not before the timeout");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(closed(&late).await, "at most a sweep after it");
        drop((idle, busy, used, late));
        c.drain();
        c.admit().err().unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(sweeping.is_finished(), "the sweep ends once the table drains");
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
