#!/usr/bin/env bash
# kubectl conformance: drives the stock kubectl against Phoenix's embedded API server and
# asserts on what each command prints or how it exits.
#
# Usage: tests/kubectl/conformance.sh KUBECTL_BINARY
#
#   KUBECONFIG  must point at a running server (HTTPS, bearer token, admin user).
#   REPO        repo root; defaults to two directories above this script.
#   RUN_ID      suffix of every object name; defaults to $RANDOM$$, so the script can run
#               again and again against the same server without collisions.
#   NO_NAMESPACE_CONTROLLER  set when no kube-controller-manager runs beside the server
#               (a namespace deleted then stays Terminating).
#
# The script never starts or stops the server. It works in namespace `default` (plus one
# namespace it creates and deletes) and removes everything it created, also on failure.
# The first failed assertion prints what was expected and what kubectl said, then the
# script exits 1. The last line of a green run is "N passed, 0 failed" (CI reads it).
set -euo pipefail

usage() { echo "usage: $0 KUBECTL_BINARY   (KUBECONFIG must point at a running server)" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
KUBECTL=$1
command -v "$KUBECTL" >/dev/null || { echo "not an executable: $KUBECTL" >&2; exit 2; }
[[ -n ${KUBECONFIG:-} ]] || usage
command -v python3 >/dev/null || { echo "python3 is needed to check -o json" >&2; exit 2; }
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

ID=${RUN_ID:-$RANDOM$$}
ID=${ID,,} # object names must be lowercase
GROUP=phoenix.thinkheads.ai
CONF=conf-$ID     # the LxcGuest most steps work on
FIN=fin-$ID       # the LxcGuest whose deletion a finalizer holds up
SSA=ssa-$ID       # the LxcGuest written by server-side apply
DEF=def-$ID       # the LxcGuest whose network entry is left to its defaults
EVENT=$CONF.conformance
SECRET=pve-$ID
CM=cm-$ID
NS=ns-$ID
EXT=ext-$ID       # the LxcGuest of diff, wait, dry run, warnings and apply migration
DRY=dry-$ID       # created by a server dry run only: must never exist

TMP=$(mktemp -d)
# A private cache dir: kubectl caches discovery for 6 hours, and a cache left over from an
# earlier run (or another server on the same port) would hide discovery bugs.
CACHE_DIR=$TMP/cache
# --request-timeout bounds every single request, so a server that hangs fails the run
# instead of stalling CI; the explicit namespace keeps the kubeconfig's context out of it.
KC=("$KUBECTL" --cache-dir "$CACHE_DIR" --request-timeout=30s --namespace default)
kc() { "${KC[@]}" "$@"; }

# ---------------------------------------------------------------------------------------
# Bookkeeping: steps, failures, background processes, leftovers.

STEP_NO=0
STEP_NAME="(setup)"
REPORTED=0   # a failure has been printed
FINISHED=0   # every step passed and the cleanup step ran
BG_PIDS=()   # background kubectl processes still to be stopped
CREATED=()   # kind/name of objects to delete if the run stops half-way

step() {
    STEP_NO=$((STEP_NO + 1))
    STEP_NAME=$1
    echo "--- $1"
}

# fail MESSAGE [DETAIL...]: report the failed expectation and stop.
fail() {
    {
        echo "FAIL in step $STEP_NO ($STEP_NAME): $1"
        shift
        local line
        for line in "$@"; do echo "$line"; done
    } >&2
    REPORTED=1
    exit 1
}

on_exit() {
    local rc=$?
    local pid
    for pid in "${BG_PIDS[@]}"; do stop_bg "$pid"; done
    if ((rc != 0)); then
        ((REPORTED)) || echo "FAIL in step $STEP_NO ($STEP_NAME): unexpected error (exit $rc)" >&2
        ((FINISHED)) || remove_leftovers
        echo "$((STEP_NO > 0 ? STEP_NO - 1 : 0)) passed, 1 failed"
    fi
    rm -rf "$TMP"
}
trap on_exit EXIT

# Best effort, after a failure: delete whatever this run created, without waiting.
remove_leftovers() {
    local obj
    for obj in "${CREATED[@]}"; do
        if [[ $obj == "lxc/$FIN" ]]; then # its pending finalizer would keep it forever
            kc patch "$obj" --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null 2>&1 || true
        fi
        kc delete "$obj" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    done
}

# created KIND/NAME: remember an object for remove_leftovers (called before creating it).
created() { CREATED+=("$1"); }

# start_bg OUT_FILE ERR_FILE CMD...: run CMD in the background; its pid lands in $BG_PID.
# CMD is an external command, so $! is kubectl itself and kill reaches it.
start_bg() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# stop_bg PID: stop a background process this script started and reap it.
stop_bg() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget_bg "$1"
}

