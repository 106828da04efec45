//! Phoenix's clients for the systems it manages, one module per system: the Proxmox VE API
//! (token auth, TLS pinning, typed calls, task tracking by UPID, classified errors),
//! Portainer (stacks, endpoints, API keys), the ACME client for Step-CA (on `instant-acme`),
//! and guest exec (SSH to the node running `pct exec`/`pct push` for containers, the QEMU
//! guest agent through the PVE API for VMs). Clients only talk to their system; they know
//! nothing of Kubernetes objects. Not built yet: the Proxmox client lands with the LxcGuest
//! issue, guest exec with the provisioning issue, ACME with the Certificate issue.
