//! One shape for every daemon: a name and the tasks it runs on a deployment — queue workers
//! (receive → durable effect → ack, see [`crate::worker`]) and periodic passes (the checkout
//! sweep, pruning the webhook log, the reconciler) — started together and stopped together.
//! `dss` keeps a registry of daemons; `dss up` runs them all and `dss <name>` one alone.
//!
//! A periodic task runs once per deployment, however many processes run its daemon: each
//! process contends for the task's lease (`periodic/{name}`) every third of its lifetime, and
//! only the holder runs passes. A holder that dies stops renewing; its lease lapses and the next
//! contender takes it within `metadata.lease_secs` and a third.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dss_core::ports::Leases;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::deployment::Deployment;
use crate::worker::Worker;

/// Why a daemon could not start, or why a pass failed.
pub type DaemonError = Box<dyn Error + Send + Sync>;

/// What one pass of a periodic task did, for the log (`None`: nothing to report).
pub type PassResult = Result<Option<String>, DaemonError>;

/// Work a daemon does periodically: each pass finds what is due by itself, so a pass that is
/// interrupted (a shutdown, a crash) or runs twice is harmless.
#[async_trait]
pub trait Pass: Send + Sync + 'static {
    /// Runs one pass.
    async fn run(&self) -> PassResult;
}

/// A periodic task: `pass` runs `first` after the start, then every `every`.
pub struct Periodic {
    /// Its name in logs and in `dss_periodic_passes_total`.
    pub name: &'static str,
    /// Wait before the first pass (zero: at once).
    pub first: Duration,
    /// Wait between the end of one pass and the start of the next.
    pub every: Duration,
    /// The work.
    pub pass: Box<dyn Pass>,
}

/// This process as a holder of leases in the deployment's lease store: periodic tasks run
/// while it holds theirs, and operator runs move a checkpoint while it holds that one.
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    /// Where leases live (shared by every process of the deployment).
    pub leases: Arc<dyn Leases>,
    /// This process.
    pub holder: String,
    /// How long a lease lasts unless renewed; renewed every third of it.
    pub ttl: Duration,
}

impl LeaseHolder {
    /// This process of `deployment`, with the configured lease lifetime.
    pub fn of(deployment: &Deployment) -> Self {
        Self {
            leases: deployment.leases.clone(),
            holder: deployment.instance.clone(),
            ttl: Duration::from_secs(deployment.config.metadata.lease_secs),
        }
    }

    /// Takes or renews the lease `name`; an error of the store counts as not holding it (the
    /// work waits rather than risk running twice).
    pub(crate) async fn hold(&self, name: &str) -> bool {
        match self.leases.acquire(name, &self.holder, self.ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "cannot take or renew a lease");
                false
            }
        }
    }

    /// Renews `name` every third of its lifetime; returns when it is lost.
    async fn keep(&self, name: &str) {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            if !self.hold(name).await {
                return;
            }
        }
    }
}

/// One task of a daemon.
pub enum Task {
    /// A queue worker.
    Worker(Worker),
    /// A periodic task.
    Periodic(Periodic),
}

/// A daemon: a name and its tasks.
#[async_trait]
pub trait Daemon: Send + Sync {
    /// Its name: `dss <name>` runs it alone.
    fn name(&self) -> &'static str;

    /// What it does, in one line (for `dss --help`).
    fn about(&self) -> &'static str;

    /// Why it has no work on `deployment` (sync with one replica, the event relay without a
    /// `gs://` replica): `dss up` leaves it out and `dss <name>` refuses to start.
    fn idle_reason(&self, deployment: &Deployment) -> Option<String> {
        let _ = deployment;
        None
    }

    /// Its tasks on `deployment`.
    async fn tasks(&self, deployment: &Deployment) -> Result<Vec<Task>, DaemonError>;
}

/// Runs `daemon` on `deployment` until `shutdown`: declares the queues (where the backend
/// declares them at start), builds its tasks and runs them all; returns when every task has
/// stopped (workers drain their in-flight messages).
pub async fn run(
    daemon: &dyn Daemon,
    deployment: &Deployment,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    deployment.declare_queues().await?;
    let tasks = daemon.tasks(deployment).await?;
    tracing::info!(
        daemon = daemon.name(),
        tasks = tasks.len(),
        "daemon running"
    );
    let passes = deployment.metrics.outcomes(
        "dss_periodic_passes",
        "Passes of the daemons' periodic tasks, by task and outcome (`{task}:ok`, `{task}:failed`).",
        &[],
    );
    let lease = LeaseHolder::of(deployment);
    let runs = tasks.into_iter().map(|task| {
        let shutdown = shutdown.clone();
        let passes = passes.clone();
        let lease = &lease;
        async move {
            match task {
                Task::Worker(w) => w.run(shutdown).await,
                Task::Periodic(p) => periodic(p, &passes, lease, shutdown).await,
            }
        }
    });
    futures::future::join_all(runs).await;
    Ok(())
}

