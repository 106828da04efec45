//! VmGuest: one QEMU VM, or a template built from a cloud image. What is particular to VMs
//! — their PVE config and plan, the image they are built from, the guest agent their
//! addresses and commands go through, their swarm role — is here; the controller itself
//! is the shared one in [`crate::guest`].

pub mod agent;
pub mod plan;
pub mod render;
pub mod snippets;
pub mod swarm;

use crate::conditions::reason;
use crate::error::Error;
use crate::guest::observe::Live;
use crate::guest::plan::{Observed, Step};
use crate::guest::{Guest, GuestContext, Population, Progress, converge};
use crate::pve::Connection;
use kube::ResourceExt;
use phoenix_clients::proxmox::{ErrorKind, GuestType, Params};
use phoenix_crds::VmGuest;
use phoenix_crds::common::{CommonStatus, GuestObservation, PhoenixKind};
use phoenix_crds::guest::{CloneSource, GuestCommon};
use phoenix_crds::vm::VmGuestStatus;
use render::Inputs;
use std::collections::BTreeMap;

pub const KIND: &str = "VmGuest";

impl Guest for VmGuest {
    const KIND: &'static str = KIND;
    const PHOENIX_KIND: PhoenixKind = PhoenixKind::VmGuest;
    const TYPE: GuestType = GuestType::Qemu;
    const LABEL: &'static str = "VM";
    type Status = VmGuestStatus;
    type Inputs = Inputs;

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

    fn status(&self) -> Option<&VmGuestStatus> {
        self.status.as_ref()
    }

    fn parts(status: &mut VmGuestStatus) -> (&mut CommonStatus, &mut GuestObservation) {
        (&mut status.common, &mut status.guest)
    }

    fn view(status: &VmGuestStatus) -> (&CommonStatus, &GuestObservation) {
        (&status.common, &status.guest)
    }

    fn population(ctx: &GuestContext) -> &Population<Self> {
        &ctx.vm
    }

    /// The authorized keys of `cloudInit.sshKeysSecretRefs`, in order, and the user data.
    async fn inputs(&self, kube: &kube::Client) -> Result<Inputs, Error> {
        let Some(ci) = &self.spec.cloud_init else {
            return Ok(Inputs::default());
        };
        let own = self.namespace().unwrap_or_default();
        let user_data = match &ci.user_data {
            Some(reference) => Some(user_data(kube, &own, reference).await?),
            None => None,
        };
        let refs = &ci.ssh_keys_secret_refs;
        if refs.is_empty() {
            return Ok(Inputs {
                ssh_keys: None,
                user_data,
            });
        }
        let mut keys = Vec::new();
        for (namespace, name, key) in ssh_key_sources(&own, refs) {
            let ([text], _) = crate::pve::secret_texts(kube, namespace, name, [key]).await?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned),
            );
        }
        Ok(Inputs {
            ssh_keys: Some(keys.join("\n")),
            user_data,
        })
    }

    async fn prepare(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        node: &str,
        inputs: &Inputs,
        steps: &[Step],
    ) -> Result<(), Error> {
        match &inputs.user_data {
            Some(data) if snippets::wanted_by(steps) => {
                snippets::ensure(&self.spec, ctx, pve, node, data).await
            }
            _ => Ok(()),
        }
    }

    fn desired_config(&self, owner_uid: &str, inputs: &Inputs) -> BTreeMap<String, String> {
        render::config(&self.spec, owner_uid, inputs)
    }

    fn plan(&self, owner_uid: &str, inputs: &Inputs, observed: Option<&Observed>) -> Vec<Step> {
        plan::plan(&self.spec, owner_uid, inputs, observed)
    }

    fn clone_params(&self, owner_uid: &str) -> Params {
        converge::clone_params(self, "name", &self.spec.name, owner_uid)
    }

    /// The image is on its storage (or will be downloaded first), or the clone source is
    /// a VM template.
    async fn preflight(
        &self,
        _ctx: &GuestContext,
        pve: &Connection,
        node: &str,
    ) -> Result<Vec<Step>, Error> {
        let Some(image) = &self.spec.source.cloud_image else {
            return Ok(Vec::new());
        };
        let volume = render::image_volume(image);
        let (storage, _) = volume.split_once(':').unwrap_or((&volume, ""));
        let present = match pve.client.storage_content(node, storage, "import").await {
            Ok(volumes) => volumes.contains(&volume),
            Err(e) if e.kind == ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        match (&image.url, present) {
            (_, true) => Ok(Vec::new()),
            (Some(url), false) => Ok(vec![Step::Download {
                storage: image.download_storage.clone(),
                filename: render::download_name(image),
                url: url.clone(),
                checksum: image.checksum.clone(),
            }]),
            (None, false) => Err(Error::spec(
                reason::IMAGE_NOT_FOUND,
                format!("{volume} is not on storage {storage} of node {node}"),
            )),
        }
    }

    fn host_powers(&self) -> Vec<String> {
        let spec = &self.spec;
        let pci = spec.pci_devices.iter().map(|d| {
            let name = d.mapping.as_deref().or(d.id.as_deref()).unwrap_or("?");
            format!("PCI device {name}")
        });
        // An image is imported from a storage's `import/` content; any other volume is
        // some guest's disk.
        let volume = spec
            .source
            .cloud_image
            .as_ref()
            .and_then(|i| i.volume.as_ref())
            .filter(|v| {
                !v.split_once(':')
                    .is_some_and(|(_, p)| p.starts_with("import/"))
            })
            .map(|v| format!("import-from of volume {v}"));
        pci.chain(volume).collect()
    }

    async fn addresses(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut VmGuestStatus,
    ) -> Result<Result<Vec<String>, Progress>, Error> {
        agent::addresses(self, ctx, pve, live, status).await
    }

    /// The agent answered during this boot; it is not asked again until the VM restarts
    /// or its network changes (`guest/address_memo.rs`), so an agent that stops later is
    /// not reported until then.
    fn addresses_recalled(&self, status: &mut VmGuestStatus) {
        status.agent = Some(agent::answered(self).into());
    }

    /// The first template built is generation 1; each rebuild from a changed source is
    /// the next.
    fn task_started(&self, step: &Step, status: &mut VmGuestStatus) {
        let generation = &mut status.template_generation;
        match step {
            Step::Create { .. } if self.spec.template => {
                *generation = Some(generation.unwrap_or(1))
            }
            Step::Destroy => *generation = Some(generation.unwrap_or(1) + 1),
            _ => {}
        }
    }

    async fn settle(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut VmGuestStatus,
        ready: Progress,
    ) -> Result<Progress, Error> {
        swarm::settle(self, ctx, pve, live, status, ready).await
    }

    async fn before_removal(
        &self,
        ctx: &GuestContext,
        pve: &Connection,
        live: &Live,
        status: &mut VmGuestStatus,
    ) -> Result<Option<Progress>, Error> {
        swarm::leave(self, ctx, pve, live, status).await
    }
}

