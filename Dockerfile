# Container images of livenessprobe (default target) and csi-mock-driver
# (--target mock). Both are fully static, so the runtime stages are FROM
# scratch and hold nothing but the binary. scripts/image.sh builds both
# with buildah and checks them.
#
#   buildah bud --isolation chroot -t livenessprobe-c:latest .
#   buildah bud --isolation chroot --target mock -t csi-mock-driver-c:latest .
#   docker build -t livenessprobe-c:latest .          (same, with Docker)

# ---- build: the static release build, as README "Building" describes ----
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so editing the sources does not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY . .
# Refuse a binary that is not static: a FROM scratch image has no loader.
RUN cmake -S . -B /out -DCMAKE_BUILD_TYPE=Release -DLP_STATIC=ON -DLP_TESTS=OFF \
 && cmake --build /out -j"$(nproc)" \
 && for b in livenessprobe csi-mock-driver; do \
      if readelf -l "/out/$b" | grep -q INTERP; then echo "$b is not static" >&2; exit 1; fi; \
    done \
 && /out/livenessprobe --version

# ---- mock: csi-mock-driver, for trying the sidecar and failure drills ----
FROM scratch AS mock
LABEL org.opencontainers.image.title="csi-mock-driver" \
      org.opencontainers.image.description="CSI Identity server whose answers are set by flags or a Lua script, for testing livenessprobe and deployments" \
      org.opencontainers.image.source="https://example.invalid/livenessprobe-c"
COPY --from=build /out/csi-mock-driver /csi-mock-driver
ENTRYPOINT ["/csi-mock-driver"]

# ---- livenessprobe: the default target (last stage) ----
# Runs as root like upstream's image: CSI driver sockets are root-owned.
FROM scratch AS livenessprobe
LABEL org.opencontainers.image.title="livenessprobe-c" \
      org.opencontainers.image.description="Drop-in C replacement for the Kubernetes CSI livenessprobe sidecar" \
      org.opencontainers.image.source="https://example.invalid/livenessprobe-c"
COPY --from=build /out/livenessprobe /livenessprobe
ENTRYPOINT ["/livenessprobe"]
