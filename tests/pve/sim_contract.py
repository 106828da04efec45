#!/usr/bin/env python3
"""The simulator's contract with PVE, checked over HTTP with `requests`:

* recorded real PVE responses (shared/reference/pve/examples) have the same keys and value
  types as the simulator's answer to the same call;
* validation is schema-driven: parameters sampled from the bundled PVE schema are refused
  with PVE's message shape when given the wrong type or format;
* PVE's error paths: locks (concurrent LXC clones), running guests, protection, templates,
  missing guests, nextid, tasks on the wrong node;
* faults (HTTP errors, failing tasks, lost task status) and the operation log.

Usage: sim_contract.py CREDENTIALS_JSON   (talks only to the loopback URL in it)
"""
import hashlib
import json
import os
import ssl
import sys
import time
import urllib.parse
from pathlib import Path

import requests
import urllib3

urllib3.disable_warnings()
for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
    os.environ.pop(var, None)

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PHOENIX_SHARED", REPO.parent / "shared"))
EXAMPLES = SHARED / "reference" / "pve" / "examples"
SCHEMA = json.loads((REPO / "sim" / "schema" / "pve-api.json").read_text())
PASSED = 0


class Check(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Check(message)


def step(name, fn):
    global PASSED
    try:
        detail = fn()
    except Check as e:
        print(f"FAIL {name}: {e}")
        print(f"{PASSED} passed, 1 failed")
        sys.exit(1)
    PASSED += 1
    print(f"ok   {name}" + (f" - {detail}" if detail else ""))


class Pve:
    def __init__(self, creds):
        url = urllib.parse.urlparse(creds["url"])
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"refusing to talk to {url.hostname}: loopback only")
        pem = ssl.get_server_certificate((url.hostname, url.port))
        fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
        pinned = ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2))
        if pinned != creds["fingerprint"]:
            raise SystemExit("the simulator's certificate does not match the pinned fingerprint")
        self.base = creds["url"] + "/api2/json"
        self.admin_url = creds["admin_url"]
        self.session = requests.Session()
        # Pinned above; requests has no fingerprint pinning of its own.
        self.session.verify = False
        self.session.headers["Authorization"] = f"PVEAPIToken={creds['token_id']}={creds['token_secret']}"

    def call(self, method, path, **params):
        kwargs = {"params": params} if method in ("GET", "DELETE") else {"data": params}
        response = self.session.request(method, self.base + path, timeout=15, verify=False, **kwargs)
        body = response.json()
        return response.status_code, response.reason, body

    def ok(self, method, path, **params):
        status, reason, body = self.call(method, path, **params)
        expect(status == 200, f"{method} {path} -> {status} {reason} {body}")
        return body["data"]

    def wait(self, upid, want="OK"):
        node = upid.split(":")[1]
        for _ in range(500):
            status = self.ok("GET", f"/nodes/{node}/tasks/{upid}/status")
            if status["status"] == "stopped":
                expect(want is None or status["exitstatus"] == want, f"task {upid} ended {status['exitstatus']!r}, wanted {want!r}")
                return status
            time.sleep(0.02)
        raise Check(f"task {upid} never finished")

    def admin(self, method, path, body=None):
        response = self.session.request(method, self.admin_url + path, json=body, timeout=15, verify=False)
        expect(response.status_code == 200, f"admin {method} {path} -> {response.status_code}")
        return response.json()


def kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def same_shape(recorded, ours, where, optional=(), either=("vmid", "id")):
    """Every key of the recorded response is in ours with the same JSON type (keys in
    `optional` depend on the guest's state or config and may be absent)."""
    if isinstance(recorded, list):
        expect(isinstance(ours, list) and ours, f"{where}: expected a non-empty list, got {ours!r}")
        keys = {}
        for item in recorded:
            keys.update(item if isinstance(item, dict) else {})
        return same_shape(keys, ours[-1], where + "[]", optional, either)
    if not isinstance(recorded, dict):
        expect(kind(recorded) == kind(ours) or where.split(".")[-1] in either, f"{where}: {kind(recorded)} vs {kind(ours)}")
        return
    expect(isinstance(ours, dict), f"{where}: expected an object, got {ours!r}")
    for key, value in recorded.items():
        if key not in ours:
            expect(key in optional, f"{where}: missing key {key!r}")
            continue
        if isinstance(value, (dict, list)) and value:
            continue
        expect(kind(value) == kind(ours[key]) or key in either, f"{where}.{key}: recorded {kind(value)}, simulator {kind(ours[key])}")


