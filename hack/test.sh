#!/usr/bin/env bash
# Installs what is missing and runs every test layer: unit tests, the root
# integration tests, the hostile-tenant suite, the critest conformance
# harness, a standalone kubelet, the kubelet's node e2e suite, and a
# three-node kubeadm cluster.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin
cd "$repo"

./hack/install-deps.sh test

echo "== unit tests"
go test -count=1 $(go list ./... | grep -v -e /test/integration -e /test/cgroups -e /test/security -e /test/e2e)

echo "== fuzzing the request validators, the kernel OOM log reader, the pod monitor's request parser and the store's log replay (kept corpus in testdata/fuzz, then 10 s each)"
# Each fuzzer's last two lines, or all it said when it failed (a failing
# input, or why the engine stopped).
fuzz() { # TARGET PACKAGE
	local out
	if out=$(go test -run '^$' -fuzz "^$1\$" -fuzztime 10s "$2" 2>&1); then
		tail -n 2 <<<"$out"
	else
		echo "$out"
		return 1
	fi
}
for target in FuzzSandbox FuzzContainer FuzzCpuset; do
	fuzz "$target" ./pkg/validate/
done
fuzz FuzzOOMDump ./pkg/cgroups/
fuzz FuzzMonitorRequest ./pkg/oci/monitor/
fuzz FuzzReplay ./pkg/store/

echo "== example alert rules (promtool from Debian's prometheus package)"
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
(cd deploy/prometheus && "$tools/promtool" check rules crid-alerts.yaml && "$tools/promtool" test rules crid-alerts_test.yaml)

echo "== integration tests (root)"
[ "$(id -u)" = 0 ] || echo "not root: the integration tests will skip, saying why"
go test -count=1 -v ./test/integration/... ./test/cgroups/...

echo "== hostile tenants (root): attacks through the CRI API"
go test -count=1 -v ./test/security/... | grep -E '^(refused|confined|escaped) |attacks,|^(--- )?(PASS|FAIL|ok)|skipping'

echo "== cgroup v2 tests (Debian cloud kernel under qemu)"
./test/cgroups/qemu.sh

echo "== critest conformance"
./test/critest/run.sh
echo "== critest: three runs on 4 parallel nodes against one crid, counting leaks between runs"
CRITEST_RUNS=3 CRITEST_PARALLEL=4 ./test/critest/run.sh

# A running kubelet kills processes in cgroups under its cgroup root that it
# does not know: this suite runs alone, after all the others, with a cgroup
# root of its own (/crid-e2e).
echo "== a standalone kubelet on crid (test/e2e/kubelet; the kubelet is built once per version, cached)"
./test/e2e/build-k8s.sh kubelet >/dev/null
go test -count=1 -v -timeout 15m ./test/e2e/kubelet/ | grep -E '^(PASS|FAIL) |^(--- )?(PASS|FAIL)|^ok|skipping'

# The same rule: the node e2e suite's kubelet owns /kubepods while it runs.
echo "== the node e2e suite of Kubernetes on crid: NodeConformance (test/e2e/node)"
./test/e2e/node/run.sh

# Three kubelets, each owning a cgroup root /crid-cluster/nodeN: alone too.
echo "== a three-node kubeadm cluster on crid (test/e2e/cluster)"
./test/e2e/cluster/run.sh