forget_bg() {
    local pid kept=()
    for pid in "${BG_PIDS[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    BG_PIDS=(${kept[@]+"${kept[@]}"})
}

# ---------------------------------------------------------------------------------------
# Assertions. Each one either returns or calls fail.

# run CMD...: CMD must exit 0. Its stdout lands in $OUT, its stderr in $ERR.
run() {
    local rc=0
    OUT=$("$@" 2>"$TMP/stderr") || rc=$?
    ERR=$(<"$TMP/stderr")
    ((rc == 0)) || fail "expected exit 0 from: $*" "got exit $rc" "stdout: $OUT" "stderr: $ERR"
}

# expect_fail CMD...: CMD must exit non-zero. Its stdout lands in $OUT, its stderr in $ERR.
expect_fail() {
    local rc=0
    OUT=$("$@" 2>"$TMP/stderr") || rc=$?
    ERR=$(<"$TMP/stderr")
    ((rc != 0)) || fail "expected a non-zero exit from: $*" "got exit 0" "stdout: $OUT" "stderr: $ERR"
}

# expect_contains OUTPUT NEEDLE: NEEDLE (a fixed string) occurs in OUTPUT.
expect_contains() {
    grep -qF -- "$2" <<<"$1" || fail "expected output containing: $2" "got:" "$1"
}

# expect_match OUTPUT REGEX: some line of OUTPUT matches the extended regex.
expect_match() {
    grep -qE -- "$2" <<<"$1" || fail "expected a line matching: $2" "got:" "$1"
}

# expect_eq GOT WANT
expect_eq() {
    [[ $1 == "$2" ]] || fail "expected: $2" "got:      $1"
}

# expect_header TABLE WORDS: the first line of TABLE, blanks squeezed, equals WORDS.
expect_header() {
    local got
    got=$(awk 'NR == 1 { $1 = $1; print }' <<<"$1")
    [[ $got == "$2" ]] || fail "expected header: $2" "got table:" "$1"
}

# expect_row TABLE NAME: TABLE has a row for NAME; the row lands in $ROW. The first column
# may carry a type prefix (`lxcguest.phoenix.thinkheads.ai/NAME`) when several kinds print.
expect_row() {
    ROW=$(awk -v n="$2" '$1 == n || substr($1, length($1) - length(n)) == "/" n { print; exit }' <<<"$1")
    [[ -n $ROW ]] || fail "expected a row for $2" "got table:" "$1"
}

# expect_column ROW N WANT: whitespace-separated column N of ROW is WANT; a negative N
# counts from the end (-1 = last). Cells a server leaves empty print as blanks and shift
# later columns, so columns after them are addressed from the end.
expect_column() {
    local got
    got=$(awk -v n="$2" '{ print (n < 0 ? $(NF + 1 + n) : $n) }' <<<"$1")
    [[ $got == "$3" ]] || fail "expected column $2 to be $3" "got row: $1"
}

