//! The registry of daemons. `dss up` runs every daemon that has work on the deployment, `dss api`
//! the API with the daemons it needs beside it, and `dss <name>` one daemon alone. Adding a
//! daemon is its crate (a [`Daemon`]) and one line in [`registry`].

use clap::{Args, CommandFactory, FromArgMatches};
use dss_runtime::daemon::Daemon;

use crate::Common;

/// Every daemon, in the order they start.
pub fn registry() -> Vec<Box<dyn Daemon>> {
    vec![
        Box::new(dss_ingest::IngestDaemon),
        Box::new(dss_index::IndexDaemon),
        Box::new(dss_notify::NotifyDaemon),
        Box::new(dss_checkout::CheckoutDaemon),
        Box::new(dss_sync::SyncDaemon::default()),
        Box::new(dss_event_relay::RelayDaemon::new(
            crate::wiring::gcp::RelayEnds,
        )),
    ]
}

/// Daemons that `dss api` runs beside the API: the copies of large files its `PUT /files`
/// answered 202 for.
pub const WITH_API: &[&str] = &["ingest"];

/// The daemons, a line each, for `dss --help`.
pub fn help() -> String {
    let mut text =
        String::from("Daemons (`dss <daemon> [--config FILE] [--data-dir DIR]` runs one alone):\n");
    for d in registry() {
        text.push_str(&format!("  {:<12} {}\n", d.name(), d.about()));
    }
    text
}

// The options of `dss <daemon>` (no doc comment: it would replace the daemon's about text).
#[derive(Args)]
struct DaemonArgs {
    #[command(flatten)]
    common: Common,
}

/// The daemon `args[0]` names, and its options parsed from the rest (`--help` prints them
/// and exits).
pub fn parse(args: &[String]) -> anyhow::Result<(Box<dyn Daemon>, Common)> {
    let name = args.first().map(String::as_str).unwrap_or_default();
    let Some(daemon) = registry().into_iter().find(|d| d.name() == name) else {
        let names: Vec<&str> = registry().iter().map(|d| d.name()).collect::<Vec<_>>();
        anyhow::bail!(
            "`dss {name}` is neither a command nor a daemon (daemons: {}); see `dss --help`",
            names.join(", ")
        );
    };
    let cmd = DaemonArgs::augment_args(
        clap::Command::new(daemon.name())
            .bin_name(format!("dss {name}"))
            .about(format!("Run only the {name} daemon: {}.", daemon.about())),
    );
    let matches = cmd.try_get_matches_from(args).unwrap_or_else(|e| e.exit());
    let parsed = DaemonArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Ok((daemon, parsed.common))
}

/// `dss`'s command line, with the daemons listed in its help.
pub fn command<C: CommandFactory>() -> clap::Command {
    C::command().after_help(help())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_daemon_is_found_by_its_name_and_takes_the_common_options() {
        let names: Vec<&str> = registry().iter().map(|d| d.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "names are unique: {names:?}");
        for name in &names {
            let args = [name.to_string(), "--data-dir".into(), "/tmp/d".into()];
            let (d, common) = parse(&args).expect("parsed");
            assert_eq!(d.name(), *name);
            assert_eq!(
                common.data_dir.as_deref(),
                Some(std::path::Path::new("/tmp/d"))
            );
            assert!(help().contains(name), "listed in the help");
        }
        let e = parse(&["indx".to_string()])
            .err()
            .expect("unknown")
            .to_string();
        assert!(e.contains("index") && e.contains("notify"), "{e}");
        for name in WITH_API {
            assert!(names.contains(name), "{name} is a registered daemon");
        }
    }
}
