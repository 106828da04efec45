//! Phoenix's clients for the systems it manages, one module per system. Clients only talk
//! to their system; they know nothing of Kubernetes objects.
//!
//! * [`proxmox`]: the Proxmox VE API — token auth, TLS verified against a CA bundle or a
//!   pinned SHA-256 fingerprint (or explicitly not at all), a timeout on every call, task
//!   tracking by UPID, and errors classified as transient or permanent with PVE's message.
//! * [`exec`]: commands and files inside guests — `pct exec`/`pct push` on the node over
//!   SSH (host key pinned) or locally, and the QEMU guest agent for VMs.
//!
//! * [`portainer`]: Portainer CE — first start (admin, API key), Swarm stacks, and the
//!   Docker proxy reads that say whether their services run.

pub mod exec;
pub mod portainer;
pub mod proxmox;