# expect_age ROW: the last column reads like an age the server formatted (5s, 3m2s, 4d).
expect_age() {
    [[ $(awk '{ print $NF }' <<<"$1") =~ ^[0-9]+[smhdy] ]] ||
        fail "expected the last column (AGE) to read like 5s or 3m2s" "got row: $1"
}

# expect_jsonpath NAME JSONPATH WANT: an LxcGuest field read back with -o jsonpath.
expect_jsonpath() {
    run kc get lxcguest "$1" -o "jsonpath=$2"
    [[ $OUT == "$3" ]] || fail "expected $2 of $1 to be $3" "got: $OUT"
}

# expect_gone KIND NAME: the object no longer exists.
expect_gone() {
    expect_fail kc get "$1" "$2"
    expect_contains "$ERR" "NotFound"
}

# wait_for_line FILE REGEX PID: poll FILE (BASE.out or BASE.err of background process PID)
# until a line matches. This waits for a condition, at most 100 x 0.1 s; it does not sleep
# in its place.
wait_for_line() {
    local file=$1 re=$2 pid=$3 base=${1%.*} i
    for ((i = 0; i < 100; i++)); do
        grep -qE -- "$re" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break # exited: the line will never come
        sleep 0.1
    done
    grep -qE -- "$re" "$file" 2>/dev/null && return 0
    fail "expected a line matching /$re/ in $(basename "$file") of a background kubectl within 10s" \
        "its stdout:" "$(tail -n 20 "$base.out")" "its stderr (last lines):" "$(tail -n 20 "$base.err")"
}

# ---------------------------------------------------------------------------------------
# Fixtures.

# lxc_manifest NAME VMID CORES MEMORY [METADATA_LINES]: a small valid LxcGuest modelled on
# examples/lxc-801.yaml, labelled app=conf. Every defaulted field of the network entry is
# spelled out: client-side apply diffs lists as a whole, so a list the server fills in with
# defaults would turn the second apply's "unchanged" into "configured".
lxc_manifest() {
    local name=$1 vmid=$2 cores=$3 memory=$4 extra=${5:-}
    cat <<EOF
apiVersion: $GROUP/v1alpha1
kind: LxcGuest
metadata:
  name: $name
  namespace: default
  labels:
    app: conf
$extra
spec:
  vmid: $vmid
  node: phoenix
  source:
    clone:
      vmid: 900
  hostname: $name
  cores: $cores
  memory: $memory
  rootfs:
    storage: fastData
    size: 8G
  network:
  - name: eth0
    bridge: vmbr0
    firewall: false
    ip: 10.0.0.141/24
    gateway: 10.0.0.1
EOF
}

READY_STATUS='{"status":{"state":"running","conditions":[{"type":"Ready","status":"True","reason":"Running","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}'

# ---------------------------------------------------------------------------------------
# Steps.

step_discovery() {
    step "discovery: version and built-in resources"
    run kc version
    expect_contains "$OUT" "Server Version:"
    run kc api-resources
    local r
    for r in namespaces configmaps secrets events leases customresourcedefinitions; do
        expect_resource "$OUT" "$r"
    done
}

# expect_resource API_RESOURCES_OUTPUT NAME [SHORT_NAME]
expect_resource() {
    local line
    line=$(awk -v n="$2" '$1 == n { print; exit }' <<<"$1")
    [[ -n $line ]] || fail "expected kubectl api-resources to list $2" "got:" "$1"
    if [[ -n ${3:-} ]]; then
        # SHORTNAMES is the second column, comma-separated.
        [[ ,$(awk '{ print $2 }' <<<"$line"), == *",$3,"* ]] ||
            fail "expected short name $3 for $2" "got: $line"
    fi
}

