#!/usr/bin/env bash
# Builds a binary of a Kubernetes release from k8s.io/kubernetes through the
# Go module proxy, and caches it by version:
#   build-k8s.sh kubelet  [VERSION]  -> _output/k8s/VERSION/kubelet
#   build-k8s.sh e2e_node [VERSION]  -> _output/k8s/VERSION/e2e_node.test
#                                       (the node e2e suite, with the kubelet
#                                       beside it, where the suite looks)
#   build-k8s.sh e2e      [VERSION]  -> _output/k8s/VERSION/e2e.test
#                                       (the cluster e2e suite, conformance)
#   build-k8s.sh agnhost  [VERSION]  -> _output/k8s/VERSION/agnhost
#   build-k8s.sh kubeadm|kubectl|kube-apiserver|kube-controller-manager|
#                kube-scheduler|kube-proxy [VERSION]
# and, from their own modules, what a kubeadm control plane runs beside:
#   build-k8s.sh etcd    v3.X.Y      -> _output/k8s/etcd-v3.X.Y/etcd
#   build-k8s.sh coredns v1.X.Y      -> _output/k8s/coredns-v1.X.Y/coredns
#                                       (with the plugins kubeadm's Corefile
#                                       names, as CoreDNS's plugin.cfg lets
#                                       a build choose)
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
what=${1:?usage: build-k8s.sh BINARY [VERSION]}
version=${2:-v1.37.2}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$repo/_output/k8s/$version
cache=${CRID_BUILD_CACHE:-/var/cache/crid}/k8s/$version
export PATH=$PATH:/usr/local/go/bin
export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

module=k8s.io/kubernetes
case "$what" in
kubelet | kubeadm | kubectl | kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy)
	bin=$what pkg=k8s.io/kubernetes/cmd/$what ;;
e2e_node) bin=e2e_node.test pkg=k8s.io/kubernetes/test/e2e_node ;;
e2e) bin=e2e.test pkg=k8s.io/kubernetes/test/e2e ;;
agnhost) bin=agnhost pkg=k8s.io/kubernetes/test/images/agnhost ;;
etcd) bin=etcd module=go.etcd.io/etcd/server/v3 pkg=crid.local/etcd ;;
coredns) bin=coredns module=github.com/coredns/coredns pkg=crid.local/coredns ;;
*) echo "build-k8s: unknown binary $what" >&2; exit 2 ;;
esac
if [ "$module" != k8s.io/kubernetes ]; then
	out=$repo/_output/k8s/$what-$version
	cache=${CRID_BUILD_CACHE:-/var/cache/crid}/k8s/$what-$version
fi

# A build is current when its stamp names the version it was built from.
current() { [ -x "$1/$bin" ] && [ "$(cat "$1/$bin.version" 2>/dev/null)" = "$version" ]; }
publish() {
	mkdir -p "$2"
	cp "$1/$bin" "$2/$bin.tmp" && mv "$2/$bin.tmp" "$2/$bin"
	echo "$version" >"$2/$bin.version"
}
# The throwaway module of a Kubernetes release: it requires k8s.io/kubernetes
# and replaces each staging module, read from the release's own go.mod,
# with its tag.
k8s_module() {
	[ -f go.mod ] && return
	cat >go.mod <<MOD
module crid.local/k8s

go 1.26

require k8s.io/kubernetes $version
MOD
	go mod download -json "k8s.io/kubernetes@$version" >download.json
	gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' download.json)
	grep -o '^\s*k8s.io/[a-z0-9-]* => ./staging/src/k8s.io/[a-z0-9-]*' "$gomod" | awk '{print $1}' | sort -u >staging.txt
	[ -s staging.txt ] || { echo "build-k8s: no staging modules found in $gomod" >&2; exit 1; }
	while read -r m; do
		echo "replace $m => $m v0.${version#v1.}" >>go.mod
	done <staging.txt
}

# etcd's own main (go.etcd.io/etcd/v3) is one call to etcdmain.Main; the
# server module alone is enough to build it.
etcd_module() {
	[ -f go.mod ] && return
	printf 'module crid.local/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$version" >go.mod
	printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >main.go
}

# CoreDNS with the plugins of kubeadm's Corefile (errors health ready
# kubernetes prometheus forward cache loop reload loadbalance) and log, as a
# plugin.cfg build would have them: the full set pulls every cloud's SDK.
coredns_module() {
	[ -f go.mod ] && return
	printf 'module crid.local/coredns\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' "$version" >go.mod
	{
		printf 'package main\n\nimport (\n'
		for p in errors health ready kubernetes metrics forward cache loop reload loadbalance log; do
			printf '\t_ "github.com/coredns/coredns/plugin/%s"\n' "$p"
		done
		printf '\t"github.com/coredns/coredns/coremain"\n)\n\nfunc main() { coremain.Run() }\n'
	} >main.go
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
		case "$module" in
		k8s.io/kubernetes) k8s_module ;;
		go.etcd.io/*) etcd_module ;;
		github.com/coredns/*) coredns_module ;;
		esac
		echo "build-k8s: building $bin of $version" >&2
		if [ "$module" != k8s.io/kubernetes ]; then
			go build -trimpath -ldflags "-s -w" -o "$out/$bin.tmp" "$pkg"
		else
			# The version a release build stamps, which the kubelet reports.
			minor=${version#v1.}
			minor=${minor%%.*}
			ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
			case "$what" in
			e2e_node) go test -c -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg" ;;
			e2e) go test -c -trimpath -tags notest,grpcnotrace -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg" ;;
			*) go build -trimpath -ldflags "$ldflags" -o "$out/$bin.tmp" "$pkg" ;;
			esac
		fi
		mv "$out/$bin.tmp" "$out/$bin"
		echo "$version" >"$out/$bin.version"
		publish "$out" "$cache"
	fi
fi
echo "$out/$bin"
