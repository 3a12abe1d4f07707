#!/usr/bin/env bash
# Builds the kubelet of a Kubernetes release from k8s.io/kubernetes through
# the Go module proxy, and caches it by version:
#   build-kubelet.sh [VERSION]   -> _output/kubelet/VERSION/kubelet
# A copy is also kept in $CRID_BUILD_CACHE (default /var/cache/crid), since
# CI starts each run from a fresh clone whose _output is empty: a build
# there takes some ten minutes of both cores.
# k8s.io/kubernetes cannot be required as a module as it is: its go.mod
# replaces every staging module (k8s.io/api, k8s.io/client-go...) with a
# directory of its own tree. A throwaway module requires it and replaces
# each staging module with its published tag (v0.X.Y for v1.X.Y) instead.
# GOPROXY has no ",direct": a module the proxy lacks fails at once rather
# than reaching for the internet.
set -euo pipefail
version=${1:-v1.37.2}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
out=$repo/_output/kubelet/$version
export PATH=$PATH:/usr/local/go/bin
export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=local

cache=${CRID_BUILD_CACHE:-/var/cache/crid}/kubelet/$version
is_version() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "Kubernetes $version\$"; }
if is_version "$out/kubelet"; then
	echo "$out/kubelet"
	exit 0
fi
if is_version "$cache/kubelet"; then
	mkdir -p "$out"
	cp "$cache/kubelet" "$out/kubelet.tmp" && mv "$out/kubelet.tmp" "$out/kubelet"
	echo "$out/kubelet"
	exit 0
fi
mkdir -p "$out/src"
cd "$out/src"
staging_tag=v0.${version#v1.}
cat >go.mod <<MOD
module crid.local/kubelet

go 1.26

require k8s.io/kubernetes $version
MOD
# The staging modules, read from the release's own go.mod.
go mod download -json "k8s.io/kubernetes@$version" >download.json
gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' download.json)
grep -o '^\s*k8s.io/[a-z0-9-]* => ./staging/src/k8s.io/[a-z0-9-]*' "$gomod" | awk '{print $1}' | sort -u >staging.txt
[ -s staging.txt ] || { echo "build-kubelet: no staging modules found in $gomod" >&2; exit 1; }
while read -r m; do
	echo "replace $m => $m $staging_tag" >>go.mod
done <staging.txt
cat >tools.go <<'SRC'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubelet"
SRC
echo "build-kubelet: building kubelet $version ($(wc -l <staging.txt) staging modules at $staging_tag)" >&2
go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/kubelet@$version"
# The version the kubelet reports, as a release build stamps it.
minor=${version#v1.}
minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
go build -trimpath -ldflags "$ldflags" -o "$out/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$out/kubelet.tmp" "$out/kubelet"
mkdir -p "$cache" && cp "$out/kubelet" "$cache/kubelet.tmp" && mv "$cache/kubelet.tmp" "$cache/kubelet"
echo "$out/kubelet"
