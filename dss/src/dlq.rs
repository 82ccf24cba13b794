//! `dss ops dlq`: the dead-letter queues of every daemon — how many letters each holds, what
//! they are, and moving them back to their queue (redrive) or dropping them (purge).

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use dss_config::{Config, QueueBackendKind};
use dss_core::names::DAEMON_QUEUES;
use dss_core::ports::Queue;
use dss_embedded::queue::dead_letter_reason;
use dss_runtime::deployment::Deployment;
use serde_json::json;

/// How long a letter being looked at stays hidden from other readers.
const HOLD: Duration = Duration::from_secs(60);
/// How long the letters a redrive takes stay hidden while it moves them (Pub/Sub's maximum).
const TAKE: Duration = Duration::from_secs(600);

/// The queue named `queue` (a daemon queue) and its dead-letter queue.
async fn pair(
    dep: &Deployment,
    queue: &str,
) -> Result<(std::sync::Arc<dyn Queue>, std::sync::Arc<dyn Queue>)> {
    if !DAEMON_QUEUES.contains(&queue) {
        bail!(
            "'{queue}' is not a daemon queue: one of {}",
            DAEMON_QUEUES.join(", ")
        );
    }
    Ok((
        dep.queue(queue).await?,
        dep.queue(&format!("{queue}-dlq")).await?,
    ))
}

/// `dss ops dlq list`: letters per dead-letter queue.
pub async fn list(cfg: &Config, as_json: bool) -> Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    let mut out = std::io::stdout().lock();
    for name in DAEMON_QUEUES {
        let dlq = dep.queue(&format!("{name}-dlq")).await?;
        let letters = match dlq.reports_gauges() {
            true => Some(dlq.stats().await?.depth()),
            false => None,
        };
        match as_json {
            true => writeln!(
                out,
                "{}",
                json!({"queue": name, "dead_letter_queue": dlq.name(), "letters": letters})
            )?,
            false => writeln!(
                out,
                "{:<28} {}",
                dlq.name(),
                letters.map_or_else(
                    || "n/a (see Cloud Monitoring)".to_string(),
                    |n| n.to_string()
                )
            )?,
        }
    }
    Ok(())
}

/// `dss ops dlq show QUEUE`: up to `limit` letters, one line each (id, receives, when sent, the
/// reason where the backend keeps it, the body); they stay in the dead-letter queue.
pub async fn show(cfg: &Config, queue: &str, limit: usize, json: bool) -> Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    let (_, dlq) = pair(&dep, queue).await?;
    let embedded = cfg.queues.backend == QueueBackendKind::Embedded;
    let mut shown = Vec::new();
    let mut out = std::io::stdout().lock();
    while shown.len() < limit {
        let batch = dlq
            .receive(
                (limit - shown.len()).min(10),
                HOLD,
                Duration::from_millis(500),
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let reason = match embedded {
                true => dead_letter_reason(&dep.db, &m.id).await?,
                false => None,
            };
            let letter = json!({"queue": queue, "id": m.id, "receives": m.receive_count,
                "sent_at": m.sent_at.to_string(), "reason": reason, "body": m.body});
            crate::output::record(&mut out, &letter, json)?;
            shown.push(m.receipt);
        }
    }
    // Back to the dead-letter queue, visible at once.
    for r in shown {
        dlq.change_visibility(&r, Duration::ZERO).await?;
    }
    Ok(())
}

/// `dss ops dlq redrive QUEUE`: moves up to `limit` letters (default all) back to their queue,
/// each sent before it leaves the dead-letter queue (a crash may leave a copy in both). Only
/// the letters there when it starts are moved: one that fails again and comes back is not
/// moved a second time.
pub async fn redrive(cfg: &Config, queue: &str, limit: Option<usize>, json: bool) -> Result<()> {
    dss_runtime::telemetry::init(&cfg.log);
    let dep = crate::wiring::open(cfg).await?;
    let (main, dlq) = pair(&dep, queue).await?;
    let limit = limit.unwrap_or(usize::MAX);
    // First take every letter (hidden for as long as Pub/Sub allows), then move them.
    let mut taken = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while taken.len() < limit {
        let batch = dlq
            .receive(
                (limit - taken.len()).min(10),
                TAKE,
                Duration::from_millis(500),
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        taken.extend(batch.into_iter().filter(|m| seen.insert(m.id.clone())));
    }
    for (i, m) in taken.iter().enumerate() {
        main.send(&m.body, Duration::ZERO).await?;
        dlq.ack(&m.receipt).await?;
        if (i + 1) % 100 == 0 {
            tracing::info!(%queue, moved = i + 1, of = taken.len(), "redriving");
        }
    }
    let mut out = std::io::stdout().lock();
    match json {
        true => writeln!(out, "{}", json!({"queue": queue, "redriven": taken.len()}))?,
        false => writeln!(
            out,
            "{queue}: {} letters moved back to the queue",
            taken.len()
        )?,
    }
    Ok(())
}

/// `dss ops dlq purge QUEUE`: deletes every letter of the queue's dead-letter queue.
pub async fn purge(cfg: &Config, queue: &str, json: bool) -> Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    let (_, dlq) = pair(&dep, queue).await?;
    let mut purged = 0usize;
    loop {
        let batch = dlq.receive(10, HOLD, Duration::from_millis(500)).await?;
        if batch.is_empty() {
            break;
        }
        let receipts: Vec<String> = batch.iter().map(|m| m.receipt.clone()).collect();
        dlq.ack_batch(&receipts).await?;
        purged += receipts.len();
    }
    let mut out = std::io::stdout().lock();
    match json {
        true => writeln!(out, "{}", json!({"queue": queue, "purged": purged}))?,
        false => writeln!(out, "{queue}: {purged} letters deleted")?,
    }
    Ok(())
}
