//! The node settings area performed: read the time zone and resolver from PVE, decide
//! (`settings::plan`), and set what differs; drift (a converged setting changed outside
//! Phoenix) is corrected or reported as the spec says.

use super::settings::{self, Change};
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use kube::runtime::events::EventType;
use phoenix_crds::common::DriftPolicy;

pub async fn reconcile(pass: &HostPass<'_>, converged_before: bool) -> Result<Area, Error> {
    let spec = &pass.host.spec;
    if spec.timezone.is_none() && spec.resolver.is_none() {
        return Ok(Area::ready(
            reason::NOT_MANAGED,
            "no node settings in the spec".into(),
        ));
    }
    let client = &pass.pve.client;
    let observed = settings::Observed {
        timezone: client
            .timezone(&pass.node)
            .await
            .map_err(|e| Error::host_step("read the time zone", e))?,
        resolver: client
            .resolver(&pass.node)
            .await
            .map_err(|e| Error::host_step("read the resolver", e))?,
    };
    let changes = settings::plan(spec, &observed);
    let described: Vec<String> = changes.iter().map(ToString::to_string).collect();
    if converged_before && !changes.is_empty() && pass.drift_policy == DriftPolicy::Report {
        return Ok(Area::drifted(format!(
            "{} differs from the spec ({}); driftPolicy Report leaves it",
            pass.node,
            described.join("; ")
        )));
    }
    for change in &changes {
        apply(pass, change).await?;
    }
    // Told once the change is made, not before.
    if !changes.is_empty() {
        let (reason, verb) = match converged_before {
            true => (reason::DRIFT_CORRECTED, "put back"),
            false => (reason::SETTINGS_APPLIED, "set"),
        };
        let note = format!("{}: {verb} {}", pass.node, described.join("; "));
        pass.event(EventType::Normal, reason, note).await;
    }
    Ok(Area::ready(
        reason::SETTINGS_APPLIED,
        format!("time zone and resolver of {} as the spec says", pass.node),
    ))
}

async fn apply(pass: &HostPass<'_>, change: &Change) -> Result<(), Error> {
    let (client, node) = (&pass.pve.client, pass.node.as_str());
    match change {
        Change::Timezone(zone) => client
            .set_timezone(node, zone)
            .await
            .map_err(|e| Error::host_step("set the time zone", e)),
        Change::Resolver { search, servers } => client
            .set_resolver(node, search, servers)
            .await
            .map_err(|e| Error::host_step("set the resolver", e)),
    }
}
