#!/usr/bin/env bash
# Builds a binary of a Kubernetes release from k8s.io/kubernetes through the
# Go module proxy, and caches it by version:
#   build-k8s.sh kubelet  [VERSION]  -> _output/k8s/VERSION/kubelet
#   build-k8s.sh e2e_node [VERSION]  -> _output/k8s/VERSION/e2e_node.test
#                                       (the node e2e suite, with the kubelet
#                                       beside it, where the suite looks)
#   build-k8s.sh agnhost  [VERSION]  -> _output/k8s/VERSION/agnhost
# and prints the path. A copy is kept in $CRID_BUILD_CACHE (default
# /var/cache/crid), since CI starts each run from a fresh clone whose
# _output is empty: cold, the kubelet takes 3.5 min here, e2e_node 6 min.
#
# k8s.io/kubernetes cannot be required as a module as it is: its go.mod
# replaces every staging module (k8s.io/api, k8s.io/client-go...) with a
# directory of its own tree. A throwaway module requires it and replaces
# each staging module with its published tag (v0.X.Y for v1.X.Y) instead.
# GOPROXY has no ",direct": a module the proxy lacks fails at once rather
# than reaching for the internet.
set -euo pipefail
what=${1:?usage: build-k8s.sh kubelet|e2e_node|agnhost [VERSION]}
version=${2:-v1.37.2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$repo/_output/k8s/$version
cache=${CRID_BUILD_CACHE:-/var/cache/crid}/k8s/$version
export PATH=$PATH:/usr/local/go/bin
export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

case "$what" in
kubelet) bin=kubelet pkg=k8s.io/kubernetes/cmd/kubelet ;;
e2e_node) bin=e2e_node.test pkg=k8s.io/kubernetes/test/e2e_node ;;
agnhost) bin=agnhost pkg=k8s.io/kubernetes/test/images/agnhost ;;
*) echo "build-k8s: unknown binary $what (kubelet, e2e_node or agnhost)" >&2; exit 2 ;;
esac

# A build is current when its stamp names the version it was built from.
current() { [ -x "$1/$bin" ] && [ "$(cat "$1/$bin.version" 2>/dev/null)" = "$version" ]; }
publish() {
	mkdir -p "$2"
	cp "$1/$bin" "$2/$bin.tmp" && mv "$2/$bin.tmp" "$2/$bin"
	echo "$version" >"$2/$bin.version"
}
if [ "$what" = e2e_node ]; then
	"$0" kubelet "$version" >/dev/null
fi
if ! current "$out"; then
	if current "$cache"; then
		publish "$cache" "$out"
	else
		mkdir -p "$out/src"
		cd "$out/src"
		if [ ! -f go.mod ]; then
			cat >go.mod <<MOD
module crid.local/k8s

go 1.26

require k8s.io/kubernetes $version
MOD
			# The staging modules, read from the release's own go.mod.
			go mod download -json "k8s.io/kubernetes@$version" >download.json
			gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' download.json)
			grep -o '^\s*k8s.io/[a-z0-9-]* => ./staging/src/k8s.io/[a-z0-9-]*' "$gomod" | awk '{print $1}' | sort -u >staging.txt
			[ -s staging.txt ] || { echo "build-k8s: no staging modules found in $gomod" >&2; exit 1; }
			while read -r m; do
				echo "replace $m => $m v0.${version#v1.}" >>go.mod
			done <staging.txt
			printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/test/images/agnhost"\n)\n' >tools.go
		fi
		echo "build-k8s: building $bin of $version" >&2
		# The version a release build stamps, which the kubelet reports.
		minor=${version#v1.}
		minor=${minor%%.*}
		ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
		if [ "$what" = e2e_node ]; then
			go test -c -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg"
		else
			go build -trimpath -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg"
		fi
		mv "$out/$bin.tmp" "$out/$bin"
		echo "$version" >"$out/$bin.version"
		publish "$out" "$cache"
	fi
fi
echo "$out/$bin"
