//! Worker runtime behaviour on the real embedded queue, with tokio's time paused.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::*;
use dss_config::Durability;
use dss_core::clock::TokioClock;
use dss_core::ports::queue::Queue;
use dss_embedded::{Db, EmbeddedQueue, QueueConfig};

struct Fixture {
    _dir: tempfile::TempDir,
    db: Db,
    queue: Arc<EmbeddedQueue>,
    clock: Arc<TokioClock>,
}

impl Fixture {
    /// The queue's dead-letter queue.
    async fn dead_letters(&self) -> EmbeddedQueue {
        EmbeddedQueue::declare(
            &self.db,
            "work-dlq",
            QueueConfig {
                max_receive_count: 0,
                dead_letter: None,
            },
            self.clock.clone(),
        )
        .await
        .unwrap()
    }
}

async fn fixture(max_receive: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db"), Durability::Process).unwrap();
    let clock = Arc::new(TokioClock::starting_at(
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let cfg = QueueConfig {
        max_receive_count: max_receive,
        dead_letter: None,
    };
    let queue = Arc::new(
        EmbeddedQueue::declare(&db, "work", cfg, clock.clone())
            .await
            .unwrap(),
    );
    Fixture {
        _dir: dir,
        db,
        queue,
        clock,
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        backoff: Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(600),
            jitter: 0.0,
        },
        visibility: Duration::from_secs(30),
        wait: Duration::from_millis(200),
        stats_every: Duration::from_secs(1),
        ..WorkerConfig::named("test")
    }
}

/// Records the (clock) time of every attempt and answers from a script.
struct Scripted {
    clock: Arc<TokioClock>,
    script: Mutex<Vec<Result<Outcome, HandlerError>>>,
    attempts: Mutex<Vec<(OffsetDateTime, u32)>>,
    work: Duration,
}

impl Scripted {
    fn new(
        clock: Arc<TokioClock>,
        mut script: Vec<Result<Outcome, HandlerError>>,
        work: Duration,
    ) -> Arc<Self> {
        script.reverse();
        Arc::new(Self {
            clock,
            script: Mutex::new(script),
            attempts: Mutex::new(Vec::new()),
            work,
        })
    }

    fn attempts(&self) -> Vec<(OffsetDateTime, u32)> {
        self.attempts.lock().unwrap().clone()
    }
}

#[async_trait]
impl Handler for Scripted {
    async fn handle(&self, m: &Message) -> Result<Outcome, HandlerError> {
        use dss_core::clock::Clock;
        self.attempts
            .lock()
            .unwrap()
            .push((self.clock.now(), m.receive_count));
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        self.script
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Ok(Outcome::Done))
    }
}

async fn run_for(worker: Worker, d: Duration) {
    let stop = CancellationToken::new();
    let s = stop.clone();
    let h = tokio::spawn(worker.run(s));
    tokio::time::sleep(d).await;
    stop.cancel();
    h.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn transient_failures_retry_with_exponential_backoff_then_ack() {
    let f = fixture(10).await;
    f.queue.send("job", Duration::ZERO).await.unwrap();
    let h = Scripted::new(
        f.clock.clone(),
        vec![
            Err(HandlerError::Transient("peer down".into())),
            Err(HandlerError::Transient("peer down".into())),
        ],
        Duration::ZERO,
    );
    let w = Worker::new(f.queue.clone(), h.clone(), config());
    let m = w.metrics();
    run_for(w, Duration::from_secs(120)).await;
    let a = h.attempts();
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 2, 3]);
    let gap1 = a[1].0 - a[0].0;
    let gap2 = a[2].0 - a[1].0;
    assert!(
        gap1 >= time::Duration::seconds(10) && gap1 < time::Duration::seconds(12),
        "{gap1}"
    );
    assert!(
        gap2 >= time::Duration::seconds(20) && gap2 < time::Duration::seconds(22),
        "{gap2}"
    );
    let s = m.snapshot();
    assert_eq!(
        (
            s.received,
            s.succeeded,
            s.retried,
            s.dead_lettered,
            s.in_flight
        ),
        (3, 1, 2, 0, 0)
    );
    assert_eq!(f.queue.stats().await.unwrap().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_go_to_the_dead_letter_queue_with_the_reason() {
    let f = fixture(10).await;
    f.queue.send("poison", Duration::ZERO).await.unwrap();
    let h = Scripted::new(
        f.clock.clone(),
        vec![Err(HandlerError::Permanent("object vanished".into()))],
        Duration::ZERO,
    );
    let dlq = Arc::new(f.dead_letters().await);
    let w = Worker::new(f.queue.clone(), h.clone(), config()).with_dead_letters(dlq.clone());
    let m = w.metrics();
    run_for(w, Duration::from_secs(5)).await;
    assert_eq!(h.attempts().len(), 1);
    assert_eq!(m.snapshot().dead_lettered, 1);
    assert_eq!(
        m.snapshot().dead_letter_depth,
        1,
        "the DLQ gauge counts the letter"
    );
    assert_eq!(f.queue.stats().await.unwrap().depth(), 0);
    let got = dlq
        .receive(10, Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "poison");
    let reason = dss_embedded::queue::dead_letter_reason(&f.db, &got[0].id)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("object vanished"));
}