/// Runs `p` until `shutdown` while this process holds its lease: its first pass `first` after
/// taking the lease, then every `every`. A pass in progress is dropped at shutdown or when the
/// lease is lost (passes are idempotent); the lease is given up at shutdown.
async fn periodic(
    p: Periodic,
    passes: &crate::metrics::Outcomes,
    lease: &LeaseHolder,
    shutdown: CancellationToken,
) {
    let name = format!("periodic/{}", p.name);
    let mut next: Option<Instant> = None;
    loop {
        let held = lease.hold(&name).await;
        match (held, next) {
            (true, None) => {
                tracing::info!(task = p.name, holder = %lease.holder, "this process runs the task now");
                next = Some(Instant::now() + p.first);
            }
            (false, Some(_)) => {
                tracing::info!(task = p.name, "another process runs the task now");
                next = None;
            }
            _ => {}
        }
        let beat = Instant::now() + lease.ttl / 3;
        let wake = match next {
            Some(at) if at <= Instant::now() => {
                let outcome = tokio::select! {
                    r = p.pass.run() => Some(r),
                    () = lease.keep(&name) => None,
                    _ = shutdown.cancelled() => break,
                };
                match outcome {
                    Some(Ok(report)) => {
                        passes.inc(&format!("{}:ok", p.name));
                        if let Some(report) = report {
                            tracing::info!(task = p.name, "{report}");
                        }
                    }
                    Some(Err(e)) => {
                        passes.inc(&format!("{}:failed", p.name));
                        tracing::warn!(task = p.name, error = %e, next_in = ?p.every, "periodic pass failed");
                    }
                    None => {
                        tracing::warn!(task = p.name, "lease lost during a pass; pass abandoned")
                    }
                }
                next = Some(Instant::now() + p.every);
                continue;
            }
            Some(at) => at.min(beat),
            None => beat,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    if next.is_some()
        && let Err(e) = lease.leases.release(&name, &lease.holder).await
    {
        tracing::warn!(task = p.name, error = %e, "cannot give the lease up; it lapses");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use dss_core::ports::LeaseError;

    use super::*;

    struct Counting(Arc<AtomicU32>, bool);

    #[async_trait]
    impl Pass for Counting {
        async fn run(&self) -> PassResult {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            match self.1 && n.is_multiple_of(2) {
                true => Err("every second pass fails".into()),
                false => Ok(Some(format!("pass {n}"))),
            }
        }
    }

    /// Leases in memory, timed by Tokio's (pausable) clock.
    #[derive(Debug, Default)]
    struct MemoryLeases(Mutex<HashMap<String, (String, Instant)>>);

    #[async_trait]
    impl Leases for MemoryLeases {
        async fn acquire(
            &self,
            name: &str,
            holder: &str,
            ttl: Duration,
        ) -> Result<bool, LeaseError> {
            let mut m = self.0.lock().expect("lock");
            let now = Instant::now();
            match m.get(name) {
                Some((h, until)) if h != holder && *until > now => Ok(false),
                _ => {
                    m.insert(name.into(), (holder.into(), now + ttl));
                    Ok(true)
                }
            }
        }

        async fn release(&self, name: &str, holder: &str) -> Result<(), LeaseError> {
            let mut m = self.0.lock().expect("lock");
            if m.get(name).is_some_and(|(h, _)| h == holder) {
                m.remove(name);
            }
            Ok(())
        }
    }

    fn lease(leases: &Arc<MemoryLeases>, holder: &str) -> LeaseHolder {
        LeaseHolder {
            leases: leases.clone(),
            holder: holder.into(),
            ttl: Duration::from_secs(30),
        }
    }

    fn counting(n: &Arc<AtomicU32>, fails: bool) -> Periodic {
        Periodic {
            name: "count",
            first: Duration::from_secs(10),
            every: Duration::from_secs(60),
            pass: Box::new(Counting(n.clone(), fails)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn passes_run_on_schedule_survive_failures_and_stop_with_the_shutdown() {
        let n = Arc::new(AtomicU32::new(0));
        let passes = crate::metrics::Outcomes::default();
        let stop = CancellationToken::new();
        let leases = Arc::new(MemoryLeases::default());
        let task = {
            let (passes, stop, p, lease) = (
                passes.clone(),
                stop.clone(),
                counting(&n, true),
                lease(&leases, "a"),
            );
            tokio::spawn(async move { periodic(p, &passes, &lease, stop).await })
        };
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(n.load(Ordering::SeqCst), 0, "not before `first`");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(60 * 3)).await;
        assert_eq!(
            n.load(Ordering::SeqCst),
            4,
            "every minute after, failures included"
        );
        assert_eq!((passes.get("count:ok"), passes.get("count:failed")), (2, 2));
        stop.cancel();
        task.await.expect("the task stops");
        assert!(
            leases.0.lock().expect("lock").is_empty(),
            "the lease is given up at shutdown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_process_runs_the_passes_and_another_takes_over_when_it_dies() {
        let leases = Arc::new(MemoryLeases::default());
        let passes = crate::metrics::Outcomes::default();
        let (na, nb) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let start = |n: &Arc<AtomicU32>, holder: &str| {
            let (passes, p, lease) = (passes.clone(), counting(n, false), lease(&leases, holder));
            tokio::spawn(
                async move { periodic(p, &passes, &lease, CancellationToken::new()).await },
            )
        };
        let a = start(&na, "a");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let b = start(&nb, "b");
        tokio::time::sleep(Duration::from_secs(60 * 10)).await;
        let (ran_a, ran_b) = (na.load(Ordering::SeqCst), nb.load(Ordering::SeqCst));
        assert_eq!((ran_a, ran_b), (10, 0), "only the holder runs passes");

        // The holder dies (no release): the other takes over once its lease lapses, within
        // the lease's lifetime and a third, and runs its first pass `first` later.
        a.abort();
        let died = Instant::now();
        while nb.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let took = died.elapsed();
        assert!(
            took <= Duration::from_secs(30 + 10 + 10 + 1),
            "taken over in {took:?}"
        );
        assert_eq!(na.load(Ordering::SeqCst), ran_a);
        b.abort();
    }
}
