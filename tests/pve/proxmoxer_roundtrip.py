#!/usr/bin/env python3
"""proxmoxer round trip: drives a Proxmox VE API (normally `phoenix sim pve`) the way a user
script would, with the PyPI library `proxmoxer` (https backend), and checks every answer.

Usage: tests/pve/proxmoxer_roundtrip.py CREDENTIALS_JSON [--auth token|ticket|both]

CREDENTIALS_JSON holds {"url": "https://127.0.0.1:PORT", "token_id": "root@pam!phoenix",
"token_secret": "...", "user": "root@pam", "password": "...", "fingerprint": "AA:BB:..."}
(other keys, e.g. "admin_url", are ignored).

Per auth mode the script lists nodes, finds (or downloads) a CT template, creates, templates,
clones, starts, snapshots, rolls back, stops and destroys containers, then does the same with
VMs, and checks that a duplicate vmid is refused. It removes what it created, also after a
failure (best effort). Each step prints one line; the last line is "N passed, M failed".
Exit status: 0 all passed, 1 a step failed, 2 bad usage or credentials file.

Needs: python3 >= 3.8, `pip install proxmoxer requests`.
"""

import argparse
import hashlib
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

try:
    from proxmoxer import ProxmoxAPI
    from proxmoxer.core import ResourceException
    from proxmoxer.tools import Tasks
except ImportError as exc:  # an environment problem, not a test failure
    print(f"proxmoxer is missing ({exc}); install it with: pip install proxmoxer requests",
          file=sys.stderr)
    sys.exit(2)

TASK_TIMEOUT = 60  # seconds a single task may take
POLL_INTERVAL = 0.2
HTTP_TIMEOUT = 15  # per request; proxmoxer's default of 5 s is tight on a busy 2-core box

# Guest parameters, exactly as a user would type them.
CT_TEMPLATE_STORAGE = "local"
CT_PARAMS = dict(memory=512, cores=1, rootfs="local-zfs:8", net0="name=eth0,bridge=vmbr0,ip=dhcp")
VM_PARAMS = dict(memory=1024, cores=1, net0="virtio,bridge=vmbr0", scsi0="local-zfs:8",
                 agent="enabled=1")


class Failure(Exception):
    """A check did not hold; the message says what was expected and what came back."""


def check(condition, message):
    if not condition:
        raise Failure(message)


# --------------------------------------------------------------------------------------------
# Connection safety: only loopback, no proxies, pinned certificate


def parse_url(url):
    """Returns (host, port) of `url`, refusing anything that is not an https loopback IP:
    the script must never talk to another machine."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or not parts.port:
        raise Failure(f"url must look like https://127.0.0.1:PORT, got {url!r}")
    try:
        is_loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        is_loopback = False  # a host name could resolve anywhere
    if not is_loopback:
        raise Failure(f"refusing to connect to {parts.hostname!r}: only loopback IPs are allowed")
    return parts.hostname, parts.port


def disable_proxies(host):
    """requests honours HTTP(S)_PROXY/ALL_PROXY from the environment; a proxy would mean
    connecting to another address, so drop them and exempt the target explicitly."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(name, None)
        os.environ.pop(name.upper(), None)
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"{host},127.0.0.1,localhost,::1"


