//! The PVE privileges the controllers use, named as PVE 9 names them: the role
//! `phoenix setup` creates holds these and nothing else. Adding a call that needs another
//! privilege means adding it here (the simulator checks every call against PVE's schema,
//! so a missing one fails the end-to-end tests with PVE's 403).
//!
//! Managing PVE's users, groups and ACL entries (a ProxmoxCluster's `spec.access`) needs
//! [`ACCESS`] as well, kept apart in a second role that only `phoenix setup
//! --manage-access` grants: `Permissions.Modify` on `/` lets a token raise its own rights.

use std::collections::BTreeSet;

/// The role `phoenix setup` creates by default, holding [`CONTROLLER`].
pub const ROLE: &str = "Phoenix";
/// The role `phoenix setup --manage-access` creates, holding [`ACCESS`].
pub const ACCESS_ROLE: &str = "PhoenixAccess";

/// Each privilege with the calls that need it.
pub const CONTROLLER: &[(&str, &str)] = &[
    (
        "VM.Audit",
        "guest configs, status, cluster resources (listing is filtered by it)",
    ),
    ("VM.Allocate", "creating and destroying guests"),
    ("VM.Clone", "cloning templates"),
    ("VM.Config.CDROM", "VM cloud-init drives and ISOs"),
    ("VM.Config.CPU", "cores, CPU type"),
    ("VM.Config.Cloudinit", "VM cloud-init settings"),
    ("VM.Config.Disk", "root disks, mount points, resizing"),
    ("VM.Config.HWType", "VM machine, BIOS, SCSI controller"),
    ("VM.Config.Memory", "memory and swap"),
    (
        "VM.Config.Network",
        "network devices and the guest firewall",
    ),
    (
        "VM.Config.Options",
        "hostname, description marker, tags, onboot, templates",
    ),
    ("VM.PowerMgmt", "start, stop, shutdown, reboot"),
    ("VM.Snapshot", "snapshots before changes"),
    ("VM.Snapshot.Rollback", "rolling back a failed change"),
    ("VM.GuestAgent.Audit", "VM addresses through the QEMU agent"),
    (
        "VM.GuestAgent.Unrestricted",
        "commands and files inside VMs through the agent",
    ),
    ("Datastore.Audit", "storages and their content"),
    (
        "Datastore.Allocate",
        "adding and updating the host's storages (/storage)",
    ),
    ("Datastore.AllocateSpace", "guest disks on a storage"),
    (
        "Datastore.AllocateTemplate",
        "downloading templates and cloud images",
    ),
    ("Pool.Audit", "resource pools"),
    ("Pool.Allocate", "creating resource pools"),
    ("SDN.Use", "attaching guests to a bridge"),
    (
        "Sys.Audit",
        "node status, tasks, cluster status, node settings, ZFS pools, the node's network and firewall, the datacenter firewall, listing users, groups and ACL entries",
    ),
    (
        "Sys.Modify",
        "downloads to a node's storage, a node's time zone and resolver, creating ZFS pools, the node's bridges and firewall, the datacenter firewall",
    ),
];

/// The privileges `spec.access` needs, each with the calls that need it.
pub const ACCESS: &[(&str, &str)] = &[
    (
        "Group.Allocate",
        "creating groups and updating their comment",
    ),
    ("Realm.AllocateUser", "creating users"),
    (
        "User.Modify",
        "creating and updating users and their groups",
    ),
    ("Permissions.Modify", "adding and removing ACL entries"),
];

/// The privilege names alone.
pub fn controller() -> BTreeSet<String> {
    names(CONTROLLER)
}

/// The names of [`ACCESS`].
pub fn access() -> BTreeSet<String> {
    names(ACCESS)
}

fn names(list: &[(&str, &str)]) -> BTreeSet<String> {
    list.iter().map(|(p, _)| (*p).to_owned()).collect()
}
