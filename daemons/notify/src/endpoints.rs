//! Per-endpoint limits: at most N deliveries in flight to one endpoint, and a circuit breaker
//! that, after consecutive failures, holds the endpoint's deliveries back (without spending
//! their attempts) until a single probe succeeds. One dead endpoint therefore occupies a few
//! slots, never the whole daemon.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dss_config::NotifyConfig;
use dss_core::clock::millis;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a delivery waits for a free slot of its endpoint before it is put back.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// The endpoint of a URL: scheme, host and port.
pub fn endpoint_of(url: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until_ms: Option<i64>,
    times_opened: u32,
    probing: bool,
}

#[derive(Debug)]
struct Endpoint {
    slots: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
}

/// Whether a delivery may go now.
#[derive(Debug)]
pub enum Admission {
    /// Go; report the result with [`Endpoints::report`].
    Go(Pass),
    /// Try again after this long (no attempt is spent).
    Wait(Duration),
}

/// A slot of an endpoint, held while a delivery is in flight.
#[derive(Debug)]
pub struct Pass {
    endpoint: Arc<Endpoint>,
    probe: bool,
    _slot: OwnedSemaphorePermit,
}

/// The endpoints seen so far.
#[derive(Debug)]
pub struct Endpoints {
    per_endpoint: usize,
    failures_to_open: u32,
    cooldown: Duration,
    map: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl From<&NotifyConfig> for Endpoints {
    fn from(c: &NotifyConfig) -> Self {
        Self {
            per_endpoint: c.endpoint_concurrency,
            failures_to_open: c.breaker_failures,
            cooldown: Duration::from_secs(c.breaker_cooldown_secs),
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl Endpoints {
    /// Asks to deliver to `endpoint` at `now_ms`.
    pub async fn admit(&self, endpoint: &str, now_ms: i64) -> Admission {
        let ep = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint.to_string())
            .or_insert_with(|| {
                Arc::new(Endpoint {
                    slots: Arc::new(Semaphore::new(self.per_endpoint.max(1))),
                    breaker: Mutex::new(Breaker::default()),
                })
            })
            .clone();
        let probe = {
            let mut b = ep.breaker.lock().unwrap_or_else(|p| p.into_inner());
            match b.open_until_ms {
                Some(until) if now_ms < until => {
                    return Admission::Wait(Duration::from_millis((until - now_ms) as u64));
                }
                Some(_) if b.probing => return Admission::Wait(self.cooldown.max(SLOT_WAIT)),
                Some(_) => {
                    b.probing = true;
                    true
                }
                None => false,
            }
        };
        match tokio::time::timeout(SLOT_WAIT, ep.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Admission::Go(Pass {
                endpoint: ep,
                probe,
                _slot: slot,
            }),
            _ => {
                if probe {
                    ep.breaker.lock().unwrap_or_else(|p| p.into_inner()).probing = false;
                }
                Admission::Wait(SLOT_WAIT + Duration::from_millis(rand::random_range(0..1000)))
            }
        }
    }

    /// Gives back a pass whose delivery was not sent (a probe may be made again).
    pub fn release(&self, pass: Pass) {
        if pass.probe {
            pass.endpoint
                .breaker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .probing = false;
        }
    }

    /// Reports how a delivery admitted by `pass` went, at `now_ms`.
    pub fn report(&self, pass: Pass, ok: bool, now_ms: i64) {
        let mut b = pass
            .endpoint
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if ok {
            *b = Breaker::default();
            return;
        }
        b.failures += 1;
        if pass.probe {
            b.probing = false;
        }
        if pass.probe || (b.open_until_ms.is_none() && b.failures >= self.failures_to_open) {
            b.times_opened += 1;
            let factor = 2u32.saturating_pow(b.times_opened - 1).min(10);
            let wait = self.cooldown * factor;
            b.open_until_ms = Some(now_ms + millis(wait));
            tracing::warn!(failures = b.failures, wait = ?wait, "endpoint keeps failing; its deliveries wait");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        let c = NotifyConfig {
            endpoint_concurrency: 2,
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            ..NotifyConfig::default()
        };
        Endpoints::from(&c)
    }

    async fn go(e: &Endpoints, now: i64) -> Pass {
        match e.admit("http://a:80", now).await {
            Admission::Go(p) => p,
            Admission::Wait(w) => panic!("expected to go, told to wait {w:?}"),
        }
    }

    #[tokio::test]
    async fn at_most_n_in_flight_per_endpoint() {
        let e = endpoints();
        let (a, _b) = (go(&e, 0).await, go(&e, 0).await);
        assert!(matches!(
            e.admit("http://a:80", 0).await,
            Admission::Wait(_)
        ));
        assert!(
            matches!(e.admit("http://other:80", 0).await, Admission::Go(_)),
            "other endpoints are not affected"
        );
        e.report(a, true, 0);
        go(&e, 0).await;
    }

    #[tokio::test]
    async fn breaker_opens_after_consecutive_failures_and_probes_once() {
        let e = endpoints();
        for _ in 0..3 {
            let p = go(&e, 0).await;
            e.report(p, false, 0);
        }
        match e.admit("http://a:80", 1000).await {
            Admission::Wait(w) => assert_eq!(w, Duration::from_secs(29)),
            Admission::Go(_) => panic!("open circuit let a delivery through"),
        }
        // After the cool-down exactly one probe goes.
        let probe = go(&e, 30_000).await;
        assert!(matches!(
            e.admit("http://a:80", 30_000).await,
            Admission::Wait(_)
        ));
        // A failed probe reopens for twice as long.
        e.report(probe, false, 30_000);
        match e.admit("http://a:80", 30_000).await {
            Admission::Wait(w) => assert_eq!(w, Duration::from_secs(60)),
            Admission::Go(_) => panic!("reopened circuit let a delivery through"),
        }
        // A successful probe closes it.
        let probe = go(&e, 90_000).await;
        e.report(probe, true, 90_000);
        let (_a, _b) = (go(&e, 90_000).await, go(&e, 90_000).await);
    }
}
