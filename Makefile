# Phoenix: `make run` and `make test` are all a newcomer needs (see README.md).
# Builds share one target dir outside the clone so CI and repeated runs reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/phoenix-target
export HELM ?= $(HOME)/.local/bin/helm
# Go builds the test harnesses under tests/ that run the real tools written in Go.
export PATH := $(PATH):/usr/local/go/bin
PHOENIX := $(CARGO_TARGET_DIR)/debug/phoenix
DATA_DIR ?= .phoenix
SHARED ?= ../shared
# Tests read the reference material (PVE schema, recorded responses) from here.
export PHOENIX_SHARED := $(abspath $(SHARED))

.PHONY: run test crds lint bench deps build k8s traefik

# The whole platform on one machine: embedded API server + controllers + simulated Proxmox, examples applied.
# The simulated guests' Traefik (LXC 102) and nginx gateway (LXC 101) are the real ones, on
# the files Phoenix writes into those guests (Traefik built from its module, nginx Debian's).
run: deps build
	$(PHOENIX) up --simulate --data-dir $(DATA_DIR) --apply examples/ \
		--sim-traefik "$$(bash tests/traefik/build.sh | sed -n 's/^TRAEFIK=//p')" \
		--sim-nginx /usr/sbin/nginx

# Everything CI checks: formatting, clippy, unit and end-to-end tests, CRD drift, the Helm chart,
# and the real-Kubernetes suite (kube-apiserver and etcd built first: minutes on a fresh machine,
# seconds once cached in ~/.cache/phoenix-k8s).
test: deps lint k8s traefik
	cargo test --workspace --lib --bins --tests

# kube-apiserver and etcd built from their Go modules (tests/k8s/build.sh), for the tests.
k8s: deps
	bash tests/k8s/build.sh

# Traefik built from its Go module (tests/traefik/build.sh), for the route tests; cached in
# ~/.cache/phoenix-traefik.
traefik: deps
	bash tests/traefik/build.sh

# Regenerate the checked-in CRD YAML (crds/yaml and the chart's copy) from the Rust types.
crds: build
	$(PHOENIX) crds --out-dir crds/yaml
	$(PHOENIX) crds --out-dir charts/phoenix/files/crds

# rustfmt check and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks, printing their figures.
bench:
	cargo bench --bench apiserver --bench sim --bench converge --bench stacks

# Installs what the tests need that a fresh Debian machine lacks (idempotent).
deps:
	@command -v unzip >/dev/null || (apt-get update -qq && apt-get install -y -qq unzip)
	@test -x /usr/sbin/sshd || (apt-get update -qq && apt-get install -y -qq openssh-server)
	@command -v pebble >/dev/null || (apt-get update -qq && apt-get install -y -qq pebble)
	@test -x "$$(git --exec-path 2>/dev/null)/git-http-backend" || (apt-get update -qq && apt-get install -y -qq git)
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)
	@test -x /usr/sbin/dnsmasq || (apt-get update -qq && apt-get install -y -qq dnsmasq-base)
	@test -x /usr/sbin/nginx || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx)
	@test -f /usr/share/zoneinfo/America/New_York || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tzdata)
	@rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
	@test -x $(HELM) || bash $(SHARED)/tools/get-helm.sh $(dir $(HELM)) >/dev/null
	@python3 -c 'import proxmoxer, requests' 2>/dev/null || python3 -m pip install --quiet proxmoxer requests
	@command -v go >/dev/null || (echo "Go is needed for the harnesses under tests/ (expected in /usr/local/go)" >&2; exit 1)

build:
	cargo build
