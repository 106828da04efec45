#!/usr/bin/env bash
# Installs the Ansible peer for `make bench` into a virtualenv (idempotent: a second run
# only checks and returns in seconds). Prints the venv's path on its last line.
#   ansible==12.3.0 (the community package, which bundles community.proxmox) + proxmoxer + requests
set -euo pipefail

ANSIBLE_VERSION=12.3.0
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/phoenix-ansible-${ANSIBLE_VERSION}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.phoenix-installed"

have_collection() {
    # The module must resolve from this venv's own collection path.
    "$VENV/bin/ansible-doc" -t module community.proxmox.proxmox >/dev/null 2>&1
}

if [[ -f "$STAMP" ]] && [[ -x "$VENV/bin/ansible-playbook" ]] \
    && "$VENV/bin/python" -c 'import proxmoxer, requests' 2>/dev/null \
    && have_collection; then
    echo "$VENV"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "ansible==${ANSIBLE_VERSION}" proxmoxer requests

if ! have_collection; then
    echo "community.proxmox is not in the ansible ${ANSIBLE_VERSION} bundle; installing it from Galaxy" >&2
    if ! "$VENV/bin/ansible-galaxy" collection install community.proxmox; then
        echo "error: ansible-galaxy could not install community.proxmox (Galaxy is probably unreachable from here)" >&2
        exit 1
    fi
    have_collection || { echo "error: community.proxmox.proxmox still not found" >&2; exit 1; }
fi

"$VENV/bin/ansible-galaxy" collection list community.proxmox 2>/dev/null | grep -i 'community.proxmox' >&2 || true
touch "$STAMP"
echo "$VENV"
