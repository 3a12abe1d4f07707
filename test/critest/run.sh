#!/usr/bin/env bash
# The critest conformance harness. On its own: test/critest/run.sh
#
# It installs what it needs, builds crid and the test images, serves the
# images from a docker-registry on loopback, points crid at it through a
# registries.conf (critest's upstream registry names stay as they are, and
# nothing leaves the machine), runs critest against a crid on a scratch
# root, and compares the failures with expected-failures.txt. The last line
# is `critest: N passed, N failed, N skipped`; the exit status is 0 only
# when the failures are exactly the expected ones.
#
#   run.sh -update     rewrite expected-failures.txt from this run
#   CRITEST_ARGS="--ginkgo.focus=Runtime.info" run.sh   pass flags to critest
#   CRITEST_PARALLEL=4 run.sh   run the specs on 4 ginkgo nodes at once
#                      (the ginkgo CLI cri-tools pins; install-deps.sh
#                      builds it)
#   CRITEST_BENCHMARK=1 run.sh   run critest's benchmarks instead (100
#                      pods, 100 containers, 50 image rounds; params in
#                      test/critest/benchmark-params.yaml), keeping their
#                      results in $work/benchmark; nothing is compared
#   CRITEST_RUNS=3 run.sh   run the suite 3 times against one crid, never
#                      restarted; after each run, with every pod removed,
#                      count what could leak (mounts, pinned namespaces,
#                      veths, pod cgroups, crid's descriptors, goroutines
#                      and threads): any growth after the first run fails
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
[ "$(id -u)" = 0 ] || { echo "critest: needs root, as crid does" >&2; exit 1; }

work=${CRID_CRITEST_WORK:-/var/tmp/crid-critest}
registry=${CRID_TEST_REGISTRY:-127.0.0.1:5000}
tools=${CRID_TOOLS_DIR:-$repo/_output/tools}
expected=$repo/test/critest/expected-failures.txt
update=
[ "${1:-}" = -update ] && update=-update

"$repo/hack/install-deps.sh" test
"$repo/hack/build.sh"
mkdir -p "$work" "$repo/_output/helpers"
cd "$repo"

# Processes this script starts, stopped by PID on the way out.
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# The registry: ours if it already answers (a previous run's data is
# reused: pushing is idempotent), else started here on loopback.
if ! curl -fsS "http://$registry/v2/" >/dev/null 2>&1; then
	pids+=("$("$repo/test/registry.sh" "$registry" "$work")")
fi

test/images/build-tools.sh
_output/helpers/build-images -registry "$registry" -busybox /bin/busybox \
	-helpers _output/helpers -registries-conf "$work/registries.conf"

# crid on a scratch root, with the default pod network and its metrics on
# a free loopback port (a node's own crid may hold the default one): the
# goroutine count comes from there.
scratch=$work/run
metrics_addr=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=unix://$scratch/crid.sock

start_crid() {
	_output/bin/crid --config "$scratch/crid.toml" >>"$work/crid.log" 2>&1 &
	crid_pid=$!
	pids=("$crid_pid" "${pids[@]}")
	for _ in $(seq 100); do
		"$tools/crictl" --runtime-endpoint "$endpoint" version >/dev/null 2>&1 && return 0
		kill -0 "$crid_pid" 2>/dev/null || { tail -20 "$work/crid.log"; echo "critest: crid exited at start" >&2; exit 1; }
		sleep 0.1
	done
	echo "critest: crid did not answer on $endpoint" >&2
	exit 1
}

# remove_all_pods has crid remove every pod left, as a node's crid would:
# critest does not clean up after every failing spec.
remove_all_pods() {
	"$tools/crictl" --runtime-endpoint "$endpoint" rmp -fa >/dev/null 2>&1 || true
}

# A previous run's leftovers are removed by crid itself, from its records.
if [ -f "$scratch/crid.toml" ]; then
	start_crid
	remove_all_pods
	kill -TERM "$crid_pid"
	wait "$crid_pid" || true
