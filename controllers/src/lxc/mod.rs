//! LxcGuest: one container. What is particular to containers — their PVE config, their
//! plan, the OS template they are created from, and where their addresses come from — is
//! here; the controller itself is the shared one in [`crate::guest`].

pub mod plan;
pub mod render;

use crate::conditions::reason;
use crate::error::Error;
use crate::guest::observe::{self, Live};
use crate::guest::plan::{Observed, Step};
use crate::guest::{Guest, GuestContext, Population, Progress, converge};
use crate::pve::Connection;
use phoenix_clients::proxmox::{ErrorKind, GuestType, Params};
use phoenix_crds::LxcGuest;
use phoenix_crds::common::{CommonStatus, GuestObservation, PhoenixKind};
use phoenix_crds::guest::{CloneSource, GuestCommon};
use phoenix_crds::lxc::LxcGuestStatus;
use std::collections::BTreeMap;
use std::time::Duration;

pub const KIND: &str = "LxcGuest";

impl Guest for LxcGuest {
    const KIND: &'static str = KIND;
    const PHOENIX_KIND: PhoenixKind = PhoenixKind::LxcGuest;
    const TYPE: GuestType = GuestType::Lxc;
    const LABEL: &'static str = "CT";
    type Status = LxcGuestStatus;

    fn vmid(&self) -> u32 {
        self.spec.vmid
    }

    fn common(&self) -> &GuestCommon {
        &self.spec.common
    }

    fn wants_template(&self) -> bool {
        self.spec.template
    }

    fn clone_source(&self) -> Option<&CloneSource> {
        self.spec.source.clone.as_ref()
    }

    fn status(&self) -> Option<&LxcGuestStatus> {
        self.status.as_ref()
    }

    fn parts(status: &mut LxcGuestStatus) -> (&mut CommonStatus, &mut GuestObservation) {
        (&mut status.common, &mut status.guest)
    }

    fn view(status: &LxcGuestStatus) -> (&CommonStatus, &GuestObservation) {
        (&status.common, &status.guest)
    }

    fn population(ctx: &GuestContext) -> &Population<Self> {
        &ctx.lxc
    }

    type Inputs = ();

    async fn inputs(&self, _kube: &kube::Client) -> Result<(), Error> {
        Ok(())
    }

    fn desired_config(&self, owner_uid: &str, _inputs: &()) -> BTreeMap<String, String> {
        render::config(&self.spec, owner_uid)
    }

    fn plan(&self, owner_uid: &str, _inputs: &(), observed: Option<&Observed>) -> Vec<Step> {
        plan::plan(&self.spec, owner_uid, observed)
    }

    fn clone_params(&self, owner_uid: &str) -> Params {
        converge::clone_params(self, "hostname", &self.spec.hostname, owner_uid)
    }

    async fn preflight(
        &self,
        _ctx: &GuestContext,
        pve: &Connection,
        node: &str,
    ) -> Result<Vec<Step>, Error> {
        if let Some(ostemplate) = &self.spec.source.ostemplate {
            let storage = ostemplate.split(':').next().unwrap_or_default();
            let volumes = match pve.client.storage_content(node, storage, "vztmpl").await {
                Ok(v) => v,
                Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            if !volumes.contains(ostemplate) {
                return Err(Error::spec(
                    reason::TEMPLATE_NOT_FOUND,
                    format!("{ostemplate} is not on storage {storage} of node {node}"),
                ));
            }
        }
        Ok(Vec::new())
    }

    fn host_powers(&self) -> Vec<String> {
        let spec = &self.spec;
        let mounts = spec
            .mount_points
            .iter()
            .filter_map(|m| m.host_path.as_ref())
            .map(|p| format!("hostPath mount {p}"));
        let devices = spec.devices.iter().map(|d| format!("device {}", d.path));
        let privileged = (!spec.unprivileged).then(|| "a privileged container".to_owned());
        mounts.chain(devices).chain(privileged).collect()
    }

    async fn addresses(
        &self,
        _ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        _status: &mut LxcGuestStatus,
    ) -> Result<Result<Vec<String>, Progress>, Error> {
        let interfaces = pve
            .client
            .lxc_interfaces(&live.node, self.spec.vmid)
            .await?;
        let ips = observe::first_address(&interfaces);
        if ips.is_empty() {
            return Ok(Err(Progress::Waiting {
                reason: reason::WAITING_FOR_ADDRESS,
                message: format!("CT {} runs; waiting for its address", self.spec.vmid),
                retry: Duration::from_secs(2),
            }));
        }
        Ok(Ok(ips))
    }

    async fn settle(
        &self,
        _ctx: &GuestContext,
        _pve: &Connection,
        _live: &Live,
        _status: &mut LxcGuestStatus,
        ready: Progress,
    ) -> Result<Progress, Error> {
        Ok(ready)
    }

    async fn before_removal(
        &self,
        _ctx: &GuestContext,
        _pve: &Connection,
        _live: &Live,
        _status: &mut LxcGuestStatus,
    ) -> Result<Option<Progress>, Error> {
        Ok(None)
    }
}
