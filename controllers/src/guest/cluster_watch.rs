//! Looks at every connected cluster on the view's interval and wakes the guests whose
//! summary changed — stopped or started by hand, migrated, locked, restarted, appeared or
//! vanished — so that is noticed within the interval, not at the next resync.

use super::{Guest, GuestContext};
use crate::cluster_view::Freshness;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Runs until dropped.
pub async fn watch(ctx: Arc<GuestContext>) {
    let mut tick = tokio::time::interval(ctx.view_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A snapshot a pass took since the last tick will do: no second call for it.
    let fresh_enough = Freshness::Within(ctx.view_interval / 2);
    loop {
        tick.tick().await;
        for pve in ctx.pve.connected() {
            if let Err(e) = pve.view.read(&pve.client, fresh_enough).await {
                let cluster = pve.cluster.metadata.name.clone().unwrap_or_default();
                tracing::warn!(%cluster, "cannot look at the cluster's guests: {e}");
                continue;
            }
            wake(&ctx, &pve.view.take_changes());
        }
    }
}

fn wake(ctx: &GuestContext, vmids: &BTreeSet<u32>) {
    if vmids.is_empty() {
        return;
    }
    tracing::debug!(?vmids, "guests changed in PVE");
    ctx.lxc.wake_where(|g| vmids.contains(&g.vmid()));
    ctx.vm.wake_where(|g| vmids.contains(&g.vmid()));
}