def example(name):
    return json.loads((EXAMPLES / name).read_text())


def main():
    pve = Pve(json.loads(Path(sys.argv[1]).read_text()))
    node = pve.ok("GET", "/nodes")[0]["node"]
    other = pve.ok("GET", "/nodes")[1]["node"]
    template = f"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"

    def create_ct(vmid, **extra):
        params = dict(vmid=vmid, ostemplate=template, hostname=f"ct{vmid}", memory=512, rootfs="local-zfs:8",
                      net0="name=eth0,bridge=vmbr0,ip=10.0.0.50/24,gw=10.0.0.1")
        params.update(extra)
        return pve.wait(pve.ok("POST", f"/nodes/{node}/lxc", **params))

    def recorded_shapes():
        create_ct(300)
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/300/status/start"))
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/300/snapshot", snapname="s1"))
        create_ct(301)
        pve.ok("POST", f"/nodes/{node}/lxc/301/template")
        clone = pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=302, hostname="c302", full=1)
        clone_status = pve.wait(clone)
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu", vmid=400, name="vm400", memory=1024, agent="1",
                        net0="virtio,bridge=vmbr0", scsi0="local-zfs:8"))
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu/400/status/start"))
        # The agent answers a moment after boot (agent=1 in this test): wait for it.
        for _ in range(300):
            if pve.call("POST", f"/nodes/{node}/qemu/400/agent/ping")[0] == 200:
                break
            time.sleep(0.02)
        cases = [
            ("pve7_version.json", pve.ok("GET", "/version"), ("console",)),
            ("pve7_nodes.json", pve.ok("GET", "/nodes"), ()),
            ("pve7_cluster_status.json", pve.ok("GET", "/cluster/status"), ("ip", "local", "level", "nodeid", "online", "quorate", "nodes", "version")),
            ("pve7_lxc_list.json", pve.ok("GET", f"/nodes/{node}/lxc"), ("pid", "lock", "template", "tags")),
            ("pve7_lxc_interfaces.json", pve.ok("GET", f"/nodes/{node}/lxc/300/interfaces"), ()),
            ("pve7_lxc_snapshot_list.json", pve.ok("GET", f"/nodes/{node}/lxc/300/snapshot"), ("snaptime", "parent", "digest", "running")),
            ("pve7_task_status_vzclone_ok.json", clone_status, ()),
            ("pve7_lxc_clone_response_upid_token.json", clone, ()),
            ("pve7_qemu_status_current_running.json", pve.ok("GET", f"/nodes/{node}/qemu/400/status/current"),
             # Present only with a balloon device, SPICE, or the monitor's block/NIC statistics.
             ("balloon", "balloon_min", "ballooninfo", "blockstat", "nics", "proxmox-support", "spice")),
            ("pve6.2_qemu_agent_network_get_interfaces.json", pve.ok("GET", f"/nodes/{node}/qemu/400/agent/network-get-interfaces"), ()),
        ]
        running = pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=303, full=1)
        cases.append(("task_status_running.json", pve.ok("GET", f"/nodes/{node}/tasks/{running}/status"), ()))
        pve.wait(running)
        failed = pve.ok("POST", f"/nodes/{node}/lxc/301/status/start")
        cases.append(("task_status_stopped_error.json", pve.wait(failed, want=None), ()))
        cases.append(("pve6.4_node_tasks_list.json", pve.ok("GET", f"/nodes/{node}/tasks"), ()))
        cases.append(("homelab_qemu_list.json", pve.ok("GET", f"/nodes/{node}/qemu"), ()))
        cases.append(("lxc_shutdown_response_upid.json", pve.ok("POST", f"/nodes/{node}/lxc/300/status/shutdown"), ()))
        pve.wait(cases[-1][1])
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/300/status/start"))
        for name, ours, optional in cases:
            same_shape(example(name)["data"], ours, name, optional)
        return f"{len(cases)} recorded responses"

    def recorded_errors():
        def same_error(name, status, reason, body, exact_reason=True):
            recorded = example(name)
            expect(status == recorded["status"], f"{name}: status {status}")
            expect(not exact_reason or reason == recorded["reason"], f"{name}: reason {reason!r}")
            same_shape(recorded["body"], body, name, optional=("message",))
            for key in recorded["body"].get("errors", {}):
                expect(key in body.get("errors", {}), f"{name}: no error for {key}")
        same_error("error_400_property_not_in_schema.http.json", *pve.call("PUT", f"/nodes/{node}/qemu/400/config", pool="web"))
        same_error("error_400_param_verification_pve7.1.http.json", *pve.call("POST", f"/nodes/{node}/lxc", vmid=350, ostemplate=template, password="abc"))
        same_error("error_400_property_format_errors.http.json", *pve.call("POST", f"/nodes/{node}/qemu", vmid=351, net0="virtio,bridge=vmbr0,firewall=false", scsi0="local-zfs:8,discard=maybe"))
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu", vmid=352, name="agentless-yet", agent="1"))
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu/352/status/start"))
        same_error("error_500_agent_not_running_pve9.http.json", *pve.call("GET", f"/nodes/{node}/qemu/352/agent/network-get-interfaces"))
        status, reason, body = pve.call("GET", "/cluster/nextid", vmid=300)
        recorded = example("error_400_nextid_vmid_exists.http.json")
        expect((status, reason) == (recorded["status"], recorded["reason"]), f"{status} {reason}")
        expect(body["errors"]["vmid"] == "VM 300 already exists", body)
        expect(body["data"] is None, body)
        status, reason, body = pve.call("POST", f"/nodes/{node}/lxc", vmid=305, ostemplate=template, colour="blue")
        expect(status == 400 and body["errors"]["colour"] == "property is not defined in schema and the schema does not allow additional properties", body)
        return "nextid, unknown and badly formatted parameters, too short values, agent not running"

    def schema_sampling():
        """Every integer, boolean and formatted parameter of the guest endpoints refuses a wrong value."""
        wrong = {"integer": "not-a-number", "boolean": "true", "number": "x"}
        refused = 0
        for path in ("/nodes/{node}/lxc", "/nodes/{node}/qemu", "/nodes/{node}/lxc/{vmid}/clone", "/nodes/{node}/qemu/{vmid}/clone"):
            props = SCHEMA[path]["POST"]["parameters"]["properties"]
            for name, prop in sorted(props.items()):
                if name in ("node", "vmid") or "[n]" in name:
                    continue
                bad = wrong.get(prop.get("type"))
                if bad is None and isinstance(prop.get("format"), str) and prop["format"] in ("pve-vmid", "dns-name", "pve-storage-id", "pve-configid", "mac-addr", "ipv4"):
                    bad = "bad value!"
                if bad is None:
                    continue
                url = path.replace("{node}", node).replace("{vmid}", "300")
                status, reason, body = pve.call("POST", url, **{name: bad})
                expect(status == 400 and reason == "Parameter verification failed." and name in body.get("errors", {}),
                       f"{url} {name}={bad!r}: {status} {body}")
                message = body["errors"][name]
                expect(any(message.startswith(p) for p in ("type check", "invalid format", "value ")), f"{name}: {message}")
                refused += 1
        expect(refused > 30, f"only {refused} parameters sampled")
        return f"{refused} parameters refused with PVE's messages"

    def error_paths():
        # Two clones of one LXC template at once: PVE locks the source for the whole copy
        # (the simulator runs this test with vzclone taking a second).
        first = pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=310, full=1)
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc/301/clone", newid=311, full=1)
        expect((status, reason) == (500, "CT is locked (disk)"), f"{status} {reason}")
        pve.wait(first)
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=311, full=1))
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc/300/status/start")
        expect((status, reason) == (500, "CT 300 already running"), f"{status} {reason}")
        status, reason, _ = pve.call("DELETE", f"/nodes/{node}/lxc/300")
        expect((status, reason) == (500, "unable to destroy CT 300 - container is running"), f"{status} {reason}")
        status, reason, _ = pve.call("GET", f"/nodes/{node}/lxc/999/config")
        expect(status == 500 and reason == f"Configuration file 'nodes/{node}/lxc/999.conf' does not exist", reason)
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc", vmid=300, ostemplate=template)
        expect((status, reason) == (500, f"CT 300 already exists on node '{node}'"), reason)
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc", vmid=320, ostemplate="local:vztmpl/nosuch.tar.zst")
        expect(status == 500 and "does not exist" in reason, reason)
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc", vmid=321, ostemplate=template, memory=10_000_000)
        expect(status == 500 and "not enough memory" in reason, reason)
        task = pve.ok("POST", f"/nodes/{node}/lxc/301/status/start")
        pve.wait(task, want="you can't start a CT if it's a template")
        create_ct(330, protection=1)
        status, reason, _ = pve.call("DELETE", f"/nodes/{node}/lxc/330")
        expect((status, reason) == (500, "can't remove CT 330 - protection mode enabled"), reason)
        status, _, body = pve.call("GET", f"/nodes/{other}/tasks/{task}/status")
        expect(status == 400 and body["errors"]["upid"] == "no such task", body)
        # While a task works on a guest, its config flock is taken (vzclone=1 keeps one busy).
        clone = pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=312, full=1)
        status, reason, _ = pve.call("PUT", f"/nodes/{node}/lxc/312/config", memory=1024)
        expect((status, reason) == (500, "CT is locked (create)"), reason)
        pve.wait(clone)
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu", vmid=410, name="tpl410", memory=512, scsi0="local-zfs:0,import-from=local:import/noble-server-cloudimg-amd64.qcow2"))
        expect(pve.ok("GET", f"/nodes/{node}/qemu/410/config")["scsi0"].startswith("local-zfs:vm-410-disk-0,size="), "disk imported")
        status, reason, _ = pve.call("POST", f"/nodes/{node}/qemu", vmid=411, name="x", scsi0="local-zfs:0,import-from=local:import/nosuch.qcow2")
        expect(status == 500 and "does not exist" in reason, reason)
        status, reason, _ = pve.call("POST", f"/nodes/{node}/qemu", vmid=412, name="x", scsi0="nosuchstore:8")
        expect((status, reason) == (500, "storage 'nosuchstore' does not exist"), reason)
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu/410/template"))
        first = pve.ok("POST", f"/nodes/{node}/qemu/410/clone", newid=413, full=1)
        second = pve.ok("POST", f"/nodes/{node}/qemu/410/clone", newid=414, full=1)
        pve.wait(first), pve.wait(second)
        slow = pve.ok("POST", f"/nodes/{node}/lxc/300/status/stop")  # vzstop=1 in this test
        status, reason, _ = pve.call("PUT", f"/nodes/{node}/lxc/300/config", memory=1024)
        expect((status, reason) == (500, "can't lock file '/run/lock/lxc/pve-config-300.lock' - got timeout"), reason)
        pve.wait(slow)
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/300/status/start"))
        status, reason, _ = pve.call("PUT", f"/nodes/{node}/lxc/300/config", memory=1024, digest="0" * 40)
        expect(status == 500 and reason.startswith("detected modified configuration"), reason)
        return "locks, running guests, protection, templates, digests, wrong node"

    def every_endpoint():
        pve.ok("POST", "/pools", poolid="phoenix", comment="managed by Phoenix")
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc", vmid=340, ostemplate=template, pool="nosuch")
        expect((status, reason) == (403, "Permission check failed (pool 'nosuch' does not exist)"), reason)
        create_ct(340, pool="phoenix")
        pool = [p for p in pve.ok("GET", "/pools") if p["poolid"] == "phoenix"][0]
        expect([m["vmid"] for m in pool["members"]] == [340], pool)
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/301/clone", newid=341, full=1, target=other))
        expect(any(g["vmid"] == 341 for g in pve.ok("GET", f"/nodes/{other}/lxc")), "the clone lives on the target node")
        pve.wait(pve.ok("POST", f"/nodes/{node}/storage/local/download-url", content="iso", filename="tool.iso", url="https://example.invalid/tool.iso"))
        isos = pve.ok("GET", f"/nodes/{node}/storage/local/content", content="iso")
        expect([v["volid"] for v in isos] == ["local:iso/tool.iso"], isos)
        expect(len(pve.ok("GET", f"/nodes/{node}/aplinfo")) >= 2, "appliances offered")
        pve.wait(pve.ok("POST", f"/nodes/{node}/aplinfo", storage="local", template="debian-12-standard_12.7-1_amd64.tar.zst"))
        status, _, body = pve.call("POST", f"/nodes/{node}/aplinfo", storage="local", template="nosuch")
        expect(status == 400 and body["errors"]["template"] == "no such template", body)
        log = pve.ok("GET", f"/nodes/{node}/tasks/{pve.ok('POST', f'/nodes/{node}/lxc/300/status/reboot')}/log")
        expect(log[0]["n"] == 1, log)
        storages = [s["storage"] for s in pve.ok("GET", f"/nodes/{node}/storage", content="rootdir")]
        expect(storages == ["local-zfs", "fastData", "slowData", "nfs-shared"], storages)
        types = {r["type"] for r in pve.ok("GET", "/cluster/resources")}
        expect(types == {"lxc", "qemu", "node", "storage"}, types)
        expect(pve.ok("GET", f"/nodes/{node}/status")["memory"]["total"] > 0, "node status")
        # Resize grows only.
        pve.wait(pve.ok("PUT", f"/nodes/{node}/lxc/300/resize", disk="rootfs", size="+4G"))
        expect("size=12G" in pve.ok("GET", f"/nodes/{node}/lxc/300/config")["rootfs"], "rootfs grew to 12G")
        status, reason, _ = pve.call("PUT", f"/nodes/{node}/lxc/300/resize", disk="rootfs", size="2G")
        expect(status == 500 and reason.startswith("unable to shrink disk size"), reason)
        # Config delete= and firewall.
        pve.ok("PUT", f"/nodes/{node}/lxc/300/config", description="managed", onboot=1)
        pve.ok("PUT", f"/nodes/{node}/lxc/300/config", delete="description")
        cfg = pve.ok("GET", f"/nodes/{node}/lxc/300/config")
        expect("description" not in cfg and cfg["onboot"] == 1, cfg)
        pve.ok("PUT", f"/nodes/{node}/lxc/300/firewall/options", enable=1, policy_in="DROP")
        pve.ok("POST", f"/nodes/{node}/lxc/300/firewall/rules", type="in", action="ACCEPT", proto="tcp", dport="9000", enable=1)
        rules = pve.ok("GET", f"/nodes/{node}/lxc/300/firewall/rules")
        expect(rules[0]["dport"] == "9000" and rules[0]["pos"] == 0, rules)
        expect(pve.ok("GET", f"/nodes/{node}/lxc/300/firewall/options")["policy_in"] == "DROP", "firewall options")
        # QEMU: asynchronous config, agent exec and files, and the agent's errors.
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu/400/config", cores=2, ipconfig0="ip=10.0.0.40/24,gw=10.0.0.1", ciuser="ubuntu"))
        expect(pve.ok("GET", f"/nodes/{node}/qemu/400/config")["cores"] == 2, "qemu config via task")
        expect(pve.ok("POST", f"/nodes/{node}/qemu/400/agent/ping") == {"result": {}}, "agent ping")
        pid = pve.ok("POST", f"/nodes/{node}/qemu/400/agent/exec", command=["docker", "info"])["pid"]
        status, reason, _ = pve.call("POST", f"/nodes/{node}/qemu/400/agent/exec", command="docker info")
        expect((status, reason) == (500, "Not an ARRAY reference"), "a single command string fails as on PVE")
        expect(pve.ok("GET", f"/nodes/{node}/qemu/400/agent/exec-status", pid=pid)["exited"] == 1, "exec status")
        pve.ok("POST", f"/nodes/{node}/qemu/400/agent/file-write", file="/etc/motd", content="hello")
        guest = pve.admin("GET", "/guests/400")
        expect(guest["files"]["/etc/motd"] == "hello" and [c["command"] for c in guest["log"]] == ["docker info"], guest)
        pve.wait(pve.ok("POST", f"/nodes/{node}/qemu/400/status/stop"))
        status, reason, _ = pve.call("POST", f"/nodes/{node}/qemu/400/agent/ping")
        expect((status, reason) == (500, "VM 400 is not running"), reason)
        expect(pve.ok("GET", f"/nodes/{node}/lxc/302/interfaces") is None, "a stopped CT has no interfaces")
        return "pools, downloads, appliances, task logs, storages, resources, resize, config, firewall, agent"

    def faults_and_oplog():
        pve.admin("DELETE", "/oplog")
        for _ in range(5):
            pve.ok("GET", f"/nodes/{node}/lxc/300/status/current")
        log = pve.admin("GET", "/oplog")
        expect(len(log) == 5 and all(op["method"] == "GET" for op in log), "reads at steady state are logged and mutate nothing")
        pve.admin("PUT", "/faults", {"failTasks": {"vzsnapshot": "snapshot feature is not available"}})
        pve.wait(pve.ok("POST", f"/nodes/{node}/lxc/300/snapshot", snapname="s2"), want="snapshot feature is not available")
        cfg = pve.ok("GET", f"/nodes/{node}/lxc/300/config")
        expect("lock" not in cfg, "a failed snapshot task releases the lock")
        pve.admin("PUT", "/faults", {"locked": {"300": "backup"}})
        status, reason, _ = pve.call("POST", f"/nodes/{node}/lxc/300/status/stop")
        expect((status, reason) == (500, "CT is locked (backup)"), reason)
        pve.admin("PUT", "/faults", {"errorRate": 1.0})
        status, _, _ = pve.call("GET", "/version")
        expect(status in (500, 503), status)
        pve.admin("PUT", "/faults", {"resetRate": 1.0})
        try:
            pve.call("GET", "/version")
            raise Check("an injected reset should drop the connection")
        except requests.exceptions.ConnectionError:
            pass
        pve.admin("PUT", "/faults", {"latencyMs": [150, 150]})
        started = time.monotonic()
        pve.ok("GET", "/version")
        expect(time.monotonic() - started >= 0.15, "injected latency delays the answer")
        pve.admin("PUT", "/faults", {"loseTaskStatus": True})
        status, _, body = pve.call("GET", f"/nodes/{node}/tasks/UPID:{node}:0:0:0:vzstart:300:root@pam:/status")
        expect(status == 400, body)
        pve.admin("PUT", "/faults", {})
        guest = pve.admin("GET", "/guests/300")
        expect(guest["config"]["hostname"] == "ct300" and guest["running"], guest)
        return "errors, resets, latency, failing tasks, held locks, lost status, guest state"

    step("recorded PVE responses have the simulator's shape", recorded_shapes)
    step("recorded PVE error bodies", recorded_errors)
    step("validation follows the PVE schema", schema_sampling)
    step("PVE's error paths", error_paths)
    step("every endpoint the controllers use", every_endpoint)
    step("faults and the operation log", faults_and_oplog)
    print(f"{PASSED} passed, 0 failed")


if __name__ == "__main__":
    main()
