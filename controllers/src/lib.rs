//! Phoenix's controllers: one module per kind (`proxmox_cluster`, `lxc`, `vm`, `docker_stack`,
//! `traefik_service`, `certificate`), each a kube-runtime `Controller` with one reconcile
//! function, plus the machinery they share (Context, a categorised Error enum, conditions,
//! finalizers with `deletionPolicy`, the `dependsOn` gate, VMID claims, metrics) and the pure
//! config renderers (plans, cloud-init, Traefik, Nginx, dnsmasq). Controllers only speak the
//! Kubernetes API and the clients in `phoenix-clients`, so the same code runs embedded under
//! `phoenix up` and inside k3s. Not built yet: it lands with the LxcGuest issue.
