//! Additive-increase, multiplicative-decrease concurrency for blob transfers to one registry host:
//! the window halves when the registry answers 429 or 503 and grows by one after a window's worth
//! of requests go through without, so a busy registry is eased off and a quiet one filled.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Transfers allowed at first.
const INITIAL: usize = 16;
/// The most the window grows to.
const MAXIMUM: usize = 64;

#[derive(Debug)]
struct Window {
    limit: usize,
    in_use: usize,
    /// Successes since the window last grew.
    streak: usize,
}

/// The window of one host.
#[derive(Debug)]
pub struct Throttle {
    window: Mutex<Window>,
    freed: Notify,
}

/// A transfer slot, returned when dropped.
pub struct Permit {
    throttle: Arc<Throttle>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut window = self.throttle.lock();
        window.in_use -= 1;
        drop(window);
        self.throttle.freed.notify_one();
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            window: Mutex::new(Window {
                limit: INITIAL,
                in_use: 0,
                streak: 0,
            }),
            freed: Notify::new(),
        }
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let freed = self.freed.notified();
            {
                let mut window = self.lock();
                if window.in_use < window.limit {
                    window.in_use += 1;
                    return Permit {
                        throttle: self.clone(),
                    };
                }
            }
            freed.await;
        }
    }

    /// The registry asked to slow down.
    pub fn congested(&self) {
        let mut window = self.lock();
        window.limit = (window.limit / 2).max(1);
        window.streak = 0;
        tracing::debug!(
            limit = window.limit,
            "registry congested; fewer transfers at once"
        );
    }

    /// A request went through.
    pub fn succeeded(&self) {
        let mut window = self.lock();
        window.streak += 1;
        if window.streak >= window.limit && window.limit < MAXIMUM {
            window.limit += 1;
            window.streak = 0;
        }
        drop(window);
        self.freed.notify_one();
    }

    #[cfg(test)]
    fn limit(&self) -> usize {
        self.lock().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn halves_on_congestion_and_grows_back() {
        let throttle = Arc::new(Throttle::default());
        throttle.congested();
        throttle.congested();
        assert_eq!(throttle.limit(), INITIAL / 4);
        for _ in 0..INITIAL / 4 {
            throttle.succeeded();
        }
        assert_eq!(throttle.limit(), INITIAL / 4 + 1);
        for _ in 0..10 {
            throttle.congested();
        }
        assert_eq!(throttle.limit(), 1, "never below one");

        let first = throttle.acquire().await;
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), throttle.acquire()).await;
        assert!(
            blocked.is_err(),
            "a second transfer waits while the window is one"
        );
        drop(first);
        let _second = tokio::time::timeout(std::time::Duration::from_secs(1), throttle.acquire())
            .await
            .unwrap();
    }
}
