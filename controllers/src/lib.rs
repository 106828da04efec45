//! Phoenix's controllers: one module per kind, each a kube-runtime `Controller` with one
//! reconcile function, plus the machinery they share. Controllers only speak the Kubernetes
//! API and the clients in `phoenix-clients`, so the same code runs embedded under
//! `phoenix up` and inside k3s.
//!
//! Built so far, the pure parts: [`conditions`] (kept transition times), [`dependencies`]
//! (the `dependsOn` gate with cycle detection) and [`lxc`] (spec → PVE config, and the
//! plan of steps). The reconcile loops, finalizers, VMID claims and metrics land with the
//! LxcGuest issue.

pub mod conditions;
pub mod dependencies;
pub mod lxc;
