//! Where the platform's CA root is published: the Certificate controller writes it, the
//! guests' `trusted-ca` feature reads it. Neither owns the other, so the names live here.

/// The namespace of the ConfigMap holding the CA root.
pub const NAMESPACE: &str = "phoenix-system";
/// The ConfigMap holding the CA root (PEM) under [`KEY`].
pub const CONFIGMAP: &str = "phoenix-ca-root";
pub const KEY: &str = "ca.crt";
