#!/usr/bin/env python3
"""Writes sim/schema/pve-api.json: the parameter schemas of the endpoints the simulator
serves, cut from the official PVE API schema (apidoc.json, as the PVE API viewer ships it)
with descriptions dropped, and each method's `permissions`. The simulator validates every request against this file, so its
checks follow the official schema rather than hand-copied rules.

Usage: sim/tools/trim-apidoc.py ../shared/reference/pve/apidoc.json > sim/schema/pve-api.json
"""
import json
import sys

SERVED = [
    "/version", "/nodes", "/nodes/{node}/status", "/nodes/{node}/time", "/nodes/{node}/dns", "/cluster/status", "/cluster/resources",
    "/cluster/nextid", "/pools", "/access/ticket", "/storage/{storage}",
    "/nodes/{node}/storage", "/nodes/{node}/storage/{storage}/content",
    "/nodes/{node}/storage/{storage}/download-url", "/nodes/{node}/aplinfo",
    "/nodes/{node}/tasks", "/nodes/{node}/tasks/{upid}/status", "/nodes/{node}/tasks/{upid}/log",
    "/nodes/{node}/lxc", "/nodes/{node}/lxc/{vmid}", "/nodes/{node}/lxc/{vmid}/config",
    "/nodes/{node}/lxc/{vmid}/status/current", "/nodes/{node}/lxc/{vmid}/status/start",
    "/nodes/{node}/lxc/{vmid}/status/stop", "/nodes/{node}/lxc/{vmid}/status/shutdown",
    "/nodes/{node}/lxc/{vmid}/status/reboot", "/nodes/{node}/lxc/{vmid}/clone",
    "/nodes/{node}/lxc/{vmid}/template", "/nodes/{node}/lxc/{vmid}/snapshot",
    "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
    "/nodes/{node}/lxc/{vmid}/resize", "/nodes/{node}/lxc/{vmid}/interfaces",
    "/nodes/{node}/lxc/{vmid}/firewall/options", "/nodes/{node}/lxc/{vmid}/firewall/rules",
    "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}",
    "/nodes/{node}/qemu", "/nodes/{node}/qemu/{vmid}", "/nodes/{node}/qemu/{vmid}/config",
    "/nodes/{node}/qemu/{vmid}/status/current", "/nodes/{node}/qemu/{vmid}/status/start",
    "/nodes/{node}/qemu/{vmid}/status/stop", "/nodes/{node}/qemu/{vmid}/status/shutdown",
    "/nodes/{node}/qemu/{vmid}/status/reboot", "/nodes/{node}/qemu/{vmid}/clone",
    "/nodes/{node}/qemu/{vmid}/template", "/nodes/{node}/qemu/{vmid}/snapshot",
    "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    "/nodes/{node}/qemu/{vmid}/resize", "/nodes/{node}/qemu/{vmid}/agent/ping",
    "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "/nodes/{node}/qemu/{vmid}/agent/exec",
    "/nodes/{node}/qemu/{vmid}/agent/exec-status", "/nodes/{node}/qemu/{vmid}/agent/file-write",
    "/nodes/{node}/qemu/{vmid}/firewall/options", "/nodes/{node}/qemu/{vmid}/firewall/rules",
    "/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}",
    "/access/users", "/access/users/{userid}", "/access/users/{userid}/token",
    "/access/users/{userid}/token/{tokenid}", "/access/groups", "/access/groups/{groupid}",
    "/access/roles", "/access/roles/{roleid}", "/access/acl", "/access/permissions",
    "/access/password",
    "/cluster/firewall/options", "/cluster/firewall/ipset", "/cluster/firewall/ipset/{name}",
    "/cluster/firewall/ipset/{name}/{cidr}", "/cluster/firewall/rules",
    "/cluster/firewall/rules/{pos}", "/cluster/firewall/groups", "/cluster/firewall/groups/{group}",
    "/cluster/firewall/groups/{group}/{pos}", "/cluster/firewall/aliases",
    "/cluster/firewall/aliases/{name}",
    "/nodes/{node}/network", "/nodes/{node}/network/{iface}",
    "/nodes/{node}/firewall/options", "/nodes/{node}/firewall/rules",
    "/nodes/{node}/firewall/rules/{pos}",
    "/storage", "/nodes/{node}/disks/list", "/nodes/{node}/disks/zfs", "/nodes/{node}/disks/zfs/{name}",
]
DROP = {"description", "verbose_description", "typetext", "format_description", "title"}


def strip(value, names=False):
    """Drops documentation from schema nodes; `names` marks a map of property names (a
    parameter may itself be called `description`)."""
    if isinstance(value, dict):
        return {
            k: strip(v, names=(k in ("properties", "format") and isinstance(v, dict)))
            for k, v in value.items()
            if names or k not in DROP
        }
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def main():
    tree = json.load(open(sys.argv[1]))
    index = {}

    def walk(node):
        index[node["path"]] = node
        for child in node.get("children", []):
            walk(child)

    for node in tree:
        walk(node)
    out = {}
    for path in SERVED:
        node = index[path]
        out[path] = {
            method: {
                "parameters": strip(info.get("parameters", {})),
                "protected": info.get("protected", 0),
                "allowtoken": info.get("allowtoken", 1),
                # Who may call it: checked for every caller but root@pam.
                "permissions": strip(info.get("permissions", {})),
            }
            for method, info in sorted(node.get("info", {}).items())
        }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
