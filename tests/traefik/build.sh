#!/usr/bin/env bash
# Builds the real Traefik from its Go module (never a release download) into a cache outside the
# clone, keyed by version and module: a second run takes a moment.
#
#   tests/traefik/build.sh            build when missing; print TRAEFIK=path for the tests
#   tests/traefik/build.sh generate   rewrite the scratch module from the pinned release
#
# The scratch module (module/go.mod + go.sum, checked in) requires Traefik's command and carries
# the replace lines of Traefik's own go.mod, which a dependent module does not inherit:
# - github.com/traefik/traefik/dynamic/ext => ./ext: Traefik points it at a directory of its
#   repository that the published module leaves out (a nested module) and the proxy does not
#   serve; module/ext holds the same empty extension points.
# - the Containous forks of go-http-auth and mux; go-http-auth at the fork's 2020 commit (the one
#   Traefik v2 used), since the proxy refuses the 2026 pseudo-version Traefik names. Traefik
#   uses only its Basic/Digest authenticators, whose API is the same in both.
# - github.com/go-acme/lego/v5 => ./lego: lego's DNS-challenge factory imports ~200 DNS
#   providers' SDKs, a dozen of which the module proxy this project may use refuses. The build
#   copies lego's module as released and replaces that one generated file with a factory of
#   the providers that need no third-party SDK (exec, httpreq). Traefik's HTTP routing, file
#   provider and TLS are untouched; only `certResolvers` with other DNS providers are missing.
set -euo pipefail

TRAEFIK_VERSION=3.7.13
LEGO_VERSION=5.4.1

here=$(cd "$(dirname "$0")" && pwd)
cache=${PHOENIX_TRAEFIK_CACHE:-$HOME/.cache/phoenix-traefik}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export PATH=$PATH:/usr/local/go/bin

# A build directory holding the scratch module plus the patched lego beside it.
prepare() {
  local work=$1
  rm -rf "$work"
  mkdir -p "$work"
  cp -r "$here/module/." "$work/"
  go mod download "github.com/go-acme/lego/v5@v$LEGO_VERSION"
  cp -r "$(go env GOMODCACHE)/github.com/go-acme/lego/v5@v$LEGO_VERSION" "$work/lego"
  chmod -R u+w "$work/lego"
  cat >"$work/lego/providers/dns/zz_gen_dns_providers.go" <<'GO'
// Replaced by Phoenix's tests/traefik/build.sh: only providers without third-party SDKs.

package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
)

// NewDNSChallengeProviderByName Factory for DNS providers.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	switch name {
	case "exec":
		return exec.NewDNSProvider()
	case "httpreq":
		return httpreq.NewDNSProvider()
	default:
		return nil, fmt.Errorf("unrecognized DNS provider: %s", name)
	}
}
GO
}

generate() {
  local work
  work=$(mktemp -d)
  rm -f "$here/module/go.mod" "$here/module/go.sum"
  (cd "$here/module" && go mod init phoenix.test/traefik >/dev/null 2>&1 && go mod edit -go=1.26.0 &&
    go mod edit -replace=github.com/traefik/traefik/dynamic/ext=./ext \
      -replace=github.com/go-acme/lego/v5=./lego \
      -replace=github.com/abbot/go-http-auth=github.com/containous/go-http-auth@v0.4.1-0.20200324110947-a37a7636d23e \
      -replace=github.com/gorilla/mux=github.com/containous/mux@v0.0.0-20250523120546-41b6ec3aed59 \
      -exclude=github.com/tencentcloud/tencentcloud-sdk-go@v3.0.83+incompatible)
  prepare "$work"
  (cd "$work" && go get -tool "github.com/traefik/traefik/v3/cmd/traefik@v$TRAEFIK_VERSION")
  cp "$work/go.mod" "$work/go.sum" "$here/module/"
  rm -rf "$work"
}

build() {
  local key out
  key=$(cat "$here/module/go.mod" "$here/module/go.sum" "$here/module/ext/ext.go" "$0" |
    sha256sum | cut -c1-12)
  out=$cache/traefik-v$TRAEFIK_VERSION-$key
  if [[ ! -x $out ]]; then
    echo "building traefik v$TRAEFIK_VERSION from its module (first time: minutes)" >&2
    local work=$cache/src-$key tmp
    prepare "$work"
    tmp=$(mktemp "$cache/.traefik.XXXXXX")
    v=github.com/traefik/traefik/v3/pkg/version
    (cd "$work" && go build -trimpath -ldflags "-s -w -X $v.Version=$TRAEFIK_VERSION" \
      -o "$tmp" github.com/traefik/traefik/v3/cmd/traefik)
    mv "$tmp" "$out"
    rm -rf "$work"
  fi
  echo "TRAEFIK=$out"
}

case ${1:-build} in
  generate) generate ;;
  build)
    mkdir -p "$cache"
    # Tests running at once may each ask for the binary: one builds, the others wait.
    exec 9>"$cache/.lock"
    flock 9
    build
    ;;
  *) echo "usage: $0 [build|generate]" >&2; exit 2 ;;
esac
