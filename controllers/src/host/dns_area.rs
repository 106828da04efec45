//! The DNS area performed: observe dnsmasq's files on the node with one command, decide
//! (`dnsmasq::plan`, drift told apart by the digest status remembers), and make the
//! changes — each a named step, so a failure says which.

use super::dnsmasq::{self, Change};
use super::node_steps::{argv, step, write};
use super::records::Records;
use super::{Area, HostPass};
use crate::conditions::reason;
use crate::error::Error;
use kube::runtime::events::EventType;
use phoenix_crds::common::DriftPolicy;
use phoenix_crds::proxmox_host::{DnsStatus, Dnsmasq};
/// Where a new main config waits for `dnsmasq --test` (outside /etc/dnsmasq.d, whose
/// every file dnsmasq would read on a restart by anyone).
const CANDIDATE: &str = "/etc/phoenix/dnsmasq/phoenix.conf.candidate";

/// Record files are read by dnsmasq after it dropped root: readable by all (they hold
/// names and addresses only).
const RECORD_MODE: u32 = 0o644;

pub async fn reconcile(
    pass: &HostPass<'_>,
    spec: &Dnsmasq,
    records: &Records,
    status: &mut Option<DnsStatus>,
) -> Result<Area, Error> {
    let config =
        dnsmasq::render(&pass.name, spec).map_err(|m| Error::spec(reason::INVALID_DNSMASQ, m))?;
    let output = step(pass, "observe dnsmasq", dnsmasq::observe_command()).await?;
    let observed = dnsmasq::parse_observed(&output.output);
    let wanted = dnsmasq::wanted_hashes(&config, records);
    let digest = dnsmasq::digest(&wanted);
    let applied = status.as_ref().and_then(|s| s.applied_digest.clone());
    let changes = dnsmasq::plan(&config, records, &observed);
    let on_node = dnsmasq::digest(&observed.hashes);
    // The node differs from what Phoenix last put there, or dnsmasq was stopped: someone
    // changed it.
    let drifted = !changes.is_empty()
        && applied
            .as_ref()
            .is_some_and(|a| *a != on_node || !observed.active);
    let summary = DnsStatus {
        records: records.names as u32,
        files: records.files.len() as u32,
        waiting: records.waiting.clone(),
        applied_digest: applied.clone(),
    };
    if drifted && pass.drift_policy == DriftPolicy::Report {
        *status = Some(summary);
        return Ok(Area::drifted(format!(
            "dnsmasq on {} was changed outside Phoenix ({} changes to put back); driftPolicy Report leaves it, and writes nothing there until it is put back or the policy changes",
            pass.node,
            changes.len()
        )));
    }
    if let Err(e) = perform(pass, &config, records, &changes).await {
        // Part of the change may be on the node: what is there is no longer known to be
        // Phoenix's, so the next pass converges without calling it drift.
        *status = Some(DnsStatus {
            applied_digest: None,
            ..summary
        });
        return Err(e);
    }
    if drifted {
        let note = format!(
            "dnsmasq's files on {} put back ({} changes)",
            pass.node,
            changes.len()
        );
        pass.event(EventType::Normal, reason::DRIFT_CORRECTED, note)
            .await;
    }
    *status = Some(DnsStatus {
        applied_digest: Some(digest),
        ..summary
    });
    Ok(Area::ready(
        reason::DNS_SERVING,
        serving(records, &pass.node),
    ))
}

fn serving(records: &Records, node: &str) -> String {
    let mut message = format!(
        "dnsmasq on {node} answers {} names from {} record files",
        records.names,
        records.files.len()
    );
    if !records.waiting.is_empty() {
        message.push_str(&format!("; waiting for {}", records.waiting.join(", ")));
    }
    message
}

async fn perform(
    pass: &HostPass<'_>,
    config: &str,
    records: &Records,
    changes: &[Change],
) -> Result<(), Error> {
    let (mut written, mut removed) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::WriteRecord(name) => {
                let path = dnsmasq::record_path(name);
                write(
                    pass,
                    &format!("write record {name}"),
                    &path,
                    &records.files[name],
                    RECORD_MODE,
                )
                .await?;
                written.push(name.as_str());
            }
            Change::RemoveRecord(name) => {
                let path = dnsmasq::record_path(name);
                step(
                    pass,
                    &format!("remove record {name}"),
                    argv(&["rm", "-f", &path]),
                )
                .await?;
                removed.push(name.as_str());
            }
            Change::WriteConfig => activate(pass, config).await?,
            Change::Start => start(pass).await?,
        }
    }
    if !written.is_empty() || !removed.is_empty() {
        let note = format!(
            "dnsmasq records on {}: wrote [{}], removed [{}]",
            pass.node,
            written.join(", "),
            removed.join(", ")
        );
        pass.event(EventType::Normal, reason::RECORDS_UPDATED, note)
            .await;
    }
    Ok(())
}

/// The new main config: checked by dnsmasq itself before it replaces the running one.
async fn activate(pass: &HostPass<'_>, config: &str) -> Result<(), Error> {
    write(pass, "write dnsmasq config", CANDIDATE, config, 0o644).await?;
    let test = format!("--conf-file={CANDIDATE}");
    step(
        pass,
        "check dnsmasq config",
        argv(&["dnsmasq", "--test", &test]),
    )
    .await?;
    step(
        pass,
        "activate dnsmasq config",
        argv(&["mv", CANDIDATE, dnsmasq::CONFIG_PATH]),
    )
    .await?;
    start(pass).await
}

async fn start(pass: &HostPass<'_>) -> Result<(), Error> {
    step(
        pass,
        "create the records directory",
        argv(&["mkdir", "-p", dnsmasq::HOSTS_DIR]),
    )
    .await?;
    step(
        pass,
        "enable dnsmasq",
        argv(&["systemctl", "enable", dnsmasq::UNIT]),
    )
    .await?;
    step(
        pass,
        "restart dnsmasq",
        argv(&["systemctl", "restart", dnsmasq::UNIT]),
    )
    .await?;
    let note = format!("dnsmasq restarted on {} with Phoenix's config", pass.node);
    pass.event(EventType::Normal, reason::DNSMASQ_RESTARTED, note)
        .await;
    Ok(())
}
