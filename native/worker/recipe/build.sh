#!/usr/bin/env bash
# Builds mediasoup-worker from the worker/ sources of the mediasoup npm package against Debian 12
# system libraries, with no network access (every meson wrap is replaced by a stub subproject).
#
# Usage: build.sh WORKER_SRC_DIR
#   WORKER_SRC_DIR is a writable copy of node_modules/mediasoup/worker; the binary ends up in
#   WORKER_SRC_DIR/out/Release/mediasoup-worker.
# Needs meson >= 1.1 and ninja on PATH (native/worker/install.sh provides them).
#
# Everything in this folder (recipe/) is hashed into the cache key of the built binary: a change
# here rebuilds the worker, a change to install.sh does not.
# Adopted from the verified reference recipe (shared/reference/mediasoup-worker-offline), trimmed to
# what mediasoup >= 3.21 needs.
set -euo pipefail

SRC="${1:?usage: build.sh WORKER_SRC_DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JOBS="${C4V_BUILD_JOBS:-$(nproc)}"
cd "$SRC"

# 1. Replace every wrap by a stub subproject that exposes the variables mediasoup's meson.build
#    reads, resolved to the Debian library through pkg-config. The *_lib variables used by
#    link_whole become empty static libraries. A wrap we have no stub for is an error: silently
#    letting meson try to download it would fail later with a far less clear message.
stub() { # stub NAME < meson.build
  mkdir -p "subprojects/$1"
  echo "static int c4v_stub_${1//[^a-z0-9]/_};" > "subprojects/$1/stub.c"
  cat > "subprojects/$1/meson.build"
}
options() { # options NAME 'option(...)'...
  local d=$1; shift
  printf '%s\n' "$@" > "subprojects/$d/meson_options.txt"
}
known=" openssl libuv libsrtp3 unordered-dense flatbuffers abseil-cpp catch2 wingetopt "
for wrap in subprojects/*.wrap; do
  name="$(basename "$wrap" .wrap)"
  case "$known" in
    *" $name "*) ;;
    *) echo "build.sh: mediasoup wants subproject '$name', which this recipe has no Debian stub for" >&2; exit 3 ;;
  esac
done
rm -f subprojects/*.wrap

stub openssl <<'EOF'
project('openssl', 'c')
openssl_dep = dependency('openssl')
libcrypto_dep = dependency('libcrypto')
libssl_dep = dependency('libssl')
libcrypto_lib = static_library('stub_crypto', 'stub.c')
libssl_lib = static_library('stub_ssl', 'stub.c')
EOF

stub libuv <<'EOF'
project('libuv', 'c')
libuv_dep = dependency('libuv')
libuv = static_library('stub_uv', 'stub.c')
EOF
options libuv "option('build_tests', type: 'boolean', value: false)" \
  "option('build_benchmarks', type: 'boolean', value: false)"

# libsrtp3: mediasoup >= 3.16 uses the versatica libsrtp 3.0 API, which Debian does not ship. The
# shim header implements the parts mediasoup uses on top of the libsrtp 2.5 API.
#
# The libsrtp 2.5 underneath is Debian's own source package (C4V_LIBSRTP_SRC, fetched and unpacked
# with Debian's patches by install.sh), built here as a static library with the OpenSSL crypto
# backend. Debian's binary libsrtp2 is built with NSS, which re-creates a PK11 context for every
# packet: it made SRTP the dominant cost of forwarding (about 3x the worker CPU per consumer of
# plain RTP). OpenSSL's AES-NI code is what upstream mediasoup uses too.
: "${C4V_LIBSRTP_SRC:?C4V_LIBSRTP_SRC must point at the unpacked Debian libsrtp2 source (install.sh sets it)}"
rm -rf subprojects/libsrtp2-debian
cp -a "$C4V_LIBSRTP_SRC" subprojects/libsrtp2-debian
mkdir -p subprojects/libsrtp3/shim subprojects/libsrtp3/c4v-include/srtp2
cp "$HERE/shims/srtp3-over-srtp2.h" subprojects/libsrtp3/shim/srtp.h
# Only <srtp2/srtp.h> is exposed: the library's own include/ also has a srtp.h, which must not
# shadow the shim that mediasoup includes as <srtp.h>.
cp subprojects/libsrtp2-debian/include/srtp.h subprojects/libsrtp3/c4v-include/srtp2/srtp.h
srtp3_args=""
if grep -q srtp_policy_create src/RTC/SrtpSession.cpp; then srtp3_args="'-DMS_SRTP3_OPAQUE_POLICY'"; fi
stub libsrtp3 <<EOF
project('libsrtp3', 'c')
srtp2_proj = subproject('libsrtp2-debian', default_options: [
  'crypto-library=openssl', 'crypto-library-kdf=disabled', 'tests=disabled',
  'pcap-tests=disabled', 'doc=disabled', 'fuzzer=disabled', 'default_library=static'])
libsrtp3_dep = declare_dependency(
  include_directories: include_directories('shim', 'c4v-include'),
  compile_args: [$srtp3_args],
  link_with: srtp2_proj.get_variable('libsrtp2'),
  dependencies: dependency('libcrypto'))
libsrtp3 = static_library('stub_srtp3', 'stub.c')
EOF
options libsrtp3 "option('crypto-library', type: 'string', value: 'openssl')" \
  "option('crypto-library-kdf', type: 'feature', value: 'disabled')" \
  "option('tests', type: 'feature', value: 'disabled')"

# unordered_dense (header-only, not in Debian 12): mapped to std::unordered_map/set through a
# generated pkg-config file. Same behaviour, possibly a little slower than upstream builds.
mkdir -p c4v-shim/include/ankerl c4v-shim/pkgconfig
cp "$HERE/shims/unordered_dense.h" c4v-shim/include/ankerl/unordered_dense.h
cat > c4v-shim/pkgconfig/unordered_dense.pc <<EOF
Name: unordered_dense
Description: shim of ankerl::unordered_dense over std containers
Version: 4.8.1
Cflags: -I$PWD/c4v-shim/include
EOF
export PKG_CONFIG_PATH="$PWD/c4v-shim/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

stub abseil-cpp <<'EOF'
project('abseil-cpp', 'c')
absl_container_dep = declare_dependency(dependencies: [
  dependency('absl_flat_hash_map'), dependency('absl_flat_hash_set'),
  dependency('absl_btree'), dependency('absl_inlined_vector')])
absl_strings_dep = dependency('absl_strings')
absl_types_dep = declare_dependency(dependencies: [
  dependency('absl_optional'), dependency('absl_variant'), dependency('absl_span')])
absl_base_dep = dependency('absl_base')
absl_container_lib = static_library('stub_absl', 'stub.c')
EOF

# The worker's C++ unit tests need Catch2 v3 (Debian has 2.13); we never build them.
stub catch2 <<'EOF'
project('catch2', 'c')
catch2_dep = declare_dependency()
catch2_with_main_dep = declare_dependency()
EOF

stub flatbuffers <<'EOF'
project('flatbuffers', 'c')
flatbuffers_dep = dependency('flatbuffers')
flatbuffers_lib = static_library('stub_fb', 'stub.c')
EOF

# 2. Source patch. DtlsTransport's BIO callback tests `operationType == BIO_CB_RETURN`, but OpenSSL
#    passes `BIO_CB_RETURN | BIO_CB_CTRL`, so every BIO_ctrl() answers 1. Debian's OpenSSL is built
#    with KTLS: BIO_get_ktls_send() then reports true, OpenSSL never allocates its write buffer and
#    the worker SIGSEGVs in SSL_read() on the first DTLS ClientHello. Test the flag bit instead.
if grep -q '(operationType == BIO_CB_RETURN)' src/RTC/DtlsTransport.cpp; then
  sed -i 's/(operationType == BIO_CB_RETURN)/((operationType \& BIO_CB_RETURN) != 0)/' src/RTC/DtlsTransport.cpp
  grep -q '((operationType & BIO_CB_RETURN) != 0)' src/RTC/DtlsTransport.cpp
fi

# 3. Configure and build. FlatBuffers headers first, as upstream's tasks.py does.
meson setup out/Release --buildtype=release --wrap-mode=nodownload -Db_ndebug=true
if grep -q flatbuffers-generator fbs/meson.build 2>/dev/null; then
  meson compile -C out/Release -j "$JOBS" flatbuffers-generator
fi
ninja -C out/Release -j "$JOBS" mediasoup-worker
