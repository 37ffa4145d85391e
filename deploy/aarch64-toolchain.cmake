# Cross-compiling relais for aarch64 (Raspberry Pi 4/5) on a Debian x86-64
# machine: Debian's cross gcc, and the arm64 -dev packages installed beside
# the native ones (dpkg --add-architecture arm64; deploy/install-deps.sh).
# Test binaries run through qemu-user (deploy/test-arm.sh).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# CZMQ's arm64 development files are in a folder of their own: its package
# cannot be installed beside the native one (deploy/install-deps.sh).
set(RELAIS_ARM64_CZMQ /opt/relais/arm64-czmq)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu ${RELAIS_ARM64_CZMQ})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# pkg-config must see the arm64 .pc files, never the native ones.
set(ENV{PKG_CONFIG_LIBDIR}
    /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig:${RELAIS_ARM64_CZMQ}/usr/lib/aarch64-linux-gnu/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# No -L /usr/aarch64-linux-gnu: that prefix holds the cross toolchain's
# ld.so, but the arm64 libraries the tests link (multiarch, from the archive)
# pull in the archive's libc6:arm64, a different build of glibc. ld.so from
# one build with libc.so.6 from another spins forever in the first
# pthread_create. Without a prefix the binaries use the multiarch ld.so and
# libc, which match.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
