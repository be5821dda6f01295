//! One worker per key: the first caller for a key does the work, later callers wait for its outcome.
//! A worker that fails or is cancelled (its future dropped, as when another image of its root failed)
//! wakes the waiters, and the first of them takes over: nobody waits on work that no one is doing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::watch;

/// Keys being worked on, and the outcomes of finished work.
pub(crate) struct Flights<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
}

enum Slot<V> {
    /// Someone works on it; the channel closes when they stop, whatever the outcome.
    Running(watch::Receiver<()>),
    Done(V),
}

/// What [`Flights::claim`] found.
pub(crate) enum Turn<'a, K: Eq + Hash + Clone, V: Clone> {
    /// Another caller finished the work with this outcome.
    Done(V),
    /// The work is this caller's; complete the claim, or drop it to hand the work on.
    Mine(Claim<'a, K, V>),
}

/// The right to do the work for one key.
pub(crate) struct Claim<'a, K: Eq + Hash + Clone, V: Clone> {
    flights: &'a Flights<K, V>,
    key: K,
    /// Dropped after the slot is updated, which wakes the waiters.
    _running: watch::Sender<()>,
    completed: bool,
}

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    pub fn new() -> Flights<K, V> {
        Flights {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot<V>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outcome for `key` if the work is done, else the right to do it, waiting while another
    /// caller works on it.
    pub async fn claim(&self, key: K) -> Turn<'_, K, V> {
        loop {
            let mut running = {
                let mut slots = self.slots();
                match slots.get(&key) {
                    Some(Slot::Done(outcome)) => return Turn::Done(outcome.clone()),
                    Some(Slot::Running(running)) => running.clone(),
                    None => {
                        let (sender, receiver) = watch::channel(());
                        slots.insert(key.clone(), Slot::Running(receiver));
                        return Turn::Mine(Claim {
                            flights: self,
                            key,
                            _running: sender,
                            completed: false,
                        });
                    }
                }
            };
            // Returns when the worker's claim ends: completed, failed or cancelled. Look again.
            let _ = running.changed().await;
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Claim<'_, K, V> {
    /// Records the outcome for every later caller.
    pub fn complete(mut self, outcome: V) {
        self.flights
            .slots()
            .insert(self.key.clone(), Slot::Done(outcome));
        self.completed = true;
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Claim<'_, K, V> {
    fn drop(&mut self) {
        if !self.completed {
            self.flights.slots().remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_get_the_outcome_of_the_one_worker() {
        let flights = Flights::<&str, u32>::new();
        let workers = AtomicUsize::new(0);
        let work = || async {
            match flights.claim("blob").await {
                Turn::Done(outcome) => outcome,
                Turn::Mine(claim) => {
                    workers.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    claim.complete(7);
                    7
                }
            }
        };
        let outcomes = futures_util::future::join_all((0..5).map(|_| work())).await;
        assert_eq!(outcomes, [7; 5]);
        assert_eq!(workers.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_worker_hands_the_work_to_a_waiter() {
        let flights = Arc::new(Flights::<&str, u32>::new());
        let Turn::Mine(first) = flights.claim("blob").await else {
            panic!("the first caller works")
        };
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move {
                match flights.claim("blob").await {
                    Turn::Mine(claim) => {
                        claim.complete(2);
                        "took over"
                    }
                    Turn::Done(_) => "found it done",
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first); // failed, or its future was dropped
        let outcome = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter does not hang")
            .unwrap();
        assert_eq!(outcome, "took over");
        assert!(matches!(flights.claim("blob").await, Turn::Done(2)));
    }

    #[tokio::test]
    async fn a_cancelled_worker_wakes_its_waiters() {
        let flights = Arc::new(Flights::<&str, u32>::new());
        let worker = tokio::spawn({
            let flights = flights.clone();
            async move {
                let _claim = flights.claim("blob").await;
                std::future::pending::<()>().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiter = tokio::spawn({
            let flights = flights.clone();
            async move { matches!(flights.claim("blob").await, Turn::Mine(_)) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        worker.abort();
        let took_over = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter does not hang")
            .unwrap();
        assert!(took_over);
    }
}
