//! When an issuer's JWKS may be fetched again: one fetch at a time (callers that find an
//! unknown `kid` meanwhile wait for it instead of fetching too), and at most once per
//! [`MIN_INTERVAL`], since unauthenticated requests are what ask for it.

use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

/// Least time between two fetches of one issuer's keys.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// The fetch gate of one issuer.
#[derive(Debug, Default)]
pub struct RefreshGate {
    last: Mutex<Option<Instant>>,
}

/// Permission to fetch now, held while fetching (others wait); the interval counts from when
/// it was given, so a failed fetch waits its interval too.
pub struct Permit<'a> {
    _held: MutexGuard<'a, Option<Instant>>,
}

impl RefreshGate {
    /// Waits for a fetch in progress, then allows one unless the last one was less than
    /// [`MIN_INTERVAL`] ago (`None`: use the keys as they are).
    pub async fn begin(&self) -> Option<Permit<'_>> {
        let mut last = self.last.lock().await;
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < MIN_INTERVAL) {
            return None;
        }
        *last = Some(now);
        Some(Permit { _held: last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_fetch_per_interval_whatever_the_callers() {
        let gate = std::sync::Arc::new(RefreshGate::default());
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (gate, fetches) = (gate.clone(), fetches.clone());
            tasks.push(tokio::spawn(async move {
                if let Some(_permit) = gate.begin().await {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(MIN_INTERVAL / 2).await;
        assert!(gate.begin().await.is_none(), "too soon");
        tokio::time::advance(MIN_INTERVAL).await;
        assert!(
            gate.begin().await.is_some(),
            "a rotated key is fetched after the interval"
        );
    }
}
