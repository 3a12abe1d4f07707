#!/usr/bin/env bash
# Builds CRI-O for the side-by-side benchmarks, through the Go module proxy,
# and caches it by version:
#   build-crio.sh [VERSION]  -> _output/crio/VERSION/{crio,pinns}
# and prints the directory. conmon and runc come from Debian (installed
# here if missing). A copy is kept in $CRID_BUILD_CACHE (default
# /var/cache/crid), as build-k8s.sh does, since CI starts from a clean
# clone.
#
# A throwaway module requires github.com/cri-o/cri-o at VERSION (its go.mod
# has no replace lines to carry over) and builds cmd/crio with the tags its
# Makefile uses where the C libraries are absent: containers_image_openpgp
# (no gpgme), the btrfs and devicemapper graph drivers left out, seccomp
# through libseccomp (Debian's -dev, as crid uses). pinns, CRI-O's C helper
# that pins a pod's namespaces, is built from the C sources the module zip
# carries (pinns/). The proxy serves some CRI-O tags and not others (no
# version list; v1.36.3 is the newest it gave on 2026-12-02): CRI v1 is
# the same API across them.
set -euo pipefail
version=${1:-v1.36.3}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$repo/_output/crio/$version
cache=${CRID_BUILD_CACHE:-/var/cache/crid}/crio/$version
export PATH=$PATH:/usr/local/go/bin
export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=local

for p in conmon runc libseccomp-dev gcc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then
	apt-get update -qq
	# shellcheck disable=SC2086 # a list of package names
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

current() { [ -x "$1/crio" ] && [ -x "$1/pinns" ] && [ "$(cat "$1/crio.version" 2>/dev/null)" = "$version" ]; }
publish() {
	mkdir -p "$2"
	for b in crio pinns; do cp "$1/$b" "$2/$b.tmp" && mv "$2/$b.tmp" "$2/$b"; done
	echo "$version" >"$2/crio.version"
}
if current "$out"; then echo "$out"; exit 0; fi
if current "$cache"; then publish "$cache" "$out"; echo "$out"; exit 0; fi

work=$(mktemp -d /var/tmp/crid-crio-build.XXXXXX)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GOPATH=${GOPATH:-$(go env GOPATH)} GOCACHE=${GOCACHE:-$(go env GOCACHE)}
cd "$work"
go mod init crid.local/crio-build >/dev/null 2>&1
echo "build-crio: fetching github.com/cri-o/cri-o@$version" >&2
go get "github.com/cri-o/cri-o@$version" >/dev/null 2>&1 || go get "github.com/cri-o/cri-o@$version"
echo "build-crio: building crio (a few minutes cold)" >&2
mkdir -p bin
CGO_ENABLED=1 go build -trimpath \
	-tags "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper btrfs_noversion seccomp" \
	-ldflags "-s -w -X github.com/cri-o/cri-o/internal/version.version=${version#v}" \
	-o bin/crio github.com/cri-o/cri-o/cmd/crio
src=$(go list -m -f '{{.Dir}}' github.com/cri-o/cri-o)
gcc -O2 -static -o bin/pinns "$src"/pinns/src/*.c 2>/dev/null || gcc -O2 -o bin/pinns "$src"/pinns/src/*.c
publish bin "$out"
publish bin "$cache"
echo "$out"
