# Container images of livenessprobe (default target) and csi-mock-driver
# (--target mock), for linux/amd64 and linux/arm64. Both binaries are fully
# static, so the runtime stages are FROM scratch and hold the binary and its
# SBOM (/sbom.spdx.json, SPDX 2.3). The build stage always runs on the
# build machine's platform and cross-compiles for the target's, so building
# the arm64 image needs no emulation. scripts/image.sh builds and checks
# both architectures and joins them in a manifest list.
#
#   buildah bud --isolation chroot --platform linux/arm64 -t livenessprobe-c:latest-arm64 .
#   buildah bud --isolation chroot --target mock -t csi-mock-driver-c:latest .
#   docker buildx build --platform linux/amd64,linux/arm64 -t livenessprobe-c:latest .

# ---- build: the static release build for TARGETARCH (README "Building") ----
FROM --platform=$BUILDPLATFORM debian:bookworm AS build
# Set by the builder from --platform; amd64 where a builder sets none.
ARG TARGETARCH
WORKDIR /src
# Dependencies first, so editing the sources does not reinstall them; the
# cross toolchain too when TARGETARCH is not the build machine's.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh --arch="${TARGETARCH:-amd64}" \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY . .
# build-release.sh refuses a binary that is not static (a FROM scratch
# image has no loader) or not for TARGETARCH, and writes the SBOMs.
RUN ./scripts/build-release.sh --arch="${TARGETARCH:-amd64}" /out

# ---- mock: csi-mock-driver, for trying the sidecar and failure drills ----
FROM scratch AS mock
LABEL org.opencontainers.image.title="csi-mock-driver" \
      org.opencontainers.image.description="CSI Identity server whose answers are set by flags or a Lua script, for testing livenessprobe and deployments" \
      org.opencontainers.image.source="https://example.invalid/livenessprobe-c"
COPY --from=build /out/csi-mock-driver /csi-mock-driver
COPY --from=build /out/csi-mock-driver.spdx.json /sbom.spdx.json
ENTRYPOINT ["/csi-mock-driver"]

# ---- livenessprobe: the default target (last stage) ----
# Runs as root like upstream's image: CSI driver sockets are root-owned.
FROM scratch AS livenessprobe
LABEL org.opencontainers.image.title="livenessprobe-c" \
      org.opencontainers.image.description="Drop-in C replacement for the Kubernetes CSI livenessprobe sidecar" \
      org.opencontainers.image.source="https://example.invalid/livenessprobe-c"
COPY --from=build /out/livenessprobe /livenessprobe
COPY --from=build /out/livenessprobe.spdx.json /sbom.spdx.json
ENTRYPOINT ["/livenessprobe"]
