# The cluster's checks, sourced by run.sh in the lab once every node is
# Ready: kubectl, innode, result and wait_for are run.sh's. Each check is
# one result line; a failing one says what it saw.

ns=crid-test
e2e=registry.k8s.io/e2e-test-images
kubectl create namespace "$ns" >/dev/null

# check NAME TIMEOUT CMD...: PASS when CMD succeeds within TIMEOUT seconds.
check() {
	local name=$1 timeout=$2 start
	shift 2
	start=$(date +%s)
	if wait_for "$timeout" "$@"; then
		result PASS "$name" "$start"
	else
		result FAIL "$name" "$start" "$("$@" 2>&1 | tail -5)"
	fi
}

# Every kube-system pod (the static pods of the control plane, CoreDNS,
# kube-proxy's DaemonSet) Running and Ready, on nodes whose runtime is crid.
system_running() {
	local out
	out=$(kubectl -n kube-system get pods --no-headers -o custom-columns=N:.metadata.name,P:.status.phase,R:.status.containerStatuses[*].ready)
	echo "$out"
	[ -n "$out" ] && ! echo "$out" | grep -v -E ' Running +true(,true)*$'
}
check "control plane, CoreDNS and kube-proxy Running and Ready" 240 system_running
crid_nodes() {
	[ "$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}' | grep -c '^crid://')" = "${#nodes[@]}" ]
}
check "every node's runtime is crid" 10 crid_nodes
daemonsets_ready() {
	kubectl -n kube-system get ds kube-proxy -o jsonpath='{.status.numberReady}/{.status.desiredNumberScheduled}' | grep -qx "${#nodes[@]}/${#nodes[@]}"
}
check "kube-proxy DaemonSet on all ${#nodes[@]} nodes" 60 daemonsets_ready

# A Deployment of 6 agnhost netexec replicas behind a Service. The control
# plane's node keeps its NoSchedule taint, so they spread over the workers.
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: $e2e/agnhost:2.66.1
        args: [netexec, --http-port=8080]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node1
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: $e2e/agnhost:2.66.1
    args: [pause]
