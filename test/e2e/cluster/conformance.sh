# The upstream e2e suite's [Conformance] specs (k8s.io/kubernetes/test/e2e,
# the cluster's version) against the cluster, as a report: sourced by
# checks.sh when CLUSTER_CONFORMANCE is set, never part of the verdict.
# Serial and Disruptive specs are left out (they would take the cluster
# for themselves); specs whose images the catalog does not pack fail to
# pull them, offline, and count as failed. The counts and every failed
# spec's name go to $work/conformance.
report_dir=$work/conformance
rm -rf "$report_dir"
mkdir -p "$report_dir"
default_focus='\[Conformance\]'
default_skip='\[Serial\]|\[Disruptive\]'
start=$(date +%s)
echo "cluster: the e2e suite's ${CLUSTER_CONFORMANCE_FOCUS:-$default_focus} specs, ${CLUSTER_CONFORMANCE_PROCS:-8} processes (logs: $report_dir)"
innode 1 env PATH="$tools:$k8s:$PATH" ginkgo --procs="${CLUSTER_CONFORMANCE_PROCS:-8}" --no-color --timeout=60m \
	--focus="${CLUSTER_CONFORMANCE_FOCUS:-$default_focus}" --skip="${CLUSTER_CONFORMANCE_SKIP:-$default_skip}" \
	--json-report=report.json --output-dir="$report_dir" "$k8s/e2e.test" -- \
	--kubeconfig=/etc/kubernetes/admin.conf --provider=skeleton --kubectl-path="$k8s/kubectl" \
	--report-dir="$report_dir" --e2e-output-dir="$report_dir" >"$report_dir/suite.log" 2>&1 || true
grep -E '^(Ran |FAIL!|SUCCESS!)' "$report_dir/suite.log" || tail -20 "$report_dir/suite.log"
go run ./test/report -suite conformance -script "CLUSTER_CONFORMANCE=1 test/e2e/cluster/run.sh" -json "$report_dir/report.json" \
	-expected "$report_dir/failed.txt" -update >/dev/null || true
go run ./test/report -suite conformance -json "$report_dir/report.json" -expected "$report_dir/failed.txt" | tail -1 || true
echo "cluster: conformance took $(($(date +%s) - start))s; failed specs: $report_dir/failed.txt"