/// Where the authorized keys are read: (namespace, Secret, key) of each reference. Always
/// the guest's own namespace: a reference's `namespace` is refused at admission and
/// ignored here (an object stored before that rule reads no other namespace either).
fn ssh_key_sources<'a>(
    own: &'a str,
    refs: &'a [phoenix_crds::common::SecretKeyRef],
) -> Vec<(&'a str, &'a str, &'a str)> {
    refs.iter()
        .map(|r| (own, r.name.as_str(), r.key.as_str()))
        .collect()
}

/// The user data in a ConfigMap key; missing is waited for (retried), not fatal.
async fn user_data(
    kube: &kube::Client,
    namespace: &str,
    reference: &phoenix_crds::common::ConfigMapKeyRef,
) -> Result<String, Error> {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(kube.clone(), namespace);
    let text = api
        .get_opt(&reference.name)
        .await?
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(&reference.key));
    text.ok_or_else(|| Error::Input {
        reason: reason::USER_DATA_NOT_FOUND,
        message: format!(
            "cloudInit.userData: ConfigMap {namespace}/{} has no key {:?} (yet)",
            reference.name, reference.key
        ),
    })
}

/// An example VM's spec from `examples/`, for the tests of this module's parts.
#[cfg(test)]
pub(crate) fn example(file: &str) -> phoenix_crds::vm::VmGuestSpec {
    crate::examples::example::<VmGuest>(file).spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use phoenix_crds::common::SecretKeyRef;

    #[test]
    fn authorized_keys_are_read_from_the_guests_own_namespace_only() {
        let refs = [
            SecretKeyRef {
                name: "admin-ssh-keys".into(),
                key: "authorized_keys".into(),
                namespace: None,
            },
            // Refused at admission; an object stored before that rule still never reads
            // another namespace's Secret.
            SecretKeyRef {
                name: "pve-ssh".into(),
                key: "id_ed25519".into(),
                namespace: Some("phoenix-system".into()),
            },
        ];
        assert_eq!(
            ssh_key_sources("tenant-a", &refs),
            [
                ("tenant-a", "admin-ssh-keys", "authorized_keys"),
                ("tenant-a", "pve-ssh", "id_ed25519"),
            ]
        );
    }
}