YAML
deployment_available() {
	kubectl -n "$ns" get deploy web -o jsonpath='{.status.availableReplicas}' | grep -qx 6
}
check "Deployment of 6 replicas available" 240 deployment_available
spread() {
	local on
	on=$(kubectl -n "$ns" get pods -l app=web -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c)
	echo "$on"
	[ "$(echo "$on" | wc -l)" = $((${#nodes[@]} - 1)) ]
}
check "replicas spread over every worker" 5 spread
client_ready() { kubectl -n "$ns" wait --for=condition=Ready pod/client --timeout=2s; }
check "client pod on node1 Ready" 120 client_ready

# From node1's client, through kube-proxy's rules, to replicas that all
# run on the other nodes; by ClusterIP, then by name through CoreDNS.
cluster_ip=$(kubectl -n "$ns" get svc web -o jsonpath='{.spec.clusterIP}')
by_cluster_ip() {
	local seen
	seen=$(for _ in $(seq 12); do kubectl -n "$ns" exec client -- curl -sS --max-time 3 "http://$cluster_ip/hostname"; echo; done | sort -u | grep -c web-)
	echo "distinct replicas answering: $seen"
	[ "$seen" -ge 2 ]
}
check "Service by ClusterIP $cluster_ip from another node (and kubectl exec)" 60 by_cluster_ip
by_name() {
	kubectl -n "$ns" exec client -- curl -sS --max-time 3 "http://web.$ns.svc.cluster.local/hostname" | grep -q '^web-'
}
check "Service by its DNS name, resolved by CoreDNS" 60 by_name

# kubectl logs, attach and port-forward: the API server reaching each
# node's kubelet, which proxies crid's streaming server.
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: $e2e/busybox:1.37.0-2
        command: [sh, -c, 'echo job-done-on-\$(hostname)']
---
apiVersion: v1
kind: Pod
metadata: {name: cat}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: cat
    image: $e2e/busybox:1.37.0-2
    command: [sh, -c, 'while read line; do echo "got \$line"; done']
    stdin: true
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: $e2e/busybox:1.37.0-2
    # tail keeps all of a file without newlines: it grows until killed.
    command: [tail, /dev/zero]
    resources: {limits: {memory: 32Mi}}
YAML
job_complete() { kubectl -n "$ns" wait --for=condition=Complete job/once --timeout=2s; }
check "a Job completes" 120 job_complete
job_logs() { kubectl -n "$ns" logs job/once | grep -q '^job-done-on-once-'; }
check "kubectl logs of the Job" 30 job_logs
cat_ready() { kubectl -n "$ns" wait --for=condition=Ready pod/cat --timeout=2s; }
attach() {
	{ echo ping; sleep 3; } | timeout 15 "$k8s/kubectl" --kubeconfig /etc/kubernetes/admin.conf -n "$ns" attach -i cat 2>&1 | tee /dev/stderr | grep -q '^got ping$'
}
attach_in_node1() { innode 1 bash -c "$(declare -f attach); k8s=$k8s ns=$ns attach" 2>/dev/null; }
wait_for 120 cat_ready || true
check "kubectl attach" 30 attach_in_node1
port_forward() {
	local pod
	pod=$(kubectl -n "$ns" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
	innode 1 bash -c "
		'$k8s/kubectl' --kubeconfig /etc/kubernetes/admin.conf -n '$ns' port-forward 'pod/$pod' 18080:8080 >/dev/null 2>&1 &
		pf=\$!
		for _ in \$(seq 20); do curl -fsS --max-time 2 http://127.0.0.1:18080/hostname 2>/dev/null | grep -qx '$pod' && { kill \$pf; exit 0; }; sleep 0.5; done
		kill \$pf; exit 1"
}
check "kubectl port-forward" 30 port_forward
oom_killed() {
	kubectl -n "$ns" get pod hog -o jsonpath='{.status.containerStatuses[0].state.terminated.reason}' | grep -qx OOMKilled
}
check "a container over its memory limit is OOMKilled" 120 oom_killed

# crid restarted on a worker while its pods serve: the containers keep
# running (same IDs, no restarts), the Service keeps answering, and the
# new crid serves them (exec).
restart_node=2
state() {
	kubectl -n "$ns" get pods -l app=web --field-selector "spec.nodeName=node$restart_node" \
		-o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{"\n"}{end}'
}
start=$(date +%s)
before=$(state)
innode 1 bash -c "for i in \$(seq 40); do '$k8s/kubectl' --kubeconfig /etc/kubernetes/admin.conf -n '$ns' exec client -- curl -sS --max-time 2 http://$cluster_ip/hostname >/dev/null 2>&1 && echo ok || echo failed; sleep 0.25; done" >"$work/restart-load.log" 2>&1 &
load=$!
nd=$work/node$restart_node
kill -TERM "$(cat "$nd/crid.pid")"
while kill -0 "$(cat "$nd/crid.pid")" 2>/dev/null; do sleep 0.1; done
# nsenter itself, not innode (a function, so a subshell of its own): $! is
# then crid's PID, which the node stops at its end.
nsenter -t "${holder[$restart_node]}" -n -u -m -- "$repo/_output/bin/crid" >>"$nd/crid.log" 2>&1 &
echo $! >"$nd/crid.pid"
wait "$load" || true
wait_for 30 innode "$restart_node" "$tools/crictl" version || true
after=$(state)
failed=$(grep -c failed "$work/restart-load.log" || true)
pod=$(echo "$before" | awk 'NR==1 {print $1}')
if [ -n "$before" ] && [ "$before" = "$after" ] && [ "$failed" = 0 ] &&
	kubectl -n "$ns" exec "$pod" -- /agnhost-2 --help >/dev/null 2>&1; then
	result PASS "crid restarted on node$restart_node under load: $(echo "$before" | wc -l) containers kept, 40 requests answered" "$start"
else
	result FAIL "crid restarted on node$restart_node under load" "$start" "before: $before; after: $after; failed requests: $failed"
fi

# A drained node's pods go to the other worker; uncordoned, it takes pods
# again.
drain_node=3
start=$(date +%s)
if innode 1 "$k8s/kubectl" --kubeconfig /etc/kubernetes/admin.conf drain "node$drain_node" --ignore-daemonsets --delete-emptydir-data --force --timeout=120s >"$work/drain.log" 2>&1 &&
	wait_for 120 deployment_available &&
	[ -z "$(kubectl -n "$ns" get pods -l app=web --field-selector "spec.nodeName=node$drain_node" -o name)" ]; then
	result PASS "node$drain_node drained, its replicas rescheduled" "$start"
else
	result FAIL "node$drain_node drained, its replicas rescheduled" "$start" "$(tail -3 "$work/drain.log"; kubectl -n "$ns" get pods -o wide)"
fi
kubectl uncordon "node$drain_node" >/dev/null

if [ -n "${CLUSTER_CONFORMANCE:-}" ]; then
	. "$here/conformance.sh"
fi

# Everything deleted: on every node, no pod of the test left in crid, and
# once the kubelets stop and the nodes' last pods are removed, no mount
# under crid's state, no pinned namespace, no veth but the node's own, no
# process in the node's cgroup root.
start=$(date +%s)
kubectl delete namespace "$ns" --timeout=120s >/dev/null 2>&1 || true
test_pods_gone() {
	for n in "${nodes[@]}"; do
		# A crictl that cannot reach crid is a failure, not an empty list.
		left=$(innode "$n" "$tools/crictl" pods --namespace "$ns" -q) || { echo "crictl on node$n failed"; return 1; }
		[ -z "$left" ] || { echo "node$n still has pods of $ns"; return 1; }
	done
	return 0
}
if wait_for 120 test_pods_gone; then
	result PASS "namespace deleted: no pod of it left in any crid" "$start"
else
	result FAIL "namespace deleted: no pod of it left in any crid" "$start" "$(test_pods_gone)"
fi
start=$(date +%s)
leaks=
for n in "${nodes[@]}"; do
	nd=$work/node$n
	kill -TERM "$(cat "$nd/supervisor.pid")"
	while kill -0 "$(cat "$nd/supervisor.pid")" 2>/dev/null; do sleep 0.2; done
	innode "$n" "$tools/crictl" rmp -fa >/dev/null 2>&1 || true
	# (pipefail: a crictl that cannot reach crid fails the count.)
	pods=$(innode "$n" "$tools/crictl" pods -q | wc -l) || pods="unknown (crictl failed)"
	mounts=$(innode "$n" grep -c -e " $nd/crid-root" -e " $nd/crid-run" /proc/self/mountinfo || true)
	# Namespace pins are bind mounts (counted above) on files here.
	pins=$({ find "$nd/crid-run/sandboxes" -path '*/ns/*' 2>/dev/null || true; } | wc -l)
	veths=$(innode "$n" ip -o link show type veth | grep -vc ' eth0@' || true)
	procs=0
	for h in $(hierarchies); do
		p=$({ find "$h$cgroot/node$n" -name cgroup.procs -exec cat {} + 2>/dev/null || true; } | wc -l)
		procs=$((procs + p))
	done
	[ "$pods$mounts$pins$veths$procs" = 00000 ] || leaks+="node$n: $pods pods, $mounts mounts, $pins pins, $veths veths, $procs processes in its cgroups; "
done
if [ -z "$leaks" ]; then
	result PASS "every pod removed: no mount, pin, veth or cgroup process left on any node" "$start"
else
	result FAIL "every pod removed: nothing left on any node" "$start" "$leaks"
fi
