#!/bin/sh
# Regenerates the policy manifests (ConfigMap + Pod) from
# examples/policies/*.lua, so the ConfigMaps always carry the tested
# policies. tests/e2e/test_examples.py fails if they are out of date.
set -eu
cd "$(dirname "$0")"

gen() { # name, policy file, extra sidecar args (YAML lines, may be empty), description,
	# more probes of the driver container, more sidecar volumeMounts, more volumes
	# (YAML lines, each may be empty or left out)
	{
		cat <<EOF
# $4
# The policy ships in a ConfigMap mounted as a directory; the sidecar
# watches it and reloads within 2 s when the ConfigMap changes (kubelet
# swaps the ..data symlink). Test the policy first:
#   busted --lua=lua5.4 spec   and   livenessprobe --check-policy=$2
apiVersion: v1
kind: ConfigMap
metadata:
  name: livenessprobe-policy-$1
data:
  policy.lua: |
EOF
		sed 's/^/    /' "../policies/$2"
		cat <<EOF
---
apiVersion: v1
kind: Pod
metadata:
  name: hostpath-driver-$1
  labels:
    app: hostpath-driver
spec:
  containers:
    - name: hostpath-driver
      image: registry.k8s.io/sig-storage/hostpathplugin:v1.11.0
      args:
        - --endpoint=unix:///csi/csi.sock
        - --nodeid=\$(NODE_NAME)
      env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
      ports:
        - containerPort: 9808
          name: healthz
          protocol: TCP
      livenessProbe:
        failureThreshold: 5
        httpGet:
          path: /healthz
          port: healthz
        initialDelaySeconds: 10
        timeoutSeconds: 5
        periodSeconds: 5
EOF
		if [ -n "${5:-}" ]; then printf '%s\n' "$5"; fi
		cat <<EOF
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
    - name: liveness-probe
      image: livenessprobe-c:latest
      args:
        - --csi-address=/csi/csi.sock
        - --policy=/etc/livenessprobe/policy.lua
EOF
		if [ -n "$3" ]; then printf '%s\n' "$3"; fi
		cat <<EOF
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
        - mountPath: /etc/livenessprobe
          name: policy
          readOnly: true
EOF
		if [ -n "${6:-}" ]; then printf '%s\n' "$6"; fi
		cat <<EOF
  volumes:
    - name: socket-dir
      emptyDir: {}
    - name: policy
      configMap:
        name: livenessprobe-policy-$1
EOF
		if [ -n "${7:-}" ]; then printf '%s\n' "$7"; fi
	} >"$1.yaml"
}

gen startup-grace startup_grace.lua "" \
	"Start-up grace: ready=false is healthy for the first 120 s after the driver first answers."