step_crds() {
    step "CRDs: apply, established, discoverable"
    run kc apply -f "$REPO/crds/yaml/"
    # created on a fresh server, unchanged (or configured) on a re-run
    expect_match "$OUT" "lxcguests\.$GROUP (created|unchanged|configured)"
    run kc wait --for condition=established "crd/lxcguests.$GROUP" --timeout=10s
    expect_contains "$OUT" "condition met"
    # Checked here rather than in the first step: the CRD may not exist before this apply.
    run kc api-resources
    expect_resource "$OUT" lxcguests lxc
}

step_client_side_apply() {
    step "client-side apply: created, unchanged, configured"
    lxc_manifest "$CONF" 801 2 1024 >"$TMP/conf.yaml"
    created "lxc/$CONF"
    run kc apply -f "$TMP/conf.yaml"
    expect_contains "$OUT" "$CONF created"
    run kc apply -f "$TMP/conf.yaml"
    expect_contains "$OUT" "$CONF unchanged"
    lxc_manifest "$CONF" 801 2 2048 >"$TMP/conf.yaml"
    run kc apply -f "$TMP/conf.yaml"
    expect_contains "$OUT" "$CONF configured"
    expect_jsonpath "$CONF" '{.spec.memory}' 2048
}

step_get() {
    step "get: printer columns, output formats, selectors"
    run kc get lxcguests
    expect_header "$OUT" "NAME VMID NODE STATE IP READY HEALTHY AGE"
    expect_row "$OUT" "$CONF"
    expect_column "$ROW" 2 801 # VMID
    expect_age "$ROW"

    run kc get lxcguests -o wide
    expect_header "$OUT" "NAME VMID NODE STATE IP READY HEALTHY FEATURES STEP HOSTNAME AGE"
    expect_row "$OUT" "$CONF"
    expect_column "$ROW" -2 "$CONF" # HOSTNAME (the manifest uses the name), before AGE

    run kc get lxcguest "$CONF" -o yaml
    expect_contains "$OUT" "vmid: 801"

    run kc get lxcguests -o json
    python3 -c 'import json, sys
doc = json.load(sys.stdin)
sys.exit(0 if sys.argv[1] in [i["metadata"]["name"] for i in doc["items"]] else 1)' \
        "$CONF" <<<"$OUT" || fail "expected -o json to parse and list $CONF" "got:" "$OUT"

    run kc get lxcguest "$CONF" -o name
    expect_eq "$OUT" "lxcguest.$GROUP/$CONF"

    run kc get lxcguests --show-labels
    expect_row "$OUT" "$CONF"
    expect_contains "$ROW" "app=conf"

    run kc get lxcguests -l app=conf
    expect_row "$OUT" "$CONF"
    run kc get lxcguests -l app=nope
    expect_contains "$ERR" "No resources found"
    expect_eq "$OUT" ""

    run kc get lxcguests --field-selector "metadata.name=$CONF"
    expect_row "$OUT" "$CONF"
    expect_eq "$(awk 'END { print NR }' <<<"$OUT")" 2 # the header and exactly this row
}

step_watch() {
    step "watch: get -w streams a status change"
    start_bg "$TMP/watch.out" "$TMP/watch.err" "${KC[@]}" get lxc -w
    local watcher=$BG_PID
    # Wait for the initial list first: a change made before it would show up in the list
    # itself and prove nothing about the watch.
    wait_for_line "$TMP/watch.out" "^${CONF}[[:space:]]" "$watcher"
    ! grep -qE "^${CONF}[[:space:]].*running" "$TMP/watch.out" ||
        fail "expected $CONF not to be running before the status patch" "got:" "$(cat "$TMP/watch.out")"
    run kc patch lxc "$CONF" --subresource=status --type=merge -p "$READY_STATUS"
    expect_contains "$OUT" "patched"
    wait_for_line "$TMP/watch.out" "^${CONF}[[:space:]].*running" "$watcher"
    stop_bg "$watcher"
}

