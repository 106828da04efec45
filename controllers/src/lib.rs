//! Phoenix's controllers: one module per kind, each a kube-runtime `Controller` with one
//! reconcile function, plus the machinery they share. Controllers only speak the Kubernetes
//! API and the clients in `phoenix-clients`, so the same code runs embedded under
//! `phoenix up` and inside k3s.
//!
//! Built so far: [`conditions`] (kept transition times), [`dependencies`] (the `dependsOn`
//! gate with cycle detection), [`lxc`] (spec → PVE config, and the plan of steps, pure) and
//! the [`proxmox_cluster`] reconcile pass. The controller loops, finalizers, VMID claims and
//! metrics land with the LxcGuest issue.

pub mod conditions;
pub mod dependencies;
pub mod lxc;
pub mod proxmox_cluster;