#[tokio::test(start_paused = true)]
async fn endless_transient_failures_stop_at_the_max_receive_count() {
    let f = fixture(3).await;
    f.queue.send("flaky", Duration::ZERO).await.unwrap();
    let script = (0..10)
        .map(|_| Err(HandlerError::Transient("timeout".into())))
        .collect();
    let h = Scripted::new(f.clock.clone(), script, Duration::ZERO);
    let w = Worker::new(f.queue.clone(), h.clone(), config());
    run_for(w, Duration::from_secs(600)).await;
    assert_eq!(h.attempts().len(), 3);
    let dlq = f.dead_letters().await;
    assert_eq!(dlq.stats().await.unwrap().visible, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_fails_that_message_only() {
    let f = fixture(3).await;
    for body in ["ok-1", "boom", "ok-2"] {
        f.queue.send(body, Duration::ZERO).await.unwrap();
    }
    struct Fragile(Mutex<Vec<String>>);
    #[async_trait]
    impl Handler for Fragile {
        async fn handle(&self, m: &Message) -> Result<Outcome, HandlerError> {
            if m.body == "boom" {
                panic!("value out of range");
            }
            self.0.lock().unwrap().push(m.body.clone());
            Ok(Outcome::Done)
        }
    }
    let h = Arc::new(Fragile(Mutex::new(Vec::new())));
    let w = Worker::new(f.queue.clone(), h.clone(), config());
    let m = w.metrics();
    run_for(w, Duration::from_secs(600)).await;
    let mut done = h.0.lock().unwrap().clone();
    done.sort();
    assert_eq!(done, ["ok-1", "ok-2"]);
    let s = m.snapshot();
    // Three attempts of the poison message, each a failed attempt with backoff, then the
    // dead-letter queue; the worker kept running throughout.
    assert_eq!((s.panicked, s.succeeded, s.in_flight), (3, 2, 0));
    let dlq = f.dead_letters().await;
    assert_eq!(dlq.stats().await.unwrap().visible, 1);
}

/// Answers `Unavailable` while the clock is before `until`, then handles.
struct Outage {
    clock: Arc<TokioClock>,
    until: OffsetDateTime,
    seen: Mutex<Vec<(OffsetDateTime, String)>>,
}

#[async_trait]
impl Handler for Outage {
    async fn handle(&self, m: &Message) -> Result<Outcome, HandlerError> {
        use dss_core::clock::Clock;
        let now = self.clock.now();
        self.seen.lock().unwrap().push((now, m.body.clone()));
        if now < self.until {
            return Err(HandlerError::Unavailable("search is down".into()));
        }
        Ok(Outcome::Done)
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_defers_messages_without_using_up_their_receives() {
    // Three receives at most, and an outage of an hour: with transient failures the message
    // would be dead-lettered after a few backoffs.
    let f = fixture(3).await;
    f.queue
        .send("{\"Records\": [1]}", Duration::ZERO)
        .await
        .unwrap();
    let start = {
        use dss_core::clock::Clock;
        f.clock.now()
    };
    let h = Arc::new(Outage {
        clock: f.clock.clone(),
        until: start + Duration::from_secs(3600),
        seen: Mutex::new(Vec::new()),
    });
    let w = Worker::new(f.queue.clone(), h.clone(), config()).with_clock(f.clock.clone());
    let m = w.metrics();
    run_for(w, Duration::from_secs(2 * 3600)).await;
    let seen = h.seen.lock().unwrap().clone();
    // The handler always saw the original body; tries grew apart up to the backoff's cap.
    assert!(
        seen.iter().all(|(_, b)| b == "{\"Records\": [1]}"),
        "{seen:?}"
    );
    assert!(seen.len() > 3 && seen.len() < 20, "{} tries", seen.len());
    let gaps: Vec<i64> = seen
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).whole_seconds())
        .collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    assert!(*gaps.last().unwrap() <= 600, "{gaps:?}");
    let s = m.snapshot();
    assert_eq!((s.succeeded, s.dead_lettered), (1, 0));
    assert_eq!(s.deferred as usize, seen.len() - 1);
    assert_eq!(f.queue.stats().await.unwrap().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_the_limit_dead_letters() {
    let f = fixture(3).await;
    f.queue.send("job", Duration::ZERO).await.unwrap();
    let start = {
        use dss_core::clock::Clock;
        f.clock.now()
    };
    let h = Arc::new(Outage {
        clock: f.clock.clone(),
        until: start + Duration::from_secs(100 * 3600),
        seen: Mutex::new(Vec::new()),
    });
    let cfg = WorkerConfig {
        outage_limit: Duration::from_secs(3600),
        ..config()
    };
    let w = Worker::new(f.queue.clone(), h.clone(), cfg).with_clock(f.clock.clone());
    let m = w.metrics();
    run_for(w, Duration::from_secs(3 * 3600)).await;
    assert_eq!(m.snapshot().dead_lettered, 1);
    let dlq = f.dead_letters().await;
    let got = dlq
        .receive(1, Duration::from_secs(1), Duration::ZERO)
        .await
        .unwrap();
    // The letter holds the original body, ready to be replayed.
    assert_eq!(got[0].body, "job");
}

#[tokio::test(start_paused = true)]
async fn long_handlers_keep_their_message_hidden() {
    let f = fixture(10).await;
    f.queue.send("slow", Duration::ZERO).await.unwrap();
    // Work takes four visibility timeouts; with two workers racing, a lapse would deliver it twice.
    let h = Scripted::new(f.clock.clone(), vec![], Duration::from_secs(120));
    let w1 = Worker::new(f.queue.clone(), h.clone(), config());
    let w2 = Worker::new(f.queue.clone(), h.clone(), config());
    let stop = CancellationToken::new();
    let (s1, s2) = (stop.clone(), stop.clone());
    let j1 = tokio::spawn(w1.run(s1));
    let j2 = tokio::spawn(w2.run(s2));
    tokio::time::sleep(Duration::from_secs(200)).await;
    stop.cancel();
    j1.await.unwrap();
    j2.await.unwrap();
    assert_eq!(h.attempts().len(), 1, "{:?}", h.attempts());
    assert_eq!(f.queue.stats().await.unwrap().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_in_flight_handlers() {
    let f = fixture(10).await;
    f.queue.send("a", Duration::ZERO).await.unwrap();
    let h = Scripted::new(f.clock.clone(), vec![], Duration::from_secs(5));
    let w = Worker::new(f.queue.clone(), h.clone(), config());
    let m = w.metrics();
    // Stop one second into the five-second job: run() must return only after it finished and acked.
    run_for(w, Duration::from_secs(1)).await;
    assert_eq!(m.snapshot().succeeded, 1);
    assert_eq!(f.queue.stats().await.unwrap().depth(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_later_uses_the_requested_delay_and_concurrency_is_bounded() {
    let f = fixture(10).await;
    for i in 0..6 {
        f.queue
            .send(&format!("m{i}"), Duration::ZERO)
            .await
            .unwrap();
    }
    struct Gate {
        running: std::sync::atomic::AtomicUsize,
        peak: std::sync::atomic::AtomicUsize,
    }
    #[async_trait]
    impl Handler for Gate {
        async fn handle(&self, _m: &Message) -> Result<Outcome, HandlerError> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.running.fetch_sub(1, SeqCst);
            Ok(Outcome::Done)
        }
    }
    let g = Arc::new(Gate {
        running: 0.into(),
        peak: 0.into(),
    });
    let w = Worker::new(
        f.queue.clone(),
        g.clone(),
        WorkerConfig {
            concurrency: 2,
            ..config()
        },
    );
    let m = w.metrics();
    run_for(w, Duration::from_secs(30)).await;
    assert_eq!(m.snapshot().succeeded, 6);
    assert_eq!(g.peak.load(std::sync::atomic::Ordering::SeqCst), 2);

    f.queue.send("later", Duration::ZERO).await.unwrap();
    let h = Scripted::new(
        f.clock.clone(),
        vec![Ok(Outcome::RetryLater(Some(Duration::from_secs(45))))],
        Duration::ZERO,
    );
    let w = Worker::new(f.queue.clone(), h.clone(), config());
    run_for(w, Duration::from_secs(100)).await;
    let a = h.attempts();
    assert_eq!(a.len(), 2);
    let gap = a[1].0 - a[0].0;
    assert!(
        gap >= time::Duration::seconds(45) && gap < time::Duration::seconds(47),
        "{gap}"
    );
}

#[tokio::test(start_paused = true)]
async fn handlers_run_under_the_correlation_id_their_message_carries() {
    struct Seen(Mutex<Vec<Option<String>>>);
    #[async_trait::async_trait]
    impl Handler for Seen {
        async fn handle(&self, _m: &Message) -> Result<Outcome, HandlerError> {
            self.0
                .lock()
                .unwrap()
                .push(dss_core::correlation::current());
            Ok(Outcome::Done)
        }
    }
    let f = fixture(10).await;
    f.queue
        .send(r#"{"key": "k", "correlation_id": "req-9"}"#, Duration::ZERO)
        .await
        .unwrap();
    f.queue
        .send(r#"{"key": "k"}"#, Duration::ZERO)
        .await
        .unwrap();
    let seen = Arc::new(Seen(Mutex::new(Vec::new())));
    let mut cfg = config();
    cfg.concurrency = 1;
    run_for(
        Worker::new(f.queue.clone(), seen.clone(), cfg),
        Duration::from_secs(5),
    )
    .await;
    let mut got = seen.0.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![None, Some("req-9".to_string())]);
}