gen retry-transient retry_transient.lua "        - --probe-timeout=1s
        - --check-timeout=4s" \
	"Retry transient errors: UNAVAILABLE and friends are retried within a 4 s check budget (kubelet's timeoutSeconds is 5)."
gen consecutive-failures consecutive_failures.lua "" \
	"Consecutive failures: unhealthy only after 3 failed checks in a row."
gen latency-limit latency_limit.lua "" \
	"Latency limit: unhealthy when Probe takes over 0.5 s in 3 checks in a row."
gen json-details json_details.lua "" \
	"JSON details: the body is a JSON document with the last probes (kubectl port-forward, then curl)."
gen split split.lua "" \
	"Three questions, three answers: startupProbe /startupz, livenessProbe /healthz, readinessProbe
# /readyz. An initializing driver (ready=false) is alive but out of service, not restarted; a
# hung one fails /healthz and is restarted. kubectl port-forward, then curl .../status says why." \
	"      startupProbe:
        failureThreshold: 30
        httpGet:
          path: /startupz
          port: healthz
        timeoutSeconds: 5
        periodSeconds: 10
      readinessProbe:
        failureThreshold: 1
        httpGet:
          path: /readyz
          port: healthz
        timeoutSeconds: 5
        periodSeconds: 5"

gen deep-check deep_check.lua "        - --policy-allow-path=/var/lib/kubelet/plugins_registry" \
	"Deeper health, node plugin: Probe, then NodeGetInfo, then the kubelet registration socket
# (ctx.file needs --policy-allow-path and the host directory, mounted read-only)." "" \
	"        - mountPath: /var/lib/kubelet/plugins_registry
          name: registration-dir
          readOnly: true" \
	"    - name: registration-dir
      hostPath:
        path: /var/lib/kubelet/plugins_registry
        type: Directory"
gen deep-check-controller deep_check_controller.lua "" \
	"Deeper health, controller plugin: Probe, then ControllerGetCapabilities within the same
# deadline, which must still claim CREATE_DELETE_VOLUME."

# A ConfigMap named $1 with every examples/failure-modes/*.lua, as it is.
failure_modes() {
	cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $1
data:
EOF
	for f in ../failure-modes/*.lua; do
		printf '  %s: |\n' "$(basename "$f")"
		sed 's/^/    /' "$f"
	done
}

# The failure lab: csi-mock-driver as the driver container, running one of
# examples/failure-modes/*.lua (all of them ship in one ConfigMap), with the
# sidecar and a livenessProbe, to watch what kubelet does with a failure.
{
	cat <<EOF2
# Failure lab: csi-mock-driver plays the CSI driver and fails the way the
# chosen script says (README "Scripting failures"); the sidecar and the
# livenessProbe are set up as for a real driver. Pick another failure by
# changing --script, then watch kubelet react:
#   kubectl apply -f failure-lab.yaml
#   kubectl get pod csi-failure-lab -w        (RESTARTS counts driver restarts)
#   kubectl logs csi-failure-lab -c liveness-probe
# The images come from the Dockerfile (scripts/image.sh):
# csi-mock-driver-c:latest (--target mock) and livenessprobe-c:latest.
EOF2
	failure_modes csi-mock-driver-failure-modes
	cat <<EOF2
---
apiVersion: v1
kind: Pod
metadata:
  name: csi-failure-lab
  labels:
    app: csi-failure-lab
spec:
  containers:
    - name: csi-driver
      image: csi-mock-driver-c:latest
      args:
        - --csi-address=/csi/csi.sock
        - --script=/etc/failure-modes/wedged.lua
      ports:
        - containerPort: 9808
          name: healthz
          protocol: TCP
      livenessProbe:
        failureThreshold: 3
        httpGet:
          path: /healthz
          port: healthz
        initialDelaySeconds: 5
        timeoutSeconds: 3
        periodSeconds: 2
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
        - mountPath: /etc/failure-modes
          name: failure-modes
          readOnly: true
    - name: liveness-probe
      image: livenessprobe-c:latest
      args:
        - --csi-address=/csi/csi.sock
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
  volumes:
    - name: socket-dir
      emptyDir: {}
    - name: failure-modes
      configMap:
        name: csi-mock-driver-failure-modes
EOF2
} >failure-lab.yaml

# The proxy lab: a real node plugin (the hostpath driver) behind
# csi-mock-driver --proxy-to, which injects the failures of one of
# examples/failure-modes/*.lua (all of them ship in its ConfigMap) into the
# calls of kubelet, node-driver-registrar and the sidecar.
{
	cat <<EOF2
# Proxy lab: the hostpath driver is the node plugin, but it serves
# /csi-real/csi.sock; csi-mock-driver --proxy-to serves /csi/csi.sock, the
# socket everyone else dials, and forwards every call to the driver except
# those its script fails on purpose (README "Testing your own driver's failure modes";
# examples/failure-modes/proxy_*.lua are written for this). The sidecar and
# node-driver-registrar are set up as for any node plugin. Pick another
# failure by changing --script, then watch:
#   kubectl apply -f proxy.yaml
#   kubectl logs hostpath-driver-proxy -c csi-proxy -f    (a line per call)
#   kubectl get pod hostpath-driver-proxy -w              (RESTARTS: driver restarts)
# The call log (a JSON line per call, with backend and injected) is in the
# csi-proxy container, whose image has no shell:
#   kubectl debug -it hostpath-driver-proxy --image=busybox:1.36 --target=csi-proxy \\
#     -- cat /proc/1/root/var/log/csi-proxy/calls.jsonl
# The images come from the Dockerfile (scripts/image.sh):
# csi-mock-driver-c:latest (--target mock) and livenessprobe-c:latest.
EOF2
	failure_modes csi-proxy-failure-modes
	cat <<EOF2
---
apiVersion: v1
kind: Pod
metadata:
  name: hostpath-driver-proxy
  labels:
    app: hostpath-driver-proxy
spec:
  containers:
    - name: hostpath-driver
      image: registry.k8s.io/sig-storage/hostpathplugin:v1.11.0
      args:
        - --drivername=hostpath.csi.k8s.io
        - --endpoint=unix:///csi-real/csi.sock
        - --nodeid=\$(NODE_NAME)
      env:
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
      securityContext:
        privileged: true
      ports:
        - containerPort: 9808
          name: healthz
          protocol: TCP
      livenessProbe:
        failureThreshold: 5
        httpGet:
          path: /healthz
          port: healthz
        initialDelaySeconds: 10
        timeoutSeconds: 3
        periodSeconds: 2
      volumeMounts:
        - mountPath: /csi-real
          name: real-socket-dir
        - mountPath: /var/lib/kubelet/pods
          mountPropagation: Bidirectional
          name: mountpoint-dir
        - mountPath: /var/lib/kubelet/plugins
          mountPropagation: Bidirectional
          name: plugins-dir
        - mountPath: /csi-data-dir
          name: csi-data-dir
        - mountPath: /dev
          name: dev-dir
    - name: csi-proxy
      image: csi-mock-driver-c:latest
      args:
        - --csi-address=/csi/csi.sock
        - --proxy-to=/csi-real/csi.sock
        - --script=/etc/failure/proxy_slow_probe.lua
        - --call-log=/var/log/csi-proxy/calls.jsonl
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
        - mountPath: /csi-real
          name: real-socket-dir
        - mountPath: /etc/failure
          name: failure-modes
          readOnly: true
        - mountPath: /var/log/csi-proxy
          name: call-log
    - name: liveness-probe
      image: livenessprobe-c:latest
      args:
        - --csi-address=/csi/csi.sock
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
    - name: node-driver-registrar
      image: registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.1
      args:
        - --csi-address=/csi/csi.sock
        - --kubelet-registration-path=/var/lib/kubelet/plugins/hostpath.csi.k8s.io/csi.sock
      volumeMounts:
        - mountPath: /csi
          name: socket-dir
        - mountPath: /registration
          name: registration-dir
  volumes:
    # The proxy's socket, on the host where kubelet dials it
    # (--kubelet-registration-path).
    - name: socket-dir
      hostPath:
        path: /var/lib/kubelet/plugins/hostpath.csi.k8s.io
        type: DirectoryOrCreate
    # The driver's own socket: only the driver and the proxy see it.
    - name: real-socket-dir
      emptyDir: {}
    - name: failure-modes
      configMap:
        name: csi-proxy-failure-modes
    - name: call-log
      emptyDir: {}
    - name: registration-dir
      hostPath:
        path: /var/lib/kubelet/plugins_registry
        type: Directory
    - name: mountpoint-dir
      hostPath:
        path: /var/lib/kubelet/pods
        type: DirectoryOrCreate
    - name: plugins-dir
      hostPath:
        path: /var/lib/kubelet/plugins
        type: Directory
    - name: csi-data-dir
      hostPath:
        path: /var/lib/csi-hostpath-data
        type: DirectoryOrCreate
    - name: dev-dir
      hostPath:
        path: /dev
        type: Directory
EOF2
} >proxy.yaml
