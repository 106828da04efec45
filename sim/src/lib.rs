//! A simulated Proxmox VE cluster (and later Portainer) for `phoenix up --simulate`,
//! `phoenix sim pve` and every controller test: HTTPS on loopback with PVE's `/api2/json`
//! envelope and auth, asynchronous tasks with UPIDs and locks, parameter validation driven by
//! the official `apidoc.json` schema, a small simulated guest per VMID, fault injection and an
//! operation log behind an admin endpoint. Not built yet: it lands with the simulator issue.