step_events() {
    step "events: core/v1 Event shows in describe and get events"
    run kc get lxc "$CONF" -o 'jsonpath={.metadata.uid}'
    local uid=$OUT now
    [[ -n $uid ]] || fail "expected $CONF to have a metadata.uid" "got nothing"
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    cat >"$TMP/event.json" <<EOF
{"apiVersion": "v1", "kind": "Event",
 "metadata": {"name": "$EVENT", "namespace": "default"},
 "involvedObject": {"apiVersion": "$GROUP/v1alpha1", "kind": "LxcGuest",
                    "name": "$CONF", "namespace": "default", "uid": "$uid"},
 "reason": "Created", "message": "conformance event", "type": "Normal",
 "source": {"component": "phoenix"}, "count": 1,
 "firstTimestamp": "$now", "lastTimestamp": "$now"}
EOF
    created "event/$EVENT"
    run kc create -f "$TMP/event.json"
    expect_contains "$OUT" "$EVENT created"

    run kc describe lxc "$CONF"
    expect_contains "$OUT" "Events:"
    # describe finds events by an involvedObject.* field selector; only its Events section counts
    expect_contains "$(awk '/^Events:/ { found = 1 } found' <<<"$OUT")" "conformance event"

    run kc get events
    expect_contains "$OUT" "conformance event"
}

step_explain() {
    step "explain: schema from OpenAPI v3"
    run kc explain lxcguest.spec.network
    expect_match "$OUT" '^[[:space:]]+ip[[:space:]]+<'
    expect_match "$OUT" '^[[:space:]]+bridge[[:space:]]+<'
    run kc explain lxcguest.spec.vmid
    expect_contains "$OUT" "integer"
}

step_label_annotate_patch() {
    step "label, annotate, merge patch, JSON patch"
    run kc label lxc "$CONF" tier=x
    expect_contains "$OUT" "labeled"
    run kc get lxc "$CONF" --show-labels
    expect_row "$OUT" "$CONF"
    expect_contains "$ROW" "tier=x"

    run kc annotate lxc "$CONF" note=hi
    expect_contains "$OUT" "annotated"
    expect_jsonpath "$CONF" '{.metadata.annotations.note}' hi

    run kc patch lxc "$CONF" --type=merge -p '{"spec":{"cores":3}}'
    expect_contains "$OUT" "patched"
    expect_jsonpath "$CONF" '{.spec.cores}' 3

    run kc patch lxc "$CONF" --type=json -p '[{"op":"replace","path":"/spec/cores","value":4}]'
    expect_contains "$OUT" "patched"
    expect_jsonpath "$CONF" '{.spec.cores}' 4
}

step_replace() {
    step "replace: update, and optimistic concurrency"
    lxc_manifest "$CONF" 801 5 2048 >"$TMP/replace.yaml"
    run kc replace -f "$TMP/replace.yaml"
    expect_contains "$OUT" "$CONF replaced"
    expect_jsonpath "$CONF" '{.spec.cores}' 5

    # A resourceVersion in the file is a precondition; "1" is long gone.
    lxc_manifest "$CONF" 801 6 2048 '  resourceVersion: "1"' >"$TMP/stale.yaml"
    expect_fail kc replace -f "$TMP/stale.yaml"
    expect_contains "$ERR" "Conflict"
    expect_jsonpath "$CONF" '{.spec.cores}' 5
}

