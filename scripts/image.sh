#!/bin/sh
# Builds the container images from the Dockerfile with buildah, for each
# architecture, and checks them, without a Docker daemon or a registry:
#   1. installs buildah, debootstrap, curl, file, python3 and
#      qemu-user-static from Debian if missing;
#   2. makes the base image debian:bookworm locally (debootstrap minbase)
#      unless it is already in buildah's store;
#   3. builds livenessprobe-c:TAG-ARCH (default target) and
#      csi-mock-driver-c:TAG-ARCH (--target mock) for each ARCH; the build
#      stage runs here and cross-compiles, so nothing is emulated;
#   4. joins each image's architectures in the manifest list
#      livenessprobe-c:TAG (csi-mock-driver-c:TAG) and checks what it lists;
#   5. for each ARCH: the image's OS/architecture and entrypoint, that it
#      holds only the static binary for ARCH and /sbom.spdx.json describing
#      it, then runs the images' csi-mock-driver and livenessprobe (static:
#      they run on the host as they are, arm64 ones under
#      qemu-aarch64-static) and checks GET /healthz answers 200 "ok", then
#      500 "context deadline exceeded" once the driver stops
#      (tests/release/healthz_exchange.sh); fails if an image's root
#      filesystem exceeds 8 MB, and prints each one's size.
# Cleans up its containers, mounts and processes; exits non-zero on any
# failure. Needs root (buildah with vfs storage, debootstrap, mount).
#
# Environment: ARCHES (default "amd64 arm64"), MIRROR (Debian mirror for
# debootstrap, default http://deb.debian.org/debian), PORT (default 19809),
# IMAGE_TAG (default latest), REBUILD_BASE=1 remakes debian:bookworm.
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
ARCHES=${ARCHES:-amd64 arm64}
BUILDAH="buildah --storage-driver vfs"
for arch in $ARCHES; do
	case $arch in
	amd64 | arm64) ;;
	*)
		echo "image.sh: unsupported architecture '$arch' in ARCHES (supported: amd64 arm64)" >&2
		exit 2
		;;
	esac
done

log() { echo "image.sh: $*"; }
qemu_for() {
	case $1 in
	amd64) echo qemu-x86_64-static ;;
	arm64) echo qemu-aarch64-static ;;
	esac
}
fail() {
	echo "image.sh: FAIL: $*" >&2
	exit 1
}

# ---- cleanup: everything below registers what it creates here ----
containers=""
tmp=$(mktemp -d /tmp/lp-image.XXXXXX)
rootfs=""
cleanup() {
	rc=$?
	set +e
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
command -v file >/dev/null 2>&1 || want="$want file"
command -v python3 >/dev/null 2>&1 || want="$want python3"
for arch in $ARCHES; do
	emulator=$(qemu_for "$arch")
	[ -z "$emulator" ] || [ "$arch" = "$(dpkg --print-architecture)" ] ||
		command -v "$emulator" >/dev/null 2>&1 || want="$want qemu-user-static"
done
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

# ---- 3. build both targets for each architecture ----
# --layers: the second target of an architecture reuses its build stage.
# The build stage runs on this machine (--platform=$BUILDPLATFORM in the
# Dockerfile) and cross-compiles, so no RUN is emulated.
for arch in $ARCHES; do
	for target in livenessprobe mock; do
		case $target in
		livenessprobe) image=$LP_IMAGE-$arch ;;
		mock) image=$MOCK_IMAGE-$arch ;;
		esac
		log "building $image (target $target, linux/$arch)"
		t0=$(date +%s)
		# Buildah 1.28 sets TARGETARCH from --platform but not BUILDPLATFORM.
		$BUILDAH bud --isolation chroot --layers --pull=never --platform "linux/$arch" \
			--build-arg BUILDPLATFORM="linux/$(dpkg --print-architecture)" \
			--target "$target" -f Dockerfile -t "$image" . >"$tmp/bud-$target-$arch.log" 2>&1 ||
			{ tail -40 "$tmp/bud-$target-$arch.log" >&2; fail "buildah bud --target $target --platform linux/$arch failed"; }
		log "built $image in $(($(date +%s) - t0))s"
	done
done