def server_fingerprint(host, port):
    """SHA-256 of the server's leaf certificate (DER), as PVE shows it: AA:BB:..."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we verify by pinning below, not by a CA
    with socket.create_connection((host, port), timeout=HTTP_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def pin_certificate(host, port, expected):
    actual = server_fingerprint(host, port)
    wanted = expected.strip().upper()
    check(actual == wanted, f"certificate fingerprint mismatch: server {actual}, expected {wanted}")
    return actual[:23] + "..."


# --------------------------------------------------------------------------------------------
# Helpers shared by the steps


def connect(creds, host, port, mode):
    """Opens a proxmoxer session. proxmoxer cannot pin a fingerprint (only CA verification
    or none), so the certificate was pinned by pin_certificate() and TLS verification is
    switched off here: verify_ssl=False."""
    if mode == "token":
        user, _, token_name = creds["token_id"].partition("!")
        check(user and token_name, f"token_id must be USER@REALM!NAME, got {creds['token_id']!r}")
        return ProxmoxAPI(host, port=port, user=user, token_name=token_name,
                          token_value=creds["token_secret"], verify_ssl=False,
                          timeout=HTTP_TIMEOUT)
    # Ticket mode: the constructor POSTs /access/ticket, then sends the PVEAuthCookie cookie
    # and, on writes, the CSRFPreventionToken header.
    return ProxmoxAPI(host, port=port, user=creds["user"], password=creds["password"],
                      verify_ssl=False, timeout=HTTP_TIMEOUT)


def wait_task(prox, upid, task_type, vmid=None):
    """Waits for a task the way proxmoxer users do (Tasks.blocking_status) and insists on
    success. HTTP 200 only means "task started" in PVE; the outcome is the exit status."""
    check(isinstance(upid, str) and upid.startswith("UPID:"), f"expected a UPID, got {upid!r}")
    fields = Tasks.decode_upid(upid)  # also asserts the 9-field layout with trailing colon
    check(fields["type"] == task_type,
          f"UPID type {fields['type']!r}, expected {task_type!r}: {upid}")
    if vmid is not None:
        check(fields["id"] == str(vmid), f"UPID id {fields['id']!r}, expected {vmid}: {upid}")
    status = Tasks.blocking_status(prox, upid, timeout=TASK_TIMEOUT, polling_interval=POLL_INTERVAL)
    check(status is not None, f"task {upid} still running after {TASK_TIMEOUT}s")
    check(status.get("status") == "stopped", f"task status {status!r}")
    exit_status = status.get("exitstatus")
    # "WARNINGS: n" is success with warnings in PVE; anything else is the error text.
    check(exit_status == "OK" or str(exit_status).startswith("WARNINGS: "),
          f"task {task_type} failed: exitstatus {exit_status!r}")
    return exit_status


def poll(what, probe, timeout=TASK_TIMEOUT):
    """Polls `probe` until it returns a truthy value. Needed where PVE reports completion
    only indirectly (CT template conversion returns null; `start=1` forks a second task)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        check(time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def vmids(listing):
    """Guest ids from a /lxc or /qemu listing; older PVE returns vmid as a string."""
    return {int(guest["vmid"]) for guest in listing}


def memory_mib(value):
    """QEMU `memory` is a property string since PVE 8.1 ("1024" or "current=1024")."""
    text = str(value)
    return int(text.split("current=", 1)[-1].split(",", 1)[0])


def next_id(prox):
    vmid = prox.cluster.nextid.get()  # a JSON string in practice, e.g. "100"
    check(str(vmid).isdigit(), f"cluster/nextid returned {vmid!r}")
    return int(vmid)


def running_state(guest):
    return guest.status.current.get().get("status")


# --------------------------------------------------------------------------------------------
# The round trip. Each step returns a short detail for its line and keeps state on `self`.


class RoundTrip:
    def __init__(self, creds, host, port, mode):
        self.creds, self.host, self.port, self.mode = creds, host, port, mode
        self.prox = self.node = self.ostemplate = None
        self.ct1 = self.ct_tpl = self.ct_clone = self.vm_tpl = self.vm_clone = None
        self.kinds = {}  # vmid -> "lxc" | "qemu", for every guest this run made
        self.created = set()  # vmids not destroyed yet, for cleanup after a failure

    # -- helpers bound to this session
    def api(self):
        return self.prox.nodes(self.node)

    def guest(self, vmid):
        return getattr(self.api(), self.kinds[vmid])(vmid)

    def track(self, vmid, kind):
        self.kinds[vmid] = kind
        self.created.add(vmid)

    def steps(self):
        return [
            ("connect", self.step_connect),
            ("nodes", self.step_nodes),
            ("version", self.step_version),
            ("CT template in storage local", self.step_ct_template),
            ("create CT", self.step_ct_create),
            ("duplicate vmid is refused", self.step_duplicate_vmid),
            ("create second CT", self.step_ct_create_second),
            ("convert CT to template", self.step_ct_to_template),
            ("full clone of CT template", self.step_ct_clone),
            ("start CT", self.step_ct_start),
            ("CT snapshot", self.step_ct_snapshot),
            ("CT config change", self.step_ct_config_change),
            ("CT rollback", self.step_ct_rollback),
            ("CT snapshot list", self.step_ct_snapshot_list),
            ("CT snapshot delete", self.step_ct_snapshot_delete),
            ("stop CT", self.step_ct_stop),
            ("destroy CTs", self.step_ct_destroy),
            ("create VM", self.step_vm_create),
            ("convert VM to template", self.step_vm_to_template),
            ("full clone of VM template", self.step_vm_clone),
            ("start VM clone", self.step_vm_start),
            ("VM snapshot", self.step_vm_snapshot),
            ("VM config change", self.step_vm_config_change),
            ("VM rollback", self.step_vm_rollback),
            ("VM snapshot list + delete", self.step_vm_snapshot_delete),
            ("stop VM clone", self.step_vm_stop),
            ("destroy VMs", self.step_vm_destroy),
        ]

    # -- session and node
    def step_connect(self):
        self.prox = connect(self.creds, self.host, self.port, self.mode)
        return f"{self.mode} auth"

    def step_nodes(self):
        nodes = self.prox.nodes.get()
        check(isinstance(nodes, list) and nodes, f"nodes.get() returned {nodes!r}")
        self.node = nodes[0].get("node")
        check(self.node, f"first node has no name: {nodes[0]!r}")
        return f"{len(nodes)} node(s), using {self.node}"

    def step_version(self):
        version = self.prox.version.get()
        check(isinstance(version, dict) and version.get("version"),
              f"version.get() returned {version!r}")
        return version["version"]

    # -- containers
    def list_ct_templates(self):
        content = self.api().storage(CT_TEMPLATE_STORAGE).content.get(content="vztmpl")
        return [item["volid"] for item in content if item.get("content", "vztmpl") == "vztmpl"]

    def step_ct_template(self):
        templates = self.list_ct_templates()
        if templates:
            self.ostemplate = templates[0]
            return f"found {self.ostemplate}"
        # None yet: download one from the appliance index, as `pveam download` does.
        index = self.api().aplinfo.get()
        names = [a["template"] for a in index if str(a.get("template", "")).startswith("debian-12")]
        check(names, f"no debian-12 entry in aplinfo ({len(index)} entries)")
        upid = self.api().aplinfo.post(storage=CT_TEMPLATE_STORAGE, template=names[0])
        wait_task(self.prox, upid, "download")
        wanted = f"{CT_TEMPLATE_STORAGE}:vztmpl/{names[0]}"
        check(wanted in self.list_ct_templates(), f"{wanted} not in storage content after download")
        self.ostemplate = wanted
        return f"downloaded {wanted}"

    def create_ct(self, hostname):
        vmid = next_id(self.prox)
        upid = self.api().lxc.post(vmid=vmid, ostemplate=self.ostemplate, hostname=hostname,
                                   **CT_PARAMS)
        self.track(vmid, "lxc")
        wait_task(self.prox, upid, "vzcreate", vmid)
        config = self.guest(vmid).config.get()
        check(config.get("hostname") == hostname, f"CT {vmid} hostname {config.get('hostname')!r}")
        check(int(config.get("memory", -1)) == 512, f"CT {vmid} memory {config.get('memory')!r}")
        check(str(config.get("rootfs", "")).startswith("local-zfs:"),
              f"CT {vmid} rootfs {config.get('rootfs')!r}")
        check("lock" not in config, f"CT {vmid} still locked after create: {config.get('lock')!r}")
        check(running_state(self.guest(vmid)) == "stopped", f"CT {vmid} should be stopped")
        return vmid

    def step_ct_create(self):
        self.ct1 = self.create_ct("rt-ct")
        return f"CT {self.ct1}"

    def step_duplicate_vmid(self):
        # PVE refuses synchronously (500 "CT N already exists on node 'x'"), before any task.
        try:
            upid = self.api().lxc.post(vmid=self.ct1, ostemplate=self.ostemplate,
                                       hostname="rt-dup", **CT_PARAMS)
        except ResourceException as exc:
            check(exc.status_code in (400, 500), f"expected HTTP 400/500, got {exc}")
            hostname = self.guest(self.ct1).config.get().get("hostname")
            check(hostname == "rt-ct", f"refused create still changed CT {self.ct1}: {hostname!r}")
            return f"HTTP {exc.status_code}: {exc.content}"
        raise Failure(f"create with existing vmid {self.ct1} was accepted: {upid!r}")

    def step_ct_create_second(self):
        self.ct_tpl = self.create_ct("rt-tpl")
        return f"CT {self.ct_tpl}"

    def step_ct_to_template(self):
        result = self.guest(self.ct_tpl).template.post()
        # Real PVE returns null although a vztemplate worker keeps running; tolerate a UPID.
        if result is not None:
            wait_task(self.prox, result, "vztemplate", self.ct_tpl)

        def converted():
            config = self.guest(self.ct_tpl).config.get()
            return int(config.get("template", 0)) == 1 and "lock" not in config
        poll(f"CT {self.ct_tpl} to become an unlocked template", converted)
        return f"CT {self.ct_tpl} is a template"

    def step_ct_clone(self):
        self.ct_clone = next_id(self.prox)
        upid = self.guest(self.ct_tpl).clone.post(newid=self.ct_clone, hostname="rt-clone", full=1)
        self.track(self.ct_clone, "lxc")
        wait_task(self.prox, upid, "vzclone", self.ct_tpl)  # the UPID names the source
        check(self.ct_clone in vmids(self.api().lxc.get()), f"clone {self.ct_clone} not listed")
        config = self.guest(self.ct_clone).config.get()
        check(config.get("hostname") == "rt-clone", f"clone hostname {config.get('hostname')!r}")
        check(int(config.get("template", 0)) == 0, "a full clone must not be a template")
        check("lock" not in config, f"clone still locked: {config.get('lock')!r}")
        return f"CT {self.ct_tpl} -> CT {self.ct_clone}"

    def step_ct_start(self):
        wait_task(self.prox, self.guest(self.ct1).status.start.post(), "vzstart", self.ct1)
        state = running_state(self.guest(self.ct1))
        check(state == "running", f"CT {self.ct1} status {state!r} after start")
        return f"CT {self.ct1} running"

    def snapshot(self, vmid, task_type):
        wait_task(self.prox, self.guest(vmid).snapshot.post(snapname="pre"), task_type, vmid)
        return "snapshot 'pre'"

    def snapshot_names(self, vmid):
        # The list ends with a pseudo entry "current" ("You are here!").
        return [s.get("name") for s in self.guest(vmid).snapshot.get()]

    def change_memory(self, vmid, mib):
        self.guest(vmid).config.put(memory=mib)
        got = memory_mib(self.guest(vmid).config.get().get("memory"))
        check(got == mib, f"memory {got} after config.put(memory={mib})")
        return f"memory {mib}"

    def rollback(self, vmid, task_type, memory):
        # A rollback stops a running guest; start=1 starts it again afterwards through a
        # separate start task, so the rollback task can finish before the guest runs.
        upid = self.guest(vmid).snapshot("pre").rollback.post(start=1)
        wait_task(self.prox, upid, task_type, vmid)
        got = memory_mib(self.guest(vmid).config.get().get("memory"))
        check(got == memory, f"memory {got} after rollback, expected {memory}")
        poll(f"guest {vmid} to run again after rollback",
             lambda: running_state(self.guest(vmid)) == "running")
        return f"memory back to {memory}, running"

    def delete_snapshot(self, vmid, task_type):
        wait_task(self.prox, self.guest(vmid).snapshot("pre").delete(), task_type, vmid)
        names = self.snapshot_names(vmid)
        check("pre" not in names, f"snapshot 'pre' still listed: {names}")
        return "snapshot 'pre' deleted"

    def step_ct_snapshot(self):
        return self.snapshot(self.ct1, "vzsnapshot")

    def step_ct_config_change(self):
        return self.change_memory(self.ct1, 1024)

    def step_ct_rollback(self):
        return self.rollback(self.ct1, "vzrollback", 512)

    def step_ct_snapshot_list(self):
        names = self.snapshot_names(self.ct1)
        check("pre" in names, f"snapshot 'pre' missing from {names}")
        return ", ".join(names)

    def step_ct_snapshot_delete(self):
        return self.delete_snapshot(self.ct1, "vzdelsnapshot")

    def stop(self, vmid, task_type):
        wait_task(self.prox, self.guest(vmid).status.stop.post(), task_type, vmid)
        state = running_state(self.guest(vmid))
        check(state == "stopped", f"guest {vmid} status {state!r} after stop")
        return f"{vmid} stopped"

    def step_ct_stop(self):
        return self.stop(self.ct1, "vzstop")

    def destroy(self, kind, vmid_list, task_type):
        for vmid in vmid_list:  # clones first: a template may not go while clones use it
            wait_task(self.prox, self.guest(vmid).delete(purge=1), task_type, vmid)
            self.created.discard(vmid)
        left = vmids(getattr(self.api(), kind).get()) & set(vmid_list)
        check(not left, f"still listed after destroy: {sorted(left)}")
        return "destroyed " + ", ".join(map(str, vmid_list))

    def step_ct_destroy(self):
        return self.destroy("lxc", [self.ct_clone, self.ct_tpl, self.ct1], "vzdestroy")

    # -- virtual machines
    def step_vm_create(self):
        self.vm_tpl = next_id(self.prox)
        upid = self.api().qemu.post(vmid=self.vm_tpl, name="rt-vm", **VM_PARAMS)
        self.track(self.vm_tpl, "qemu")
        wait_task(self.prox, upid, "qmcreate", self.vm_tpl)
        config = self.guest(self.vm_tpl).config.get()
        check(config.get("name") == "rt-vm", f"VM name {config.get('name')!r}")
        check(memory_mib(config.get("memory")) == 1024, f"VM memory {config.get('memory')!r}")
        check(str(config.get("scsi0", "")).startswith("local-zfs:"),
              f"VM scsi0 {config.get('scsi0')!r}")
        check("lock" not in config, f"VM still locked after create: {config.get('lock')!r}")
        return f"VM {self.vm_tpl}"

    def step_vm_to_template(self):
        result = self.guest(self.vm_tpl).template.post()
        if result is not None:  # QEMU returns a qmtemplate UPID
            wait_task(self.prox, result, "qmtemplate", self.vm_tpl)

        def converted():
            config = self.guest(self.vm_tpl).config.get()
            return int(config.get("template", 0)) == 1 and "lock" not in config
        poll(f"VM {self.vm_tpl} to become an unlocked template", converted)
        return f"VM {self.vm_tpl} is a template"

    def step_vm_clone(self):
        self.vm_clone = next_id(self.prox)
        upid = self.guest(self.vm_tpl).clone.post(newid=self.vm_clone, name="rt-vm-clone", full=1)
        self.track(self.vm_clone, "qemu")
        wait_task(self.prox, upid, "qmclone", self.vm_tpl)
        check(self.vm_clone in vmids(self.api().qemu.get()), f"clone {self.vm_clone} not listed")
        config = self.guest(self.vm_clone).config.get()
        check(config.get("name") == "rt-vm-clone", f"clone name {config.get('name')!r}")
        check(int(config.get("template", 0)) == 0, "a full clone must not be a template")
        check("lock" not in config, f"clone still locked: {config.get('lock')!r}")
        return f"VM {self.vm_tpl} -> VM {self.vm_clone}"

    def step_vm_start(self):
        upid = self.guest(self.vm_clone).status.start.post()
        wait_task(self.prox, upid, "qmstart", self.vm_clone)
        state = running_state(self.guest(self.vm_clone))
        check(state == "running", f"VM {self.vm_clone} status {state!r} after start")
        return f"VM {self.vm_clone} running"

    def step_vm_snapshot(self):
        return self.snapshot(self.vm_clone, "qmsnapshot")

    def step_vm_config_change(self):
        return self.change_memory(self.vm_clone, 2048)

    def step_vm_rollback(self):
        return self.rollback(self.vm_clone, "qmrollback", 1024)

    def step_vm_snapshot_delete(self):
        names = self.snapshot_names(self.vm_clone)
        check("pre" in names, f"snapshot 'pre' missing from {names}")
        return self.delete_snapshot(self.vm_clone, "qmdelsnapshot")

    def step_vm_stop(self):
        return self.stop(self.vm_clone, "qmstop")

    def step_vm_destroy(self):
        return self.destroy("qemu", [self.vm_clone, self.vm_tpl], "qmdestroy")

    # -- cleanup after a failure
    def cleanup(self):
        """Best effort: stop and purge whatever this run created, so a failed run does not
        leave guests behind. Errors are reported, not raised."""
        for vmid in sorted(self.created, reverse=True):  # newest (clones) first
            kind = self.kinds[vmid]
            try:
                guest = self.guest(vmid)
                if running_state(guest) == "running":
                    stop_type = "vzstop" if kind == "lxc" else "qmstop"
                    wait_task(self.prox, guest.status.stop.post(), stop_type, vmid)
                wait_task(self.prox, guest.delete(purge=1),
                          "vzdestroy" if kind == "lxc" else "qmdestroy", vmid)
                print(f"  cleanup: removed {kind} {vmid}")
            except Exception as exc:  # noqa: BLE001 - cleanup must not mask the failure
                print(f"  cleanup: could not remove {kind} {vmid}: {exc}")
        self.created.clear()


# --------------------------------------------------------------------------------------------


def describe(exc):
    if isinstance(exc, ResourceException):
        # proxmoxer shows the HTTP reason phrase (PVE's error text) plus the `errors` map.
        return f"API error {exc}"
    if isinstance(exc, Failure):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_mode(creds, host, port, mode):
    """Runs all steps of one auth mode; stops at the first failure (later steps build on
    earlier ones). Returns (passed, failed)."""
    trip = RoundTrip(creds, host, port, mode)
    passed = 0
    for name, step in trip.steps():
        try:
            detail = step()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a FAIL line
            print(f"FAIL [{mode}] {name}: {describe(exc)}", flush=True)
            if trip.prox is not None and trip.node is not None:
                trip.cleanup()
            return passed, 1
        passed += 1
        print(f"ok   [{mode}] {name}" + (f" - {detail}" if detail else ""), flush=True)
    return passed, 0


def usage_error(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def load_credentials(path):
    try:
        with open(path, encoding="utf-8") as handle:
            creds = json.load(handle)
    except (OSError, ValueError) as exc:
        usage_error(f"cannot read credentials file {path}: {exc}")
    if not isinstance(creds, dict):
        usage_error(f"credentials file {path} must hold a JSON object")
    missing = [k for k in ("url", "token_id", "token_secret", "user", "password", "fingerprint")
               if not creds.get(k)]
    if missing:
        usage_error(f"credentials file {path} lacks: {', '.join(missing)}")
    return creds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("credentials", metavar="CREDENTIALS_JSON")
    parser.add_argument("--auth", choices=("token", "ticket", "both"), default="both")
    args = parser.parse_args()  # exits 2 on bad usage
    creds = load_credentials(args.credentials)  # exits 2 if unusable

    passed = failed = 0
    try:
        host, port = parse_url(creds["url"])
        disable_proxies(host)
        detail = pin_certificate(host, port, creds["fingerprint"])
        passed += 1
        print(f"ok   certificate pinned - sha256 {detail}", flush=True)
    except (Failure, OSError) as exc:
        print(f"FAIL target check (loopback url, pinned certificate): {describe(exc)}", flush=True)
        print(f"{passed} passed, 1 failed")
        return 1

    modes = ("token", "ticket") if args.auth == "both" else (args.auth,)
    for mode in modes:
        mode_passed, mode_failed = run_mode(creds, host, port, mode)
        passed += mode_passed
        failed += mode_failed

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
