#!/bin/sh
# Builds the container images from the Dockerfile with buildah and checks
# them, without a Docker daemon or a registry:
#   1. installs buildah, debootstrap and curl from Debian if missing;
#   2. makes the base image debian:bookworm locally (debootstrap minbase)
#      unless it is already in buildah's store;
#   3. builds livenessprobe-c:latest (default target) and
#      csi-mock-driver-c:latest (--target mock);
#   4. mounts both images' root filesystems, runs the image's csi-mock-driver
#      and livenessprobe (static: they run on the host as they are), checks
#      GET /healthz answers 200 "ok", then stops the driver and checks the
#      500 "context deadline exceeded" answer;
#   5. prints the image sizes, fails if livenessprobe's exceeds 8 MB.
# Cleans up its containers, mounts and processes; exits non-zero on any
# failure. Needs root (buildah with vfs storage, debootstrap, mount).
#
# Environment: MIRROR (Debian mirror for debootstrap, default
# http://deb.debian.org/debian), PORT (default 19809), IMAGE_TAG (default
# latest), REBUILD_BASE=1 remakes debian:bookworm.
set -eu
cd "$(dirname "$0")/.."
start=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then exec sudo -E "$0" "$@"; fi
	echo "image.sh: needs root (buildah vfs storage, debootstrap, mount)" >&2
	exit 1
fi

