#!/bin/sh
# Builds csi-go-driver (main.go) into OUT_DIR with Debian's Go toolchain
# and grpc-go, in GOPATH mode: no module download, only the sources Debian's
# golang-google-grpc-dev and golang-goprotobuf-dev install in
# /usr/share/gocode. The CSI messages and the Identity service stubs are
# generated from proto/csi.proto by protoc and protoc-gen-go (its grpc
# plugin) into OUT_DIR/gopath, never committed. Go's build cache lives in
# OUT_DIR/gocache, so a rebuild after a change to main.go takes seconds.
#   tests/godriver/build.sh OUT_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ $# -ne 1 ]; then
	echo "usage: build.sh OUT_DIR" >&2
	exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
for tool in go protoc protoc-gen-go; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "godriver: $tool not found; INSTALL_TEST_DEPS=1 ./scripts/install-deps.sh installs it" >&2
		exit 1
	fi
done
pkg=$out/gopath/src/csidriver
mkdir -p "$pkg/csi"
cp "$here/main.go" "$pkg/main.go"
protoc -I"$root/proto" \
	--go_out=plugins=grpc,paths=source_relative,Mcsi.proto=csidriver/csi:"$pkg/csi" \
	"$root/proto/csi.proto"
cd "$pkg"
GO111MODULE=off GOPATH="$out/gopath:/usr/share/gocode" GOCACHE="$out/gocache" GOFLAGS="" \
	go build -o "$out/csi-go-driver" .
