#!/usr/bin/env bash
# Peer measurement for `make bench`: the bench fleet created by Ansible (community.proxmox,
# default forks=5) against a running `phoenix sim pve`.
#   usage: run.sh N CREDENTIALS_JSON
# Prints machine-readable lines:
#   ansible_seconds=<float> ansible_calls=<n> ansible_mutating=<n>
#   ansible_second_run_seconds=<float>
#   ansible_second_run_calls=<n> ansible_second_run_mutating=<n> ansible_second_run_changed=<n>
# Clears the simulator's oplog before each run (the simulator is assumed to be the peer's own).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 N CREDENTIALS_JSON" >&2
    exit 2
fi
N=$1
CREDS=$(realpath "$2")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

VENV=$(bash "$HERE/install.sh" | tail -n1)
PY="$VENV/bin/python"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/phoenix-ansible-peer.XXXXXX")
# ANSIBLE_PEER_LOGS=DIR keeps the playbook output (first.log, second.log) and both oplogs there.
LOGS=${ANSIBLE_PEER_LOGS:-}
trap 'if [[ -n "$LOGS" ]]; then mkdir -p "$LOGS"; cp "$WORK"/*.log "$WORK"/*.json "$LOGS"/ 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
# Keep Ansible's defaults (forks 5, linear strategy): no ansible.cfg, no overrides from the caller.
cd "$WORK"
unset ANSIBLE_FORKS ANSIBLE_STRATEGY ANSIBLE_CONFIG
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_NOCOLOR=1
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export ANSIBLE_LOCAL_TEMP="$WORK/tmp" ANSIBLE_HOME="$WORK/home"

# Inventory (one host per guest, as the Phoenix bench lays the fleet out) and extra-vars.
"$PY" - "$N" "$CREDS" "$PY" <<'PYEOF'
import json, sys, urllib.parse
n, creds, py = int(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3]
hosts = {}
for i in range(n):
    vmid = 1000 + i
    hosts[f"ct-{vmid}"] = {
        "vmid": vmid,
        "pve_node": f"pve{i % 4 + 1}",
        "ip": f"10.1.{i // 250}.{i % 250 + 1}/16",
    }
inventory = {"all": {"children": {"fleet": {"hosts": hosts}},
                     "vars": {"ansible_connection": "local", "ansible_python_interpreter": py}}}
json.dump(inventory, open("inventory.json", "w"), indent=1)  # JSON is valid YAML
url = urllib.parse.urlsplit(creds["url"])
user, _, token = creds["token_id"].partition("!")
json.dump({"pve_api_host": url.hostname, "pve_api_port": url.port or 8006,
           "pve_api_user": user, "pve_api_token_id": token,
           "pve_api_token_secret": creds["token_secret"]}, open("vars.json", "w"))
PYEOF

# The simulator's admin API: oplog (GET lists calls, DELETE clears), guests (GET: how many of the fleet run).
admin() {
    "$PY" - "$CREDS" "$@" <<'PYEOF'
import json, ssl, sys, urllib.request
creds, method, path = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
req = urllib.request.Request(f"{creds['admin_url']}/{path}", method=method, headers={
    "Authorization": f"PVEAPIToken={creds['token_id']}={creds['token_secret']}"})
body = urllib.request.urlopen(req, context=ctx).read()
if path == "oplog" and method == "GET":
    log = json.loads(body) or []
    if len(sys.argv) > 4:
        json.dump(log, open(sys.argv[4], "w"), indent=1)
    print(len(log), sum(1 for c in log if c.get("mutating")))
if path == "guests":
    n = int(sys.argv[4])
    guests = json.loads(body) or {}
    print(sum(1 for g in guests.values() if 1000 <= g["vmid"] < 1000 + n and g.get("running")))
PYEOF
}

now() { "$PY" -c 'import time; print(time.monotonic())'; }

# Runs the playbook once; sets SECONDS_TAKEN and CHANGED (sum of the recap's changed=).
play() {
    local log="$1" t0 t1 rc=0
    t0=$(now)
    "$VENV/bin/ansible-playbook" -i inventory.json -e @vars.json "$HERE/fleet.yml" >"$log" 2>&1 || rc=$?
    t1=$(now)
    SECONDS_TAKEN=$("$PY" -c "print(round($t1 - $t0, 3))")
    if [[ $rc -ne 0 ]]; then
        cat "$log" >&2
        echo "error: ansible-playbook failed (exit $rc)" >&2
        exit 1
    fi
    CHANGED=$(grep -o 'changed=[0-9]*' "$log" | awk -F= '{s+=$2} END {print s+0}')
}

admin DELETE oplog
play first.log
read -r CALLS MUTATING < <(admin GET oplog oplog-first.json)
grep -i '\[WARNING\]\|DEPRECATION' first.log | sort | uniq -c >&2 || true
echo "ansible_seconds=$SECONDS_TAKEN ansible_calls=$CALLS ansible_mutating=$MUTATING"
RUNNING=$(admin GET guests "$N")
if [[ "$RUNNING" != "$N" ]]; then
    echo "error: only $RUNNING of $N guests are running after the first run" >&2
    exit 1
fi

admin DELETE oplog
play second.log
read -r CALLS2 MUTATING2 < <(admin GET oplog oplog-second.json)
echo "ansible_second_run_seconds=$SECONDS_TAKEN"
echo "ansible_second_run_calls=$CALLS2 ansible_second_run_mutating=$MUTATING2 ansible_second_run_changed=$CHANGED"
if [[ "$CHANGED" != 0 || "$MUTATING2" != 0 ]]; then
    echo "error: the second run changed something" >&2
    cat second.log >&2
    exit 1
fi