MIRROR=${MIRROR:-http://deb.debian.org/debian}
PORT=${PORT:-19809}
TAG=${IMAGE_TAG:-latest}
BASE=docker.io/library/debian:bookworm
LP_IMAGE=localhost/livenessprobe-c:$TAG
MOCK_IMAGE=localhost/csi-mock-driver-c:$TAG
MAX_BYTES=8000000
BUILDAH="buildah --storage-driver vfs"

log() { echo "image.sh: $*"; }
fail() {
	echo "image.sh: FAIL: $*" >&2
	exit 1
}

# ---- cleanup: everything below registers what it creates here ----
containers=""
pids=""
tmp=$(mktemp -d /tmp/lp-image.XXXXXX)
rootfs=""
cleanup() {
	rc=$?
	set +e
	for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	for c in $containers; do
		$BUILDAH umount "$c" >/dev/null 2>&1
		$BUILDAH rm "$c" >/dev/null 2>&1
	done
	if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
		# debootstrap unmounts proc/sys itself; never rm -rf through a mount.
		grep -q " $rootfs/" /proc/mounts && umount -R "$rootfs"/* 2>/dev/null
		if grep -q " $rootfs/" /proc/mounts; then
			echo "image.sh: $rootfs still has mounts; not removed" >&2
		else
			rm -rf "$rootfs"
		fi
	fi
	rm -rf "$tmp"
	if [ "$rc" -eq 0 ]; then log "done in $(($(date +%s) - start))s"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. tools ----
want=""
command -v buildah >/dev/null 2>&1 || want="$want buildah"
command -v debootstrap >/dev/null 2>&1 || want="$want debootstrap"
command -v curl >/dev/null 2>&1 || want="$want curl"
if [ -n "$want" ]; then
	log "installing:$want"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $want >/dev/null
fi

# ---- 2. base image ----
if [ "${REBUILD_BASE:-0}" = 1 ] || ! $BUILDAH inspect --type image "$BASE" >/dev/null 2>&1; then
	log "making $BASE with debootstrap --variant=minbase from $MIRROR"
	t0=$(date +%s)
	rootfs=$(mktemp -d /var/tmp/lp-bookworm.XXXXXX)
	debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
		{ tail -20 "$tmp/debootstrap.log" >&2; fail "debootstrap failed"; }
	# The sources of the official image: main, updates, security.
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<-EOF
		Types: deb
		URIs: $MIRROR
		Suites: bookworm bookworm-updates
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

		Types: deb
		URIs: http://deb.debian.org/debian-security
		Suites: bookworm-security
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	ctr=$($BUILDAH from scratch)
	containers="$containers $ctr"
	mnt=$($BUILDAH mount "$ctr")
	# /dev, /proc and /sys are provided by the runtime; copy them empty.
	tar -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
		tar -C "$mnt" -xpf -
	$BUILDAH umount "$ctr" >/dev/null
	$BUILDAH config --cmd /bin/bash \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
	$BUILDAH commit --quiet "$ctr" "$BASE" >/dev/null
	$BUILDAH rm "$ctr" >/dev/null
	containers=""
	log "base image made in $(($(date +%s) - t0))s"
else
	log "using $BASE from the local store"
fi

# ---- 3. build both targets (--layers: the second reuses the build stage) ----
for target in livenessprobe mock; do
	case $target in
	livenessprobe) image=$LP_IMAGE ;;
	mock) image=$MOCK_IMAGE ;;
	esac
	log "building $image (target $target)"
	t0=$(date +%s)
	$BUILDAH bud --isolation chroot --layers --pull=never --target "$target" \
		-f Dockerfile -t "$image" . >"$tmp/bud-$target.log" 2>&1 ||
		{ tail -40 "$tmp/bud-$target.log" >&2; fail "buildah bud --target $target failed"; }
	log "built $image in $(($(date +%s) - t0))s"
done

# ---- 4. run the images' binaries ----
lp_ctr=$($BUILDAH from --pull=never "$LP_IMAGE")
containers="$containers $lp_ctr"
lp_mnt=$($BUILDAH mount "$lp_ctr")
mock_ctr=$($BUILDAH from --pull=never "$MOCK_IMAGE")
containers="$containers $mock_ctr"
mock_mnt=$($BUILDAH mount "$mock_ctr")

[ -x "$lp_mnt/livenessprobe" ] || fail "no /livenessprobe in $LP_IMAGE"
[ -x "$mock_mnt/csi-mock-driver" ] || fail "no /csi-mock-driver in $MOCK_IMAGE"
entry=$($BUILDAH inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$LP_IMAGE")
[ "$entry" = "[/livenessprobe]" ] || fail "entrypoint of $LP_IMAGE is $entry"
# Inside its own root filesystem (nothing but the binary) it must still run.
version=$(chroot "$lp_mnt" /livenessprobe --version) || fail "chroot $lp_mnt /livenessprobe --version"
log "chroot /livenessprobe --version: $version"

sock=$tmp/csi.sock
"$mock_mnt/csi-mock-driver" --csi-address="$sock" --quiet >"$tmp/mock.out" 2>&1 &
mock_pid=$!
pids="$pids $mock_pid"
"$lp_mnt/livenessprobe" --csi-address="$sock" --http-endpoint="127.0.0.1:$PORT" >"$tmp/lp.out" 2>&1 &
lp_pid=$!
pids="$pids $lp_pid"

body=""
i=0
while [ $i -lt 100 ]; do
	if body=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/healthz" 2>/dev/null); then break; fi
	kill -0 "$lp_pid" 2>/dev/null || { cat "$tmp/lp.out" >&2; fail "livenessprobe exited"; }
	sleep 0.1
	i=$((i + 1))
done
if [ "$body" != "ok" ]; then
	cat "$tmp/mock.out" "$tmp/lp.out" >&2
	fail "GET /healthz answered '$body', expected 'ok'"
fi
log "GET /healthz (healthy driver): $body"

kill "$mock_pid"
wait "$mock_pid" 2>/dev/null || true
code=$(curl -sS --max-time 5 -o "$tmp/body" -w '%{http_code}' "http://127.0.0.1:$PORT/healthz") || true
if [ "$code" != 500 ] || [ "$(cat "$tmp/body")" != "context deadline exceeded" ]; then
	cat "$tmp/lp.out" >&2
	fail "GET /healthz without a driver: $code '$(cat "$tmp/body")'"
fi
log "GET /healthz (driver stopped): $code $(cat "$tmp/body")"

# ---- 5. sizes ----
lp_bytes=$(du -sb "$lp_mnt" | cut -f1)
mock_bytes=$(du -sb "$mock_mnt" | cut -f1)
$BUILDAH images --format '{{.Name}}:{{.Tag}} {{.Size}}' |
	grep -E "livenessprobe-c:$TAG|csi-mock-driver-c:$TAG|debian:bookworm" | sed 's/^/image.sh:   /'
log "$LP_IMAGE root filesystem: $lp_bytes bytes"
log "$MOCK_IMAGE root filesystem: $mock_bytes bytes"
[ "$lp_bytes" -le "$MAX_BYTES" ] || fail "$LP_IMAGE is $lp_bytes bytes, over $MAX_BYTES"
log "PASS"