step_finalizer() {
    step "finalizer: delete waits until the finalizer is removed"
    lxc_manifest "$FIN" 802 1 512 "  finalizers:
  - $GROUP/test" >"$TMP/fin.yaml"
    created "lxc/$FIN"
    run kc create -f "$TMP/fin.yaml"
    expect_contains "$OUT" "$FIN created"

    run kc delete lxc "$FIN" --wait=false
    expect_contains "$OUT" "deleted"
    run kc get lxc "$FIN" -o 'jsonpath={.metadata.deletionTimestamp}'
    [[ -n $OUT ]] || fail "expected $FIN to stay, with a deletionTimestamp, while its finalizer is pending" "got none"

    # -v=6 logs every request with its URL. Removing the finalizer only once the wait's
    # watch is open means the DELETED event must travel through that watch.
    start_bg "$TMP/wait.out" "$TMP/wait.err" "${KC[@]}" wait --for=delete "lxc/$FIN" --timeout=20s -v=6
    local waiter=$BG_PID rc=0
    wait_for_line "$TMP/wait.err" 'watch=true' "$waiter"
    run kc patch lxc "$FIN" --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'
    expect_contains "$OUT" "patched"
    wait "$waiter" || rc=$? # bounded by the wait's own --timeout
    forget_bg "$waiter"
    ((rc == 0)) || fail "expected kubectl wait --for=delete to exit 0 once the finalizer was removed" \
        "got exit $rc" "stdout: $(cat "$TMP/wait.out")" "stderr (last lines):" "$(tail -n 20 "$TMP/wait.err")"
    expect_gone lxc "$FIN"
}

step_wait_condition() {
    step "wait: condition Ready (set through /status earlier)"
    run kc wait --for=condition=Ready "lxc/$CONF" --timeout=10s
    expect_contains "$OUT" "condition met"
}

step_server_side_apply() {
    step "server-side apply: create, conflict, force"
    lxc_manifest "$SSA" 803 2 1024 >"$TMP/ssa.yaml"
    created "lxc/$SSA"
    run kc apply --server-side -f "$TMP/ssa.yaml"
    expect_contains "$OUT" "$SSA serverside-applied"

    # Another manager changing a field that manager "kubectl" owns is a conflict.
    lxc_manifest "$SSA" 803 6 1024 >"$TMP/ssa-other.yaml"
    expect_fail kc apply --server-side --field-manager=other -f "$TMP/ssa-other.yaml"
    expect_contains "$ERR" "conflict"
    expect_contains "$ERR" ".spec.cores"
    expect_jsonpath "$SSA" '{.spec.cores}' 2

    run kc apply --server-side --field-manager=other --force-conflicts -f "$TMP/ssa-other.yaml"
    expect_contains "$OUT" "$SSA serverside-applied"
    expect_jsonpath "$SSA" '{.spec.cores}' 6
}

# generation_and_revision NAME: "GENERATION REVISION" of an LxcGuest.
generation_and_revision() {
    run kc get lxc "$1" -o 'jsonpath={.metadata.generation} {.metadata.resourceVersion}'
    printf '%s' "$OUT"
}

step_defaults_change_nothing() {
    step "defaults: a re-applied manifest equal once defaulted keeps generation and revision; SSA compares as sent"
    # The network entry without name, bridge and firewall: the server fills them in, so
    # client-side apply resends the list each time (kubectl says "configured").
    { lxc_manifest "$DEF" 804 2 1024 | head -n -5
      printf '  - ip: 10.0.0.142/24\n    gateway: 10.0.0.1\n'; } >"$TMP/def.yaml"
    created "lxc/$DEF"
    run kc apply -f "$TMP/def.yaml"
    expect_contains "$OUT" "$DEF created"
    expect_jsonpath "$DEF" '{.spec.network[0].bridge}' vmbr0
    local before
    before=$(generation_and_revision "$DEF")
    run kc apply -f "$TMP/def.yaml"
    expect_eq "$(generation_and_revision "$DEF")" "$before"

    # Taking it over with server-side apply: the list is compared as sent, without its
    # defaults, so it differs from the stored one and conflicts with the client-side
    # applier (as kube-apiserver has it); forced, it changes no value, so no new generation.
    expect_fail kc apply --server-side -f "$TMP/def.yaml"
    expect_contains "$ERR" 'conflict with "kubectl-client-side-apply"'
    expect_contains "$ERR" ".spec.network"
    run kc apply --server-side --force-conflicts -f "$TMP/def.yaml"
    expect_contains "$OUT" "$DEF serverside-applied"
    run kc get lxc "$DEF" -o 'jsonpath={.metadata.generation}'
    expect_eq "$OUT" "${before%% *}"
}

