//! `dss`: runs the whole system or one component, and mints tokens for the embedded deployment.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Args, FromArgMatches, Parser, Subcommand};
use dss_api::auth::LocalIssuer;
use dss_config::Config;
use dss_runtime::daemon::Daemon;
use dss_runtime::deployment::Deployment;
use tokio_util::sync::CancellationToken;

mod checkpoints;
mod client;
mod daemons;
mod dlq;
mod effective_config;
mod infra;
mod integrity;
mod ops;
mod output;
mod progress;
mod reindex;
mod replay;
mod wiring;

#[derive(Parser)]
#[command(name = "dss", version, about = "The Data Storage System")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Configuration file (TOML); repeat it to layer files, a later one overriding an earlier
    /// one (e.g. a shared base, then a stage's file, then a local one). Without it, the files
    /// listed in `DSS_CONFIG` (separated by `:`). `DSS_*` environment variables override them.
    #[arg(long, short)]
    config: Vec<PathBuf>,
    /// Directory for embedded state (default ./dss-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl Common {
    fn load(&self, listen: Option<&str>) -> anyhow::Result<Config> {
        Ok(Config::load(&self.files(), &self.overrides(listen))?)
    }

    /// The configuration files, in order.
    fn files(&self) -> Vec<PathBuf> {
        match (self.config.is_empty(), std::env::var_os("DSS_CONFIG")) {
            (true, Some(list)) => std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            _ => self.config.clone(),
        }
    }

    /// The keys the command line sets.
    fn overrides(&self, listen: Option<&str>) -> Vec<(&'static str, String)> {
        let mut overrides = Vec::new();
        if let Some(d) = &self.data_dir {
            overrides.push(("data_dir", d.display().to_string()));
        }
        if let Some(l) = listen {
            overrides.push(("api.listen", l.to_string()));
        }
        overrides
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run everything (the API and every daemon) in one process on the embedded default.
    Up {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (overrides api.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Compare every replica now and queue a copy of whatever is missing or broken in one
    /// (the sync daemon makes the copies). Prints a summary per prefix.
    Reconcile {
        #[command(flatten)]
        common: Common,
        /// Only keys under this prefix (repeatable; e.g. `bundles/` or `files/ce55`); default:
        /// blobs/, files/, bundles/, collections/.
        #[arg(long)]
        prefix: Vec<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Operator view of every daemon queue and its dead-letter queue: messages visible, in
    /// flight and delayed, and the oldest one's age.
    Queues(QueuesArgs),
    /// Operator view of a subscription's webhook deliveries: recent attempts, or deliveries
    /// in one state.
    Deliveries(DeliveriesArgs),
    /// Operator resend of dead-lettered webhook deliveries: a new round of attempts on the
    /// retry schedule.
    Resend {
        #[command(flatten)]
        common: Common,
        /// Delivery ids (the `transaction_id` receivers saw).
        ids: Vec<String>,
        /// Resend every dead delivery of this subscription.
        #[arg(long)]
        subscription: Option<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Operator commands: verify the replicas, handle dead letters, see the queues.
    Ops {
        #[command(subcommand)]
        command: OpsCommand,
    },
    /// Create the deployment's cloud resources on the configured services or their local
    /// emulators (buckets, bucket notifications, the bucket events topic, every daemon queue
    /// with its dead-letter queue and subscription), as Terraform does in production.
    /// Idempotent; on the embedded default it declares the embedded queues.
    Infra {
        #[command(subcommand)]
        command: InfraCommand,
    },
    /// Run one daemon alone: `dss <daemon>` (listed below).
    #[command(external_subcommand)]
    Daemon(Vec<String>),
    /// Run only the HTTP API (and the daemons it needs beside it: ingest).
    Api {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (overrides api.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Upload a directory to a deployment as a new bundle (parallel, checksum-verified,
    /// resumable); prints the bundle as JSON.
    Upload(client::UploadArgs),
    /// Download a bundle's files from a deployment (parallel, checksum-verified, resumable);
    /// prints where they are as JSON.
    Download(client::DownloadArgs),
    /// Search a deployment's bundles; prints each result as a JSON line.
    Search(client::SearchArgs),
    /// Mint a bearer token signed by this deployment's local key.
    Token {
        #[command(flatten)]
        common: Common,
        /// E-mail claim of the token.
        #[arg(long, default_value = "operator@localhost")]
        email: String,
        /// Group claim of the token.
        #[arg(long, default_value = "dbio")]
        group: String,
        /// Mark the token as an operator (administrator) token.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: i64,
    },
}

/// Arguments of `dss queues` / `dss ops queues`.
#[derive(Args)]
struct QueuesArgs {
    #[command(flatten)]
    common: Common,
    /// One JSON object per queue instead of a table.
    #[arg(long)]
    json: bool,
}

impl QueuesArgs {
    async fn run(self) -> anyhow::Result<()> {
        ops::queues(&self.common.load(None)?, self.json).await
    }
}

/// Arguments of `dss deliveries` / `dss ops subscriptions deliveries`.
#[derive(Args)]
struct DeliveriesArgs {
    #[command(flatten)]
    common: Common,
    /// The subscription's uuid.
    subscription: String,
    /// List deliveries in this state (pending, delivered, dead, cancelled) instead of attempts.
    #[arg(long)]
    state: Option<String>,
    /// At most this many lines.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

impl DeliveriesArgs {
    async fn run(self) -> anyhow::Result<()> {
        let cfg = self.common.load(None)?;
        let (state, limit) = (self.state.as_deref(), self.limit);
        ops::deliveries(&cfg, &self.subscription, state, limit, self.json).await
    }
}

#[derive(Subcommand)]
enum OpsCommand {
    /// The effective configuration (files in order, `DSS_*` variables, the command line,
    /// defaults): each value with its source, secrets left out.
    Config {
        #[command(flatten)]
        common: Common,
        /// Only check that the configuration is valid (exit status 0), printing nothing else.
        #[arg(long)]
        check: bool,
        /// Print JSON (`{"config": …, "sources": {key: source}}`) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare what the replicas hold.
    Verify {
        #[command(subcommand)]
        what: VerifyCommand,
    },
    /// The daemons' dead-letter queues.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Checkout jobs.
    Checkout {
        #[command(subcommand)]
        command: CheckoutCommand,
    },
    /// Webhook subscriptions.
    Subscriptions {
        #[command(subcommand)]
        command: SubscriptionsCommand,
    },
    /// Every daemon queue and its dead-letter queue: messages visible, in flight, delayed, and
    /// the oldest one's age (as `dss queues`).
    Queues(QueuesArgs),
    /// Bucket events.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Rebuild search documents and journal events from what the buckets hold, online
    /// (searches keep answering). Resumes an interrupted run from its checkpoint. Webhook
    /// matching needs no rebuild: it reads the subscriptions themselves.
    Reindex {
        #[command(flatten)]
        common: Common,
        /// Only this replica (repeatable; default: every replica).
        #[arg(long)]
        replica: Vec<String>,
        /// Only bundles under this key prefix (e.g. `bundles/ce55`).
        #[arg(long, default_value = "bundles/")]
        prefix: String,
        /// Also remove search documents whose bundle is not in the bucket (otherwise they are
        /// only counted as stale).
        #[arg(long)]
        prune: bool,
        /// Start over instead of resuming an interrupted run.
        #[arg(long)]
        restart: bool,
        /// Objects listed per request; the checkpoint advances per page.
        #[arg(long, default_value_t = 1000)]
        page_size: usize,
        /// Print each replica's report as a JSON line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Send the bucket events of stored objects again (by key prefix and creation time) to
    /// one daemon, or to all of them through the bucket events topic. Idempotent (handlers
    /// repeat no effect); resumes an interrupted run from its checkpoint.
    Replay {
        #[command(flatten)]
        common: Common,
        /// `index`, `notify`, `sync`, or `all` (the bucket events topic, as the buckets
        /// publish).
        #[arg(long)]
        to: String,
        /// Only this replica's bucket (repeatable; default: every replica).
        #[arg(long)]
        replica: Vec<String>,
        /// Only keys under this prefix (repeatable; default `bundles/` for index and notify,
        /// blobs/, files/, bundles/ and collections/ otherwise).
        #[arg(long)]
        prefix: Vec<String>,
        /// Only objects created at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        since: Option<time::OffsetDateTime>,
        /// Only objects created before this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<time::OffsetDateTime>,
        /// Count the events that would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start over instead of resuming an interrupted run.
        #[arg(long)]
        restart: bool,
        /// Print each replica and prefix's report as a JSON line.
        #[arg(long)]
        json: bool,
    },
}

fn rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-12-01T00:00:00Z"))
}

#[derive(Subcommand)]
enum CheckoutCommand {
    /// A job's status (RUNNING with progress, SUCCEEDED with its location, FAILED with its
    /// cause) with the replica that holds it.
    Status {
        #[command(flatten)]
        common: Common,
        /// The checkout job id.
        job: String,
        /// Only this replica's checkout bucket.
        #[arg(long)]
        replica: Option<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SubscriptionsCommand {
    /// A subscription's webhook deliveries (as `dss deliveries`).
    Deliveries(DeliveriesArgs),
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Every key (or those under `--prefix`) of every replica, compared by checksums: per
    /// prefix the counts and the first findings (key, replica, missing | different |
    /// conflict). Reads only, unless `--repair` queues the copies for the sync daemon.
    Replicas {
        #[command(flatten)]
        common: Common,
        /// Only keys under this prefix (repeatable; e.g. `bundles/` or `files/ce55`).
        #[arg(long)]
        prefix: Vec<String>,
        /// Queue a copy of whatever is missing or broken (as `dss reconcile`).
        #[arg(long)]
        repair: bool,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Within each replica: every bundle's files exist and match the manifest, every file's blob
    /// exists with the file's size and checksums. A report per replica; exits non-zero when
    /// anything is inconsistent. Reads only.
    Integrity {
        #[command(flatten)]
        common: Common,
        /// Only this replica.
        #[arg(long)]
        replica: Option<String>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Letters in each daemon's dead-letter queue.
    List {
        #[command(flatten)]
        common: Common,
        /// One JSON object per queue.
        #[arg(long)]
        json: bool,
    },
    /// The letters of one daemon queue's dead-letter queue, one line each (they stay there).
    Show {
        #[command(flatten)]
        common: Common,
        /// The daemon queue (`index`, `sync`, …).
        queue: String,
        /// At most this many letters.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move letters back to their queue, to be handled again.
    Redrive {
        #[command(flatten)]
        common: Common,
        /// The daemon queue.
        queue: String,
        /// At most this many letters (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete every letter of one daemon queue's dead-letter queue.
    Purge {
        #[command(flatten)]
        common: Common,
        /// The daemon queue.
        queue: String,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum InfraCommand {
    /// Create every resource now.
    Local {
        #[command(flatten)]
        common: Common,
    },
}

fn local_issuer(cfg: &Config) -> anyhow::Result<Option<LocalIssuer>> {
    if !cfg.auth.local_issuer_enabled() {
        return Ok(None);
    }
    Ok(Some(
        LocalIssuer::load_or_create(&cfg.keys.dir_in(&cfg.data_dir))
            .context("local signing key (keys.dir)")?,
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// What a process runs.
enum Process {
    /// The API and every daemon with work on the deployment.
    All,
    /// The API, with the daemons it needs beside it.
    Api,
    /// One daemon alone.
    One(Box<dyn Daemon>),
}

impl Process {
    fn api(&self) -> bool {
        matches!(self, Process::All | Process::Api)
    }
}

fn print_banner(cfg: &Config, local: Option<&LocalIssuer>) -> anyhow::Result<()> {
    use std::io::Write;
    let url = cfg.public_url();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "DSS is running at {url}/v1 (API document: {url}/v1/swagger.json)"
    )?;
    writeln!(out, "Data directory: {}", cfg.data_dir.display())?;
    // No token here: this output ends up in log streams that others read.
    if local.is_some() {
        writeln!(
            out,
            "Operator token: `dss token --admin` (with the same data directory) prints one"
        )?;
    }
    out.flush()?;
    Ok(())
}

/// Loads every replica's search index in the background (searches wait for it) and then saves a
/// snapshot of it; returns the replicas whose index is ready.
fn warm_search(deployment: &Deployment) -> Arc<Mutex<Vec<String>>> {
    let ready = Arc::new(Mutex::new(Vec::new()));
    for replica in deployment.replicas.keys() {
        let (search, replica, ready) = (deployment.search.clone(), replica.clone(), ready.clone());
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            if let Err(e) = search.warm_up(&replica).await {
                tracing::error!(%replica, error = %e, "loading the search index failed");
                return;
            }
            tracing::info!(%replica, secs = t.elapsed().as_secs_f64(), "search index ready");
            ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(replica.clone());
            // A snapshot makes the next start quick, also after a crash.
            if let Err(e) = search.persist(&replica).await {
                tracing::warn!(%replica, error = %e, "saving the search snapshot failed");
            }
        });
    }
    ready
}

/// Saves the search snapshots of the replicas whose index finished loading.
async fn persist_search(search: &dyn dss_core::ports::SearchIndex, ready: &Mutex<Vec<String>>) {
    let replicas = ready.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for replica in replicas {
        if let Err(e) = search.persist(&replica).await {
            tracing::warn!(%replica, error = %e, "saving the search snapshot failed");
        }
    }
}

async fn run(cfg: Config, process: Process) -> anyhow::Result<()> {
    let component = match &process {
        Process::All => "up",
        Process::Api => "api",
        Process::One(d) => d.name(),
    };
    let telemetry = dss_runtime::telemetry::init_with_traces(&cfg.log, &cfg.telemetry, component)
        .map_err(anyhow::Error::msg)?;
    let listener = match process.api() {
        false => None,
        true => Some(
            tokio::net::TcpListener::bind(&cfg.api.listen)
                .await
                .with_context(|| format!("binding {}", cfg.api.listen))?,
        ),
    };
    let deployment = wiring::open(&cfg).await?;
    deployment
        .declare_queues()
        .await
        .context("declaring queues")?;
    let everything = matches!(process, Process::All);
    let chosen: Vec<Box<dyn Daemon>> = match process {
        Process::All => daemons::registry()
            .into_iter()
            .filter(|d| d.idle_reason(&deployment).is_none())
            .collect(),
        Process::Api => daemons::registry()
            .into_iter()
            .filter(|d| daemons::WITH_API.contains(&d.name()))
            .collect(),
        Process::One(d) => match d.idle_reason(&deployment) {
            Some(why) => anyhow::bail!(why),
            None => vec![d],
        },
    };
    let stop = CancellationToken::new();
    let mut running = tokio::task::JoinSet::new();
    for daemon in chosen {
        let (d, token) = (deployment.clone(), stop.clone());
        running.spawn(async move {
            dss_runtime::daemon::run(&*daemon, &d, token)
                .await
                .map_err(|e| anyhow::anyhow!("{} daemon: {e}", daemon.name()))
        });
    }
    match listener {
        Some(listener) => {
            let local = local_issuer(&cfg)?;
            let ready = warm_search(&deployment);
            let state = dss_api::state(deployment, local.as_ref())?;
            tracing::info!(url = %cfg.public_url(), data_dir = %cfg.data_dir.display(), replicas = ?cfg.replicas.keys().collect::<Vec<_>>(), "DSS API listening");
            // The banner is for a person at a terminal: a closed stdout does not stop the API.
            if everything && let Err(e) = print_banner(&cfg, local.as_ref()) {
                tracing::warn!(error = %e, "could not print the banner");
            }
            let search = state.deployment.search.clone();
            dss_api::serve(listener, state, shutdown_signal()).await?;
            persist_search(&*search, &ready).await;
        }
        None => match &cfg.metrics.listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics.listen {addr}"))?;
                tracing::info!(%addr, "metrics served at /metrics");
                dss_api::serve_metrics(listener, deployment.clone(), shutdown_signal()).await?;
            }
            None => shutdown_signal().await,
        },
    }
    stop.cancel();
    while let Some(done) = running.join_next().await {
        done.context("daemon task")??;
    }
    tracing::info!("stopped");
    // The exporter's last batch leaves from a thread of its own.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = daemons::command::<Cli>()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
        .unwrap_or_else(|e| e.exit());
    match dispatch(cli).await {
        // Output piped into `head` and the like: the reader had enough.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

async fn ops_command(command: OpsCommand) -> anyhow::Result<()> {
    match command {
        OpsCommand::Config {
            common,
            check,
            json,
        } => {
            let cfg = common.load(None)?;
            if check {
                println!("the configuration is valid");
                return Ok(());
            }
            let sources =
                dss_config::sources(&common.files(), std::env::vars(), &common.overrides(None))?;
            effective_config::print(&cfg, &sources, json)
        }
        OpsCommand::Verify {
            what:
                VerifyCommand::Replicas {
                    common,
                    prefix,
                    repair,
                    json,
                },
        } => ops::reconcile(&common.load(None)?, prefix, repair, json).await,
        OpsCommand::Verify {
            what:
                VerifyCommand::Integrity {
                    common,
                    replica,
                    json,
                },
        } => integrity::run(&common.load(None)?, replica.as_deref(), json).await,
        OpsCommand::Queues(args) => args.run().await,
        OpsCommand::Events {
            command:
                EventsCommand::Replay {
                    common,
                    to,
                    replica,
                    prefix,
                    since,
                    until,
                    dry_run,
                    restart,
                    json,
                },
        } => {
            let opts = replay::Options {
                to,
                replicas: replica,
                prefixes: prefix,
                since,
                until,
                dry_run,
                restart,
                json,
            };
            replay::run(&common.load(None)?, opts).await
        }
        OpsCommand::Reindex {
            common,
            replica,
            prefix,
            prune,
            restart,
            page_size,
            json,
        } => {
            let opts = reindex::Options {
                replicas: replica,
                prefix,
                prune,
                restart,
                page_size,
                json,
            };
            reindex::run(&common.load(None)?, opts).await
        }
        OpsCommand::Checkout {
            command:
                CheckoutCommand::Status {
                    common,
                    job,
                    replica,
                    json,
                },
        } => ops::checkout_status(&common.load(None)?, &job, replica.as_deref(), json).await,
        OpsCommand::Subscriptions {
            command: SubscriptionsCommand::Deliveries(args),
        } => args.run().await,
        OpsCommand::Dlq { command } => match command {
            DlqCommand::List { common, json } => dlq::list(&common.load(None)?, json).await,
            DlqCommand::Show {
                common,
                queue,
                limit,
                json,
            } => dlq::show(&common.load(None)?, &queue, limit, json).await,
            DlqCommand::Redrive {
                common,
                queue,
                limit,
                json,
            } => dlq::redrive(&common.load(None)?, &queue, limit, json).await,
            DlqCommand::Purge {
                common,
                queue,
                json,
            } => dlq::purge(&common.load(None)?, &queue, json).await,
        },
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { common, listen } => run(common.load(listen.as_deref())?, Process::All).await,
        Command::Api { common, listen } => run(common.load(listen.as_deref())?, Process::Api).await,
        Command::Daemon(args) => {
            let (daemon, common) = daemons::parse(&args)?;
            run(common.load(None)?, Process::One(daemon)).await
        }
        Command::Reconcile {
            common,
            prefix,
            json,
        } => ops::reconcile(&common.load(None)?, prefix, true, json).await,
        Command::Ops { command } => ops_command(command).await,
        Command::Infra {
            command: InfraCommand::Local { common },
        } => {
            let cfg = common.load(None)?;
            dss_runtime::telemetry::init(&cfg.log);
            infra::local(&wiring::open(&cfg).await?).await
        }
        Command::Queues(args) => args.run().await,
        Command::Upload(args) => args.run().await,
        Command::Download(args) => args.run().await,
        Command::Search(args) => args.run().await,
        Command::Deliveries(args) => args.run().await,
        Command::Resend {
            common,
            ids,
            subscription,
            json,
        } => ops::resend(&common.load(None)?, ids, subscription.as_deref(), json).await,
        Command::Token {
            common,
            email,
            group,
            admin,
            ttl,
        } => {
            let cfg = common.load(None)?;
            let local = local_issuer(&cfg)?.context(
                "the local issuer is off (auth.local_issuer, or other issuers configured); tokens come from your identity provider",
            )?;
            let token = local.mint(&email, &group, admin, ttl, &cfg.auth)?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{token}")?;
            Ok(())
        }
    }
}
