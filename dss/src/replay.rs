//! `dss ops events replay`: send the bucket events of objects already stored (by key prefix
//! and creation time) again, to one daemon's queue or to the bucket events topic (every
//! daemon). Handlers are idempotent, so a replay repeats no effect that already happened; it
//! makes the daemons act on what they missed (lost notifications, a subscription created
//! after the bundles it should have seen, a queue purged by mistake).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};
use dss_config::Config;
use dss_core::names::{BUCKET_EVENTS_TOPIC, INDEX_QUEUE, NOTIFY_QUEUE, SYNC_QUEUE};
use dss_core::ports::{BucketEvent, ObjectMeta, OutgoingMessage, Queue, Topic, listing};
use futures::TryStreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::progress::Progress;

/// Objects listed per request.
const PAGE: usize = 1000;

/// What to replay, and where to.
pub struct Options {
    /// `index`, `notify`, `sync` or `all` (the bucket events topic).
    pub to: String,
    /// Replicas (all when empty).
    pub replicas: Vec<String>,
    /// Key prefixes (default: `bundles/` for index and notify, every kind for sync and all).
    pub prefixes: Vec<String>,
    /// Only objects created at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only objects created before this time.
    pub until: Option<OffsetDateTime>,
    /// Count the events without sending them.
    pub dry_run: bool,
    /// Ignore the checkpoint of an interrupted run.
    pub restart: bool,
    /// Print the reports as JSON lines.
    pub json: bool,
}

/// Where the events go.
enum Target {
    Queue(Arc<dyn Queue>),
    Topic(Arc<dyn Topic>),
}

impl Target {
    async fn send(&self, events: &[BucketEvent]) -> anyhow::Result<()> {
        let bodies = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        match self {
            Target::Queue(q) => {
                let messages: Vec<OutgoingMessage> =
                    bodies.into_iter().map(OutgoingMessage::new).collect();
                q.send_batch(&messages).await?;
            }
            Target::Topic(t) => {
                for body in &bodies {
                    t.publish(body).await?;
                }
            }
        }
        Ok(())
    }
}

/// One replica and prefix replayed.
#[derive(Serialize)]
struct Report<'a> {
    replica: &'a str,
    prefix: &'a str,
    to: &'a str,
    resumed_after: Option<String>,
    listed: u64,
    replayed: u64,
    dry_run: bool,
}

/// Replays the events `opts` selects.
pub async fn run(cfg: &Config, opts: Options) -> anyhow::Result<()> {
    crate::progress::init_logging(&cfg.log);
    if let (Some(s), Some(u)) = (opts.since, opts.until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    if let Some(bad) = opts.prefixes.iter().find(|p| !dss_sync::valid_prefix(p)) {
        bail!(
            "--prefix {bad}: must start with one of {}",
            dss_sync::PREFIXES.join(", ")
        );
    }
    let dep = crate::wiring::open(cfg).await?;
    let target = match opts.to.as_str() {
        INDEX_QUEUE | NOTIFY_QUEUE => Target::Queue(dep.queue(&opts.to).await?),
        SYNC_QUEUE if dep.replicas.len() > 1 => Target::Queue(dep.queue(SYNC_QUEUE).await?),
        SYNC_QUEUE => bail!("only one replica is configured: there is no sync daemon"),
        "all" => Target::Topic(
            dep.queues
                .topic(BUCKET_EVENTS_TOPIC)
                .await
                .context("the bucket events topic")?,
        ),
        other => bail!("--to {other}: use index, notify, sync or all"),
    };
    let prefixes: Vec<String> = match (opts.prefixes.is_empty(), opts.to.as_str()) {
        (false, _) => opts.prefixes.clone(),
        (true, INDEX_QUEUE | NOTIFY_QUEUE) => vec!["bundles/".into()],
        (true, _) => dss_sync::PREFIXES.iter().map(|p| p.to_string()).collect(),
    };
    let replicas = match opts.replicas.is_empty() {
        true => dep.replicas.keys().cloned().collect(),
        false => opts.replicas.clone(),
    };
    for replica in &replicas {
        let Some(r) = dep.replicas.get(replica) else {
            bail!("--replica {replica}: no such replica");
        };
        for prefix in &prefixes {
            let file = format!(
                "replay-{}-{replica}-{}.json",
                opts.to,
                prefix.replace('/', "_")
            );
            // A dry run neither uses nor moves a real run's position.
            let checkpoint = match opts.dry_run {
                true => None,
                false => Some(crate::checkpoints::of(&dep, replica, &file)?),
            };
            let scope = format!("{prefix} {:?} {:?}", opts.since, opts.until);
            if let Some(c) = checkpoint.as_ref().filter(|_| opts.restart) {
                c.clear().await?;
            }
            let mut report = Report {
                replica,
                prefix,
                to: &opts.to,
                resumed_after: match &checkpoint {
                    Some(c) => c.read(&scope).await?,
                    None => None,
                },
                listed: 0,
                replayed: 0,
                dry_run: opts.dry_run,
            };
            let progress = Progress::new(&format!("replay {replica} {prefix} → {}", opts.to));
            let mut pages = std::pin::pin!(listing::pages(
                &*r.store,
                prefix,
                report.resumed_after.clone(),
                PAGE
            ));
            while let Some(page) = pages.try_next().await? {
                report.listed += page.objects.len() as u64;
                let events: Vec<BucketEvent> = page
                    .objects
                    .iter()
                    .filter(|o| in_range(o, opts.since, opts.until))
                    .map(|o| BucketEvent::created(r.store.bucket(), o))
                    .collect();
                if !opts.dry_run {
                    for chunk in events.chunks(100) {
                        target.send(chunk).await?;
                    }
                }
                report.replayed += events.len() as u64;
                progress.set(report.replayed, || {
                    format!("events ({} objects listed)", report.listed)
                });
                if let (Some(c), Some(next)) = (&checkpoint, &page.next_start_after) {
                    c.write(&scope, next).await?;
                }
            }
            progress.finish();
            if let Some(c) = &checkpoint {
                c.clear().await?;
            }
            print(&report, opts.json)?;
        }
    }
    Ok(())
}

fn in_range(o: &ObjectMeta, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> bool {
    since.is_none_or(|s| o.created >= s) && until.is_none_or(|u| o.created < u)
}

fn print(r: &Report<'_>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
    } else {
        let verb = if r.dry_run {
            "would replay"
        } else {
            "replayed"
        };
        writeln!(
            out,
            "{} {}: {verb} {} events to {} ({} objects listed)",
            r.replica, r.prefix, r.replayed, r.to, r.listed
        )?;
    }
    Ok(())
}