step_kubectl_extras() {
    step "diff, wait for a JSONPath, strategic merge refused, warnings, server dry run, co-owners, migration"
    lxc_manifest "$EXT" 806 2 1024 >"$TMP/ext.yaml"
    created "lxc/$EXT"
    run kc apply -f "$TMP/ext.yaml"
    # kubectl diff: nothing for the manifest as stored (exit 0); an edit shows the value and
    # the generation it would bring (exit 1).
    run kc diff -f "$TMP/ext.yaml"
    expect_eq "$OUT" ""
    lxc_manifest "$EXT" 806 3 1024 >"$TMP/ext-3.yaml"
    expect_fail kc diff -f "$TMP/ext-3.yaml"
    expect_contains "$OUT" "-  cores: 2"
    expect_contains "$OUT" "+  cores: 3"
    expect_contains "$OUT" "+  generation: 2"
    run kc wait --for=jsonpath='{.spec.cores}'=2 "lxc/$EXT" --timeout=10s
    expect_contains "$OUT" "condition met"

    # Custom resources take no strategic merge patch, with kube-apiserver's 415 message.
    expect_fail kc patch lxc "$EXT" --type=strategic -p '{"spec":{"cores":3}}'
    expect_contains "$ERR" "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"

    # An unknown field under --validate=warn: a warning, and the field dropped.
    sed 's/^  cores: 2$/  cores: 2\n  colour: red/' "$TMP/ext.yaml" >"$TMP/ext-colour.yaml"
    run kc apply --validate=warn -f "$TMP/ext-colour.yaml"
    expect_contains "$ERR" 'Warning: unknown field "spec.colour"'
    run kc get lxc "$EXT" -o jsonpath='{.spec.colour}'
    expect_eq "$OUT" ""

    # A server dry run changes nothing and creates nothing.
    run kc apply --dry-run=server -f "$TMP/ext-3.yaml"
    expect_contains "$OUT" "$EXT configured (server dry run)"
    expect_jsonpath "$EXT" '{.spec.cores}' 2
    lxc_manifest "$DRY" 807 2 1024 >"$TMP/dry.yaml"
    run kc apply --dry-run=server -f "$TMP/dry.yaml"
    expect_contains "$OUT" "$DRY created (server dry run)"
    expect_gone lxc "$DRY"

    # Two appliers of equal values co-own them: no conflict.
    run kc apply --server-side --field-manager=second -f "$TMP/ext.yaml"
    expect_contains "$OUT" "$EXT serverside-applied"

    # From client-side to server-side apply: forced once, then kubectl moves what the
    # client-side applier owned to its own manager (csaupgrade).
    run kc apply --server-side --force-conflicts -f "$TMP/ext.yaml"
    # (As a set: the order follows the entries' times, which may fall in different seconds.)
    run kc get lxc "$EXT" -o 'jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}{"\n"}{end}'
    expect_eq "$(sort <<<"$OUT" | paste -sd ' ')" "kubectl/Apply second/Apply"
}

step_category_and_short_name() {
    step "category phoenix and short name lxc"
    run kc get phoenix
    expect_row "$OUT" "$CONF"
    expect_row "$OUT" "$SSA"
    run kc get lxc
    expect_row "$OUT" "$CONF"
    expect_row "$OUT" "$SSA"
}

step_invalid() {
    step "validation: invalid fixtures are rejected"
    local dir=$REPO/tests/fixtures/invalid
    expect_fail kc apply -f "$dir/bad-vmid.yaml"
    expect_contains "$ERR" "spec.vmid"
    expect_contains "$ERR" "Invalid value"
    expect_fail kc apply -f "$dir/unknown-field.yaml"
    expect_contains "$ERR" 'unknown field "spec.colour"'
    expect_fail kc apply -f "$dir/certificate-bad-dns-name.yaml"
    expect_contains "$ERR" 'spec.dnsNames[1]: Invalid value: "not a hostname!"'
}

