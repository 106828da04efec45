#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, etcd) from their Go modules (never a release
# download) into a cache outside the clone, keyed by version: a second run takes seconds.
#
#   tests/k8s/build.sh            build what is missing; print KEY=path lines for the tests
#   tests/k8s/build.sh generate   rewrite the scratch modules from the pinned releases
#
# Each tool has a scratch module beside this script (go.mod + go.sum, checked in so that the
# build needs only the Go module proxy, not the checksum database). kube-apiserver's module
# requires k8s.io/kubernetes and replaces each of its ./staging modules with the published
# v0.N.M (k8s.io/kubernetes is not meant to be used as a module: kubernetes/kubernetes#79384).
set -euo pipefail

K8S_VERSION=1.37.2
ETCD_VERSION=3.7.3

here=$(cd "$(dirname "$0")" && pwd)
cache=${PHOENIX_K8S_CACHE:-$HOME/.cache/phoenix-k8s}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export PATH=$PATH:/usr/local/go/bin

# The staging modules a k8s.io/kubernetes release points at ./staging, from its own go.mod.
staging_modules() {
  local mod
  mod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod
  go mod download k8s.io/kubernetes@v$K8S_VERSION
  awk '$2=="=>" && $3 ~ /^\.\/staging/ {print $1}' "$mod"
}

generate() {
  local dir=$here/kube-apiserver
  rm -rf "$dir" "$here/etcd"
  mkdir -p "$dir" "$here/etcd"
  local modules
  modules=$(staging_modules)
  [[ -n $modules ]] || { echo "no staging modules found in k8s.io/kubernetes v$K8S_VERSION" >&2; exit 1; }
  (cd "$dir" && go mod init phoenix.test/kube-apiserver >/dev/null 2>&1 && go mod edit -go=1.26.0 &&
    for m in $modules; do
      go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
    done &&
    go mod edit -godebug=default=go1.26 &&
    go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION")
  (cd "$here/etcd" && go mod init phoenix.test/etcd >/dev/null 2>&1 && go mod edit -go=1.26.0 &&
    go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
}

# build NAME VERSION PACKAGE [LDFLAGS]: into $cache/NAME-VERSION-KEY unless already there,
# KEY a hash of the scratch module and the flags (a regenerated module is built anew).
build() {
  local name=$1 version=$2 package=$3 ldflags=${4:-}
  local key
  key=$(cat "$here/$name/go.mod" "$here/$name/go.sum" <(echo "$package $ldflags") |
    sha256sum | cut -c1-12)
  local out=$cache/$name-$version-$key
  if [[ ! -x $out ]]; then
    echo "building $name $version from its module (first time: minutes)" >&2
    local tmp
    tmp=$(mktemp "$cache/.$name.XXXXXX")
    (cd "$here/$name" && go build -trimpath -tags selinux,notest \
      -ldflags "-s -w $ldflags" -o "$tmp" "$package")
    mv "$tmp" "$out"
  fi
  echo "$(echo "$name" | tr a-z- A-Z_)=$out"
}

case ${1:-build} in
  generate) generate ;;
  build)
    mkdir -p "$cache"
    # Tests running at once may each ask for the binaries: one builds, the others wait.
    exec 9>"$cache/.lock"
    flock 9
    v=k8s.io/component-base/version
    build kube-apiserver "v$K8S_VERSION" k8s.io/kubernetes/cmd/kube-apiserver \
      "-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$(echo $K8S_VERSION | cut -d. -f2)"
    build etcd "v$ETCD_VERSION" go.etcd.io/etcd/server/v3
    ;;
  *) echo "usage: $0 [build|generate]" >&2; exit 2 ;;
esac
