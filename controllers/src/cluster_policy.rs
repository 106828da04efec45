//! What a ProxmoxCluster lets a namespace do: use the cluster at all (`allowedNamespaces`),
//! and use host-level powers (`hostPowers`) — the things that reach past a guest into the
//! host: hostPath mounts, `/dev` devices, privileged containers, PCI passthrough, cloning
//! a template another namespace made, importing a volume that is not an image.

use crate::conditions::reason;
use crate::error::Error;
use kube::ResourceExt;
use phoenix_crds::ProxmoxCluster;

/// Whether an object of `namespace` using `powers` (each described, e.g. "hostPath mount
/// /srv") may act on `cluster`; refused (permanently, until the spec or the cluster
/// changes) with the reason and what was refused.
pub fn admit(cluster: &ProxmoxCluster, namespace: &str, powers: &[String]) -> Result<(), Error> {
    let spec = &cluster.spec;
    let name = cluster.name_any();
    if !spec.allowed_namespaces.is_empty()
        && !spec.allowed_namespaces.iter().any(|n| n == namespace)
    {
        return Err(Error::spec(
            reason::NAMESPACE_NOT_ALLOWED,
            format!("ProxmoxCluster {name} does not allow namespace {namespace}"),
        ));
    }
    let Some(allowed) = &spec.host_powers else {
        return Ok(());
    };
    if powers.is_empty() || allowed.namespaces.iter().any(|n| n == namespace) {
        return Ok(());
    }
    Err(Error::spec(
        reason::HOST_POWER_NOT_ALLOWED,
        format!(
            "ProxmoxCluster {name} allows host-level powers to namespaces [{}] only; this uses {}",
            allowed.namespaces.join(", "),
            powers.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: serde_json::Value) -> ProxmoxCluster {
        let mut spec = serde_json::json!({
            "endpoint": "https://127.0.0.1:8006",
            "credentialsSecretRef": {"name": "pve-token"},
        });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(serde_json::json!({
            "apiVersion": "phoenix.thinkheads.ai/v1alpha1",
            "kind": "ProxmoxCluster",
            "metadata": {"name": "homelab"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn namespaces_and_host_powers_follow_the_cluster() {
        use serde_json::json;
        let open = cluster(json!({}));
        let listed = cluster(json!({"allowedNamespaces": ["platform", "lab"]}));
        let powers = cluster(json!({"hostPowers": {"namespaces": ["platform"]}}));
        let gpu = vec!["device /dev/nvidia0".to_owned()];
        // (cluster, namespace, powers used, the refusal's reason)
        let table: Vec<(&ProxmoxCluster, &str, &[String], Option<&str>)> = vec![
            (&open, "anyone", &gpu, None),
            (&listed, "lab", &[], None),
            (&listed, "tenant", &[], Some("NamespaceNotAllowed")),
            (&listed, "lab", &gpu, None),
            (&powers, "platform", &gpu, None),
            (&powers, "tenant", &[], None),
            (&powers, "tenant", &gpu, Some("HostPowerNotAllowed")),
        ];
        for (cluster, namespace, used, expected) in table {
            let got = admit(cluster, namespace, used).err();
            assert_eq!(
                got.as_ref().map(Error::category),
                expected,
                "{namespace} {used:?}"
            );
            if let Some(e) = got {
                assert!(e.is_permanent());
            }
        }
        let refused = admit(&powers, "tenant", &gpu).unwrap_err().to_string();
        assert!(refused.contains("device /dev/nvidia0") && refused.contains("[platform]"));
    }
}
