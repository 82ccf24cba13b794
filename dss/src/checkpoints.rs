//! Where operator runs keep their checkpoints: in the replica's checkout bucket, which every
//! host reaches, held by one run at a time (a lease in the metadata store).

use anyhow::Context;
use dss_runtime::checkpoint::Checkpoint;
use dss_runtime::daemon::LeaseHolder;
use dss_runtime::deployment::Deployment;

/// The checkpoint `name` of a run over `replica`.
pub fn of(dep: &Deployment, replica: &str, name: &str) -> anyhow::Result<Checkpoint> {
    let r = dep
        .replicas
        .get(replica)
        .with_context(|| format!("--replica {replica}: no such replica"))?;
    Ok(
        Checkpoint::in_bucket(r.checkout.clone(), format!("ops/checkpoints/{name}"))
            .exclusive(LeaseHolder::of(dep)),
    )
}