fi
# Last resort, for leftovers no record names (a run killed mid-way):
# detach what is still mounted there.
{ grep " $scratch/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
	echo "critest: detaching leftover mount $m"
	umount -l "$m" || true
done
rm -rf "$scratch"
mkdir -p "$scratch/net.d"
cp deploy/cni/10-crid-bridge.conflist "$scratch/net.d/"
cat >"$scratch/crid.toml" <<TOML
root = "$scratch/root"
runroot = "$scratch/runroot"
listen = "$scratch/crid.sock"
log_level = "debug"
[image]
registries_conf = "$work/registries.conf"
[network]
cni_config_dir = "$scratch/net.d"
[metrics]
address = "$metrics_addr"
[debug]
pprof = true
# Two Synchronize specs hold a plugin's Synchronize open for over 2 s on
# purpose, to create containers meanwhile. At the default request timeout
# (2 s, as containerd's and CRI-O's) any runtime drops the plugin first
# and the specs skip; given time, they check that no container created
# during the sync is lost.
[nri]
plugin_request_timeout = "10s"
socket_path = "$scratch/nri.sock"
plugin_path = "$scratch/nri-plugins"
plugin_config_path = "$scratch/nri-conf.d"
TOML
: >"$work/crid.log"
start_crid

# leak_counts prints what a run could leave behind once every pod is gone.
leak_counts() {
	local goroutines
	goroutines=$(curl -fsS "http://$metrics_addr/metrics" | awk '/^go_goroutines / {print $2}')
	echo "mounts=$(grep -c " $scratch/" /proc/self/mountinfo || true)" \
		"pinned-namespaces=$(find "$scratch/runroot/sandboxes" -mindepth 3 -path '*/ns/*' 2>/dev/null | wc -l)" \
		"veths=$(ip -o link show master crid0 2>/dev/null | wc -l)" \
		"pod-cgroups=$(find /sys/fs/cgroup/ -mindepth 2 -maxdepth 4 -type d -name 'crid-*' 2>/dev/null | wc -l)" \
		"crid-fds=$(ls "/proc/$crid_pid/fd" | wc -l)" \
		"goroutines=$goroutines" \
		"threads=$(awk '/^Threads:/ {print $2}' "/proc/$crid_pid/status")"
}

runs=${CRITEST_RUNS:-1}
# -parallel 1 is not the default to ginkgo: it refuses go test's -parallel.
parallel=
[ "${CRITEST_PARALLEL:-1}" -gt 1 ] && parallel="-parallel $CRITEST_PARALLEL"
bench=
if [ -n "${CRITEST_BENCHMARK:-}" ]; then
	rm -rf "$work/benchmark" && mkdir -p "$work/benchmark"
	bench="-benchmark -benchmarking-params-file $repo/test/critest/benchmark-params.yaml -benchmarking-output-dir $work/benchmark"
fi
status=0
first_counts=
for run in $(seq "$runs"); do
	echo "critest: run $run of $runs: critest $(cat "$tools/critest.version") against crid (log: $work/crid.log)"
	report=$work/report.json
	[ "$runs" -gt 1 ] && report=$work/report-$run.json
	rm -f "$report"
	set +e
	(cd "$scratch" && PATH=$tools:$PATH "$tools/critest" $parallel $bench \
		-runtime-endpoint "$endpoint" -image-endpoint "$endpoint" -nri-socket "$scratch/nri.sock" \
		-ginkgo.no-color -ginkgo.timeout=40m \
		-ginkgo.json-report "$report" ${CRITEST_ARGS:-}) >"$work/critest.log" 2>&1
	set -e
	[ -n "$bench" ] || grep -E '^(Ran |FAIL!|SUCCESS!)' "$work/critest.log" || tail -20 "$work/critest.log"
	if [ -n "$bench" ]; then
		# Succinct: one line of dots and the verdict.
		grep -oE '(SUCCESS|FAIL)! [0-9.]+s' "$work/critest.log" || tail -5 "$work/critest.log" | cut -c1-300
		grep -q 'SUCCESS!' "$work/critest.log" || status=1
		echo "critest: benchmark results in $work/benchmark: $(ls "$work/benchmark" | tr '\n' ' ')"
		break
	fi
	go run ./test/report -json "$report" -expected "$expected" -skips "$repo/test/critest/skips.txt" -registry "$registry" $update || status=1
	[ "$runs" -gt 1 ] || break
	remove_all_pods
	# Exits and monitors' shutdowns land within a second; what a run's last
	# calls leave winding down (streams the client cut, a pull's idle
	# connections) may take longer. Wait for the goroutines to come back
	# near the first run's count, for at most 30 s: a leak stays.
	sleep 1
	counts=$(leak_counts)
	if [ -n "$first_counts" ]; then
		first_g=$(tr ' ' '\n' <<<"$first_counts" | sed -n 's/^goroutines=//p')
		for waited in $(seq 29); do
			g=$(tr ' ' '\n' <<<"$counts" | sed -n 's/^goroutines=//p')
			[ "$g" -gt $((first_g + 4)) ] || break
			[ "$waited" -gt 1 ] || curl -fsS "http://$metrics_addr/debug/pprof/goroutine?debug=1" >"$work/goroutines-$run-early.txt" || true
			echo "critest: $g goroutines $waited s after run $run; waiting for them to wind down (stacks: $work/goroutines-$run-early.txt)"
			sleep 1
			counts=$(leak_counts)
		done
	fi
	echo "critest: after run $run, with every pod removed: $counts"
	if [ -z "$first_counts" ]; then
		first_counts=$counts
	else
		# Nothing may grow since the first run; goroutines and threads may
		# wander by a few (gRPC's and the runtime's idle pools).
		paste <(tr ' ' '\n' <<<"$first_counts") <(tr ' ' '\n' <<<"$counts") | while IFS=$'\t' read -r a b; do
			name=${a%%=*} was=${a#*=} now=${b#*=}
			slack=0
			case $name in goroutines | threads) slack=4 ;; esac
			if [ "$now" -gt $((was + slack)) ]; then
				echo "critest: LEAK: $name grew from $was after run 1 to $now after run $run" >&2
				exit 1
			fi
		done || {
			status=1
			echo "critest: crid's descriptors by kind:"
			for fd in /proc/"$crid_pid"/fd/*; do readlink "$fd"; done | sed 's/[0-9]\+/N/g' | sort | uniq -c | sort -rn | head
			echo "critest: crid's TCP connections:"
			ss -tnp 2>/dev/null | grep "pid=$crid_pid," | awk '{print $1, $4, $5}' | sort | uniq -c | head
			echo "critest: crid's goroutines, most common stacks first (all in $work/goroutines-$run.txt):"
			curl -fsS "http://$metrics_addr/debug/pprof/goroutine?debug=1" >"$work/goroutines-$run.txt" || true
			grep -A12 -m5 '^[0-9]* @' "$work/goroutines-$run.txt" | grep -v '^#.*runtime\.\(gopark\|goparkunlock\)' | head -60
		}
	fi
done

remove_all_pods
kill -TERM "$crid_pid"
wait "$crid_pid" || { echo "critest: crid did not stop cleanly; its log:"; tail -20 "$work/crid.log"; }
# Every pod is gone: nothing of them may stay mounted.
if grep -q " $scratch/" /proc/self/mountinfo; then
	echo "critest: mounts left under $scratch after every pod was removed:" >&2
	grep " $scratch/" /proc/self/mountinfo | awk '{print $5}' >&2
	exit 1
fi

exit $status
