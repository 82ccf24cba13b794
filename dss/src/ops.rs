//! Operator commands on a deployment's data: queue gauges, the webhook delivery log and
//! resends, and reconciling the replicas.

use anyhow::bail;
use dss_api::subscriptions::{attempt_json, delivery_json};
use dss_config::Config;
use dss_core::names::DAEMON_QUEUES;
use dss_core::ports::DeliveryState;
use serde_json::json;
use std::io::Write;

use crate::output;

/// `dss reconcile` (and `dss ops verify replicas`): one reconciler pass over `prefixes`
/// (default: all), a report per prefix; copies are queued only when `repair`.
pub async fn reconcile(
    cfg: &Config,
    prefixes: Vec<String>,
    repair: bool,
    json: bool,
) -> anyhow::Result<()> {
    crate::progress::init_logging(&cfg.log);
    if let Some(bad) = prefixes.iter().find(|p| !dss_sync::valid_prefix(p)) {
        bail!(
            "--prefix {bad}: must start with one of {}",
            dss_sync::PREFIXES.join(", ")
        );
    }
    let prefixes = match prefixes.is_empty() {
        true => dss_sync::PREFIXES.iter().map(|p| p.to_string()).collect(),
        false => prefixes,
    };
    let dep = crate::wiring::open(cfg).await?;
    if dep.replicas.len() < 2 {
        bail!("only one replica is configured: there is nothing to reconcile");
    }
    let mut reconciler = dss_sync::reconciler(&dep, std::sync::Arc::default()).await?;
    if !repair {
        reconciler = reconciler.report_only();
    }
    let progress = std::sync::Arc::new(crate::progress::Progress::new(if repair {
        "reconcile"
    } else {
        "verify replicas"
    }));
    let shown = progress.clone();
    let reconciler = reconciler.with_progress(std::sync::Arc::new(move |r, key| {
        shown.set(r.scanned, || {
            format!(
                "keys of {}: {} missing, {} different, at {key}",
                r.prefix, r.missing, r.different
            )
        });
    }));
    let reports = reconciler.run(&prefixes).await;
    progress.finish();
    let reports = reports?;
    let mut out = std::io::stdout().lock();
    for r in reports {
        if json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
            continue;
        }
        writeln!(
            out,
            "{}: {} keys, {} missing, {} different ({} conflicts), {} copies queued",
            r.prefix, r.scanned, r.missing, r.different, r.conflicts, r.enqueued
        )?;
        for f in &r.findings {
            writeln!(out, "  {} in {}: {}", f.kind, f.replica, f.key)?;
        }
    }
    Ok(())
}

/// `dss deliveries`: recent attempts of a subscription, or its deliveries in one state.
pub async fn deliveries(
    cfg: &Config,
    subscription: &str,
    state: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    let mut out = std::io::stdout().lock();
    match state {
        None => {
            for a in dep.deliveries.attempts(subscription, limit).await? {
                output::record(&mut out, &attempt_json(&a), json)?;
            }
        }
        Some(s) => {
            let Some(state) = DeliveryState::parse(s) else {
                bail!("--state {s}: use pending, delivered, dead or cancelled");
            };
            for d in dep
                .deliveries
                .list(subscription, Some(state), limit)
                .await?
            {
                output::record(&mut out, &delivery_json(&d), json)?;
            }
        }
    }
    Ok(())
}

/// `dss resend`: a new round of attempts for dead deliveries.
pub async fn resend(
    cfg: &Config,
    mut ids: Vec<String>,
    subscription: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    if let Some(s) = subscription {
        ids.extend(
            dep.deliveries
                .list(s, Some(DeliveryState::Dead), usize::MAX >> 1)
                .await?
                .into_iter()
                .map(|d| d.new.id),
        );
    }
    if ids.is_empty() {
        bail!("name delivery ids, or --subscription to resend all its dead deliveries");
    }
    let mut out = std::io::stdout().lock();
    let mut refused = 0;
    for id in &ids {
        let resent = dss_notify::resend(&dep, id).await?;
        if !resent {
            refused += 1;
        }
        output::record(&mut out, &json!({"delivery": id, "resent": resent}), json)?;
    }
    if refused > 0 {
        bail!(
            "{refused} of {} deliveries are not dead (or unknown) and were not resent",
            ids.len()
        );
    }
    Ok(())
}

/// `dss queues`: the gauges of every daemon queue and its dead-letter queue.
pub async fn queues(cfg: &Config, as_json: bool) -> anyhow::Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    let mut out = std::io::stdout().lock();
    if !as_json {
        writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>12}",
            "queue", "visible", "in_flight", "delayed", "oldest_s"
        )?;
    }
    for name in DAEMON_QUEUES
        .iter()
        .flat_map(|q| [q.to_string(), format!("{q}-dlq")])
    {
        let q = dep.queue(&name).await?;
        if !q.reports_gauges() {
            bail!(
                "queue {} reports no gauges: not available from the Pub/Sub emulator (on Google Cloud they come from Cloud Monitoring; set gcp.monitoring_endpoint for another server)",
                q.name()
            );
        }
        let s = q.stats().await?;
        let oldest = s.oldest_age.map(|a| a.as_secs_f64());
        if as_json {
            writeln!(
                out,
                "{}",
                json!({"queue": name, "visible": s.visible, "in_flight": s.in_flight,
                "delayed": s.delayed, "oldest_age_secs": oldest})
            )?;
        } else {
            let oldest = oldest.map_or_else(|| "-".to_string(), |o| format!("{o:.1}"));
            writeln!(
                out,
                "{name:<24} {:>9} {:>9} {:>9} {oldest:>12}",
                s.visible, s.in_flight, s.delayed
            )?;
        }
    }
    Ok(())
}

/// `dss ops checkout status JOB`: a checkout job's status document (as `GET
/// /v1/bundles/checkout/{job}` answers it), looked up in every replica's checkout bucket unless
/// `replica` names one.
pub async fn checkout_status(
    cfg: &Config,
    job: &str,
    replica: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let dep = crate::wiring::open(cfg).await?;
    for (name, r) in dep
        .replicas
        .iter()
        .filter(|(n, _)| replica.is_none_or(|x| x == n.as_str()))
    {
        if let Some(status) = dss_runtime::checkout::read_status(&*r.checkout, job).await? {
            let mut v = serde_json::to_value(&status)?;
            v["replica"] = json!(name);
            output::record(&mut std::io::stdout().lock(), &v, json)?;
            return Ok(());
        }
    }
    bail!("no checkout job {job}");
}
