# Cross build for arm64 (aarch64) on amd64, with Debian's cross toolchain
# and the arm64 libraries dpkg installed beside the amd64 ones (multiarch):
#   scripts/install-deps.sh --arch=arm64     installs all of it
#   scripts/build-release.sh --arch=arm64    configures with this file
# The compiler uses its own arm64 C library (Debian's cross-toolchain-base)
# and finds the multiarch libraries in /usr/lib/aarch64-linux-gnu by itself.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(LP_CROSS_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${LP_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${LP_CROSS_TRIPLET}-g++)
# pkgconf's cross personality: the arm64 .pc files, never the amd64 ones.
set(PKG_CONFIG_EXECUTABLE ${LP_CROSS_TRIPLET}-pkg-config)
# libevent-dev for arm64 cannot be installed beside amd64's, so
# install-deps.sh unpacks it under LP_CROSS_ROOT (its .pc files point there).
if(DEFINED ENV{LP_CROSS_ROOT})
  set(LP_CROSS_ROOT $ENV{LP_CROSS_ROOT})
else()
  set(LP_CROSS_ROOT /opt/livenessprobe-cross)
endif()
set(ENV{PKG_CONFIG_PATH} ${LP_CROSS_ROOT}/arm64/libevent-dev/usr/lib/${LP_CROSS_TRIPLET}/pkgconfig)
# Binaries made here run under qemu (Debian's qemu-user-static), e.g. for
# a try_run or a test command.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
# Host tools (protoc-c) come from the build machine; libraries and headers
# only through the compiler's own arm64 search paths.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