# ---- 4. one manifest list per image, naming each architecture's image ----
for image in $LP_IMAGE $MOCK_IMAGE; do
	$BUILDAH manifest rm "$image" >/dev/null 2>&1 || $BUILDAH rmi "$image" >/dev/null 2>&1 || true
	$BUILDAH manifest create "$image" >/dev/null
	for arch in $ARCHES; do
		$BUILDAH manifest add --os linux --arch "$arch" "$image" "containers-storage:$image-$arch" >/dev/null
	done
	listed=$($BUILDAH manifest inspect "$image" |
		python3 -c 'import json,sys; print(" ".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"])))')
	want=$(for arch in $ARCHES; do echo "linux/$arch"; done | sort | tr '\n' ' ' | sed 's/ $//')
	[ "$listed" = "$want" ] || fail "manifest list $image names '$listed', expected '$want'"
	log "manifest list $image: $listed"
done

# ---- 5. each architecture's images: what they hold, and running them ----
# The SBOM in the image must describe the binary beside it.
sbom_describes() { # sbom, binary
	python3 - "$1" "$2" <<-'PY'
		import hashlib, json, sys
		doc = json.load(open(sys.argv[1]))
		main = next(r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES")
		sums = next(p["checksums"] for p in doc["packages"] if p["SPDXID"] == main)
		want = hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
		sys.exit(0 if {"algorithm": "SHA256", "checksumValue": want} in sums else 1)
	PY
}
for arch in $ARCHES; do
	emulator=""
	[ "$arch" = "$(dpkg --print-architecture)" ] || emulator=$(qemu_for "$arch")
	# --arch: a container of another architecture's image, on purpose.
	lp_ctr=$($BUILDAH from --pull=never --arch "$arch" "$LP_IMAGE-$arch")
	containers="$containers $lp_ctr"
	lp_mnt=$($BUILDAH mount "$lp_ctr")
	mock_ctr=$($BUILDAH from --pull=never --arch "$arch" "$MOCK_IMAGE-$arch")
	containers="$containers $mock_ctr"
	mock_mnt=$($BUILDAH mount "$mock_ctr")

	for pair in "$LP_IMAGE-$arch:$lp_mnt:livenessprobe" "$MOCK_IMAGE-$arch:$mock_mnt:csi-mock-driver"; do
		image=${pair%%:/*}
		rest=${pair#*:/}
		mnt=/${rest%:*}
		bin=${rest##*:}
		got=$($BUILDAH inspect --type image --format '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}' "$image")
		[ "$got" = "linux/$arch" ] || fail "$image is for $got, not linux/$arch"
		entry=$($BUILDAH inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$image")
		[ "$entry" = "[/$bin]" ] || fail "entrypoint of $image is $entry"
		./scripts/check-static.sh "$mnt/$bin" "$arch" >/dev/null || fail "$image: /$bin"
		[ -f "$mnt/sbom.spdx.json" ] || fail "no /sbom.spdx.json in $image"
		sbom_describes "$mnt/sbom.spdx.json" "$mnt/$bin" || fail "$image: /sbom.spdx.json does not describe /$bin"
		files=$(cd "$mnt" && find . -mindepth 1 -not -type d | sort | tr '\n' ' ')
		[ "$files" = "./$bin ./sbom.spdx.json " ] || fail "$image holds more than /$bin and its SBOM: $files"
		# shellcheck disable=SC2086 # emulator is a command word or nothing
		version=$($emulator "$mnt/$bin" --version) || fail "$image: /$bin --version"
		log "$image: linux/$arch, /$bin ($version) and /sbom.spdx.json"
	done
	# Inside its own root filesystem (nothing but the binary) it must still run.
	if [ -z "$emulator" ]; then
		chroot "$lp_mnt" /livenessprobe --version >/dev/null || fail "chroot $lp_mnt /livenessprobe --version"
	fi
	PORT=$PORT tests/release/healthz_exchange.sh "$lp_mnt/livenessprobe" "$mock_mnt/csi-mock-driver" $emulator |
		sed "s/^healthz_exchange:/image.sh: linux\/$arch:/" || fail "the /healthz exchange of the linux/$arch images"

	lp_bytes=$(du -sb "$lp_mnt" | cut -f1)
	mock_bytes=$(du -sb "$mock_mnt" | cut -f1)
	log "$LP_IMAGE-$arch root filesystem: $lp_bytes bytes; $MOCK_IMAGE-$arch: $mock_bytes bytes"
	[ "$lp_bytes" -le "$MAX_BYTES" ] || fail "$LP_IMAGE-$arch is $lp_bytes bytes, over $MAX_BYTES"
done

log "PASS"
