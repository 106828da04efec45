//! Where each cluster's CA root is published: the Certificate controller writes it (only
//! the cluster's own Step-CA root), the guests' `trusted-ca` feature and Docker read it. Neither owns the other, so the names live here.

/// The namespace of the ConfigMap holding the CA root.
pub const NAMESPACE: &str = "phoenix-system";
/// The ConfigMap holding each ProxmoxCluster's Step-CA root (PEM) under [`key`].
pub const CONFIGMAP: &str = "phoenix-ca-root";

/// The key of `cluster`'s root: `<cluster>.crt`.
pub fn key(cluster: &str) -> String {
    format!("{cluster}.crt")
}
