#!/usr/bin/env bash
# Installs, idempotently, what crid needs on a Debian 12 machine:
#   install-deps.sh runtime   CNI plugins, iptables, crictl, a C compiler (crid-podmon)
#   install-deps.sh test      the above, plus busybox, curl, netcat-openbsd and
#                             docker-registry for the test images, qemu for the cgroup v2 tests, critest
#                             and promtool
# Go tools are pinned and built through the Go module proxy into
# $CRID_TOOLS_DIR (default _output/tools); crictl is also put on PATH.
set -euo pipefail

CRI_TOOLS_VERSION=v1.37.0
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
export PATH=$PATH:/usr/local/go/bin

what=${1:-runtime}
case "$what" in
runtime) packages=(containernetworking-plugins iptables iproute2 libseccomp-dev gcc libc6-dev) ;;
test) packages=(containernetworking-plugins iptables iproute2 libseccomp-dev gcc libc6-dev busybox docker-registry curl netcat-openbsd bind9-dnsutils qemu-system-x86 bc) ;;
*) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$tools"
stamp() { [ -x "$tools/$1" ] && [ "$(cat "$tools/$1.version" 2>/dev/null)" = "$CRI_TOOLS_VERSION" ]; }

if ! stamp crictl; then
	echo "install-deps: building crictl $CRI_TOOLS_VERSION"
	GOBIN=$tools go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
	echo "$CRI_TOOLS_VERSION" >"$tools/crictl.version"
fi
if ! cmp -s "$tools/crictl" /usr/local/bin/crictl 2>/dev/null; then
	install -m 0755 "$tools/crictl" /usr/local/bin/crictl
fi

# promtool checks the example alert rules (deploy/prometheus): taken out of
# Debian's prometheus package rather than installed with it, which would
# start a Prometheus server on the machine.
if [ "$what" = test ]; then
	want=$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')
	if [ -n "$want" ] && [ "$(cat "$tools/promtool.version" 2>/dev/null)" != "$want" ]; then
		echo "install-deps: extracting promtool $want from Debian's prometheus package"
		dl=$(mktemp -d)
		(cd "$dl" && apt-get download -qq prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download -qq prometheus >/dev/null; })
		dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$dl" ./usr/bin/promtool
		install -m 0755 "$dl/usr/bin/promtool" "$tools/promtool"
		echo "$want" >"$tools/promtool.version"
		rm -rf "$dl"
	fi
fi

# critest -parallel runs its suite through the ginkgo CLI, at the version
# cri-tools pins.
GINKGO_VERSION=v2.32.1
if [ "$what" = test ] && [ "$(cat "$tools/ginkgo.version" 2>/dev/null)" != "$GINKGO_VERSION" ]; then
	echo "install-deps: building ginkgo $GINKGO_VERSION"
	GOBIN=$tools go install "github.com/onsi/ginkgo/v2/ginkgo@$GINKGO_VERSION"
	echo "$GINKGO_VERSION" >"$tools/ginkgo.version"
fi

if [ "$what" = test ] && ! stamp critest; then
	# critest is a Go test binary (no main package), so `go install` cannot
	# build it: compile the test of cmd/critest in a module of its own.
	echo "install-deps: building critest $CRI_TOOLS_VERSION"
	mod=$tools/src/critest
	mkdir -p "$mod"
	cat >"$mod/go.mod" <<MOD
module crid.local/critest

go 1.26
MOD
	cat >"$mod/tools.go" <<'SRC'
//go:build tools

package tools

import _ "sigs.k8s.io/cri-tools/cmd/critest"
SRC
	(cd "$mod" && go get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS_VERSION" &&
		go test -c -o "$tools/critest" sigs.k8s.io/cri-tools/cmd/critest)
	echo "$CRI_TOOLS_VERSION" >"$tools/critest.version"
fi