step_builtins() {
    step "built-ins: secret, configmap, namespace, auth can-i"
    created "secret/$SECRET"
    run kc create secret generic "$SECRET" --from-literal=tokenSecret=x
    expect_contains "$OUT" "secret/$SECRET created"
    run kc get secret "$SECRET" -o 'jsonpath={.data.tokenSecret}'
    expect_eq "$OUT" "eA==" # base64 of "x"

    created "configmap/$CM"
    run kc create configmap "$CM" --from-literal=a=b
    expect_contains "$OUT" "configmap/$CM created"
    run kc get configmap "$CM" -o 'jsonpath={.data.a}'
    expect_eq "$OUT" "b"

    created "namespace/$NS"
    run kc create namespace "$NS"
    expect_contains "$OUT" "namespace/$NS created"

    run kc auth can-i create lxcguests
    expect_eq "$OUT" "yes"
}

step_wrong_token() {
    step "authentication: a wrong bearer token is refused"
    local copy=$TMP/wrong-token.kubeconfig user
    # --flatten inlines files the kubeconfig refers to (CA), so the copy works from $TMP.
    run "$KUBECTL" config view --raw --minify --flatten
    printf '%s\n' "$OUT" >"$copy"
    run "$KUBECTL" --kubeconfig "$copy" config view -o 'jsonpath={.contexts[0].context.user}'
    user=$OUT
    [[ -n $user ]] || fail "expected the current context to name a user" "got none"
    run "$KUBECTL" --kubeconfig "$copy" config set-credentials "$user" --token=wrong
    # Same (warm) discovery cache: the list request itself must be refused, with the
    # server's Status reason, not only discovery.
    expect_fail "$KUBECTL" --kubeconfig "$copy" --cache-dir "$CACHE_DIR" --request-timeout=30s \
        --namespace default get lxc
    expect_contains "$ERR" "Unauthorized"
}

step_cleanup() {
    step "cleanup: delete everything this run created"
    run kc delete lxc "$CONF" "$SSA" "$DEF" "$EXT" --timeout=25s
    run kc delete event "$EVENT" --timeout=25s
    run kc delete secret "$SECRET" --timeout=25s
    run kc delete configmap "$CM" --timeout=25s
    if [[ -n ${NO_NAMESPACE_CONTROLLER:-} ]]; then
        # A control plane without kube-controller-manager (tests/real_kubernetes.rs) never
        # empties a namespace: it stays Terminating.
        run kc delete namespace "$NS" --wait=false
        run kc get namespace "$NS" -o 'jsonpath={.status.phase}'
        expect_eq "$OUT" Terminating
    else
        run kc delete namespace "$NS" --timeout=25s
    fi
    expect_gone lxc "$CONF"
    expect_gone lxc "$SSA"
    expect_gone lxc "$DEF"
    expect_gone lxc "$EXT"
    expect_gone event "$EVENT"
    expect_gone secret "$SECRET"
    expect_gone configmap "$CM"
    [[ -n ${NO_NAMESPACE_CONTROLLER:-} ]] || expect_gone namespace "$NS"
    FINISHED=1
}

main() {
    echo "kubectl conformance: $KUBECTL, run id $ID, repo $REPO"
    step_discovery
    step_crds
    step_client_side_apply
    step_get
    step_watch
    step_events
    step_explain
    step_label_annotate_patch
    step_replace
    step_finalizer
    step_wait_condition
    step_server_side_apply
    step_defaults_change_nothing
    step_kubectl_extras
    step_category_and_short_name
    step_invalid
    step_builtins
    step_wrong_token
    step_cleanup
    echo "$STEP_NO passed, 0 failed"
}

main
