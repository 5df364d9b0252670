#!/usr/bin/env bash
# Ensures a mediasoup-worker binary built offline for the installed mediasoup version exists in the
# cache, building it when missing. Prints the binary's path on stdout; progress goes to stderr.
#
#   native/worker/install.sh            build if needed, print the path
#   native/worker/install.sh --path     print the path the binary has (or would have), build nothing
#
# Cache: $C4V_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/c4v-media)
#        /mediasoup-worker/<mediasoup version>-<first 16 hex of sha256 over recipe/>/mediasoup-worker
# lib/media/workerBinary.ts computes the same path; test/workerBinary.test.ts checks they agree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

die() { echo "c4v worker install: $*" >&2; exit 1; }
log() { echo "c4v worker install: $*" >&2; }

# mediasoup is found the way Node resolves it from this package: node_modules/mediasoup here (a
# clone of this repository) or in a folder above (a consumer's install, where npm hoists it next
# to node_modules/c4v-media).
MS_DIR=""
d="$ROOT"
while :; do
  if [ -f "$d/node_modules/mediasoup/package.json" ]; then MS_DIR="$d/node_modules/mediasoup"; break; fi
  [ "$d" != / ] || break
  d="$(dirname "$d")"
done
[ -n "$MS_DIR" ] || die "mediasoup is not installed in or above $ROOT; run 'npm ci' (or 'npm install') first"
VERSION="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$MS_DIR/package.json" | head -n1)"
# The recipe hash: every file under recipe/, sorted by path relative to recipe/, each contributing
# "<relative path>\0<content>". Keep in sync with recipeHash() in lib/media/workerBinary.ts.
recipe_hash() {
  (cd "$HERE/recipe" && find . -type f | LC_ALL=C sort | while read -r f; do
    printf '%s\0' "${f#./}"; cat "$f"; done) | sha256sum | cut -c1-16
}
CACHE="${C4V_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/c4v-media}"
KEY="$VERSION-$(recipe_hash)"
DEST="$CACHE/mediasoup-worker/$KEY"
BIN="$DEST/mediasoup-worker"

if [ "${1:-}" = "--path" ]; then echo "$BIN"; exit 0; fi
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

mkdir -p "$CACHE/mediasoup-worker"
# Two installs at once (a test run and the demo, say) must not build twice or see half a binary.
exec 9>"$CACHE/mediasoup-worker/.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

# 1. Debian packages (scripts/setup.sh has installed them already; a consumer's
#    `c4v-media worker install` gets them here).
log "[1/4] Debian packages"
bash "$HERE/debian-packages.sh" install worker ||
  die "building mediasoup-worker needs the Debian packages above; install them, then run this again (or point MEDIASOUP_WORKER_BIN at a worker you built)"

# 2. meson >= 1.1 and ninja (Debian 12 ships meson 1.0.1, which mediasoup rejects) from the pip
#    index in a venv kept in the cache.
VENV="$CACHE/build-venv"
if [ ! -x "$VENV/bin/meson" ] || [ ! -x "$VENV/bin/ninja" ]; then
  log "[2/4] creating a Python venv with meson and ninja in $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
  "$VENV/bin/pip" install -q --retries 0 'meson>=1.1' ninja ||
    die "pip could not install meson>=1.1 and ninja; the pip index configured on this machine must provide them"
fi
export PATH="$VENV/bin:$PATH"

# 3. Debian's libsrtp2 source package (the version pinned in recipe/), unpacked with Debian's
#    patches: recipe/build.sh builds it with the OpenSSL backend (see there for why). apt runs with
#    a private source list and lists folder in the cache, so the system's apt configuration is
#    left as it is; the mirror is the one the system uses for its binary packages.
SRTP_VERSION="$(tr -d '[:space:]' < "$HERE/recipe/libsrtp2-debian-version")"
SRTP_SRC="$CACHE/src/libsrtp2_$SRTP_VERSION/source"
if [ ! -f "$SRTP_SRC/.c4v-complete" ]; then
  log "[3/4] libsrtp: fetching Debian's libsrtp2 $SRTP_VERSION source package"
  APTDIR="$CACHE/apt"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/parts"
  mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $2 ~ /^http/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
  suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$APTDIR/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/parts"
    -o "Dir::State::Lists=$APTDIR/lists" -o "APT::Sandbox::User=root" -q)
  apt-get "${apt_opts[@]}" update >/dev/null || die "apt-get update of the deb-src list ($mirror $suite) failed"
  rm -rf "$CACHE/src/libsrtp2_$SRTP_VERSION"
  mkdir -p "$CACHE/src/libsrtp2_$SRTP_VERSION"
  (cd "$CACHE/src/libsrtp2_$SRTP_VERSION" && apt-get "${apt_opts[@]}" source --download-only "libsrtp2=$SRTP_VERSION" >/dev/null) ||
    die "could not download Debian's libsrtp2=$SRTP_VERSION source package from $mirror; if the archive has a newer one, update native/worker/recipe/libsrtp2-debian-version"
  # dpkg-source checks the files against the .dsc (whose hashes apt checked against the signed
  # Sources index) and applies Debian's patches. It cannot check the maintainer's own signature on
  # the .dsc without the debian-keyring package and warns; the archive signature is what counts.
  (cd "$CACHE/src/libsrtp2_$SRTP_VERSION" && dpkg-source -x libsrtp2_*.dsc source >/dev/null) ||
    die "dpkg-source could not unpack libsrtp2 $SRTP_VERSION"
  touch "$SRTP_SRC/.c4v-complete"
fi
export C4V_LIBSRTP_SRC="$SRTP_SRC"

# 4. Build from a copy of the installed package's worker sources (never the network).
WORK="$(mktemp -d "$CACHE/mediasoup-worker/.build-$KEY.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -a "$MS_DIR/worker" "$WORK/worker"
rm -rf "$WORK/worker/out" "$WORK/worker/prebuild"
log "[4/4] building mediasoup-worker $VERSION from sources (recipe $KEY); this takes about 5 minutes on 2 cores"
t0=$(date +%s)
if ! bash "$HERE/recipe/build.sh" "$WORK/worker" 2>&1 | bash "$HERE/progress.sh" "$WORK/build.log"; then
  tail -n 40 "$WORK/build.log" >&2
  cp "$WORK/build.log" "$CACHE/mediasoup-worker/last-failed-build.log"
  die "the worker build failed; full log: $CACHE/mediasoup-worker/last-failed-build.log"
fi
t1=$(date +%s)

# 5. Publish atomically: a half-copied binary must never be visible under the final name.
mkdir -p "$DEST"
install -m 0755 "$WORK/worker/out/Release/mediasoup-worker" "$DEST/.mediasoup-worker.tmp"
mv -f "$DEST/.mediasoup-worker.tmp" "$BIN"
printf '{"mediasoup":"%s","key":"%s","buildSeconds":%d,"builtAt":"%s"}\n' \
  "$VERSION" "$KEY" "$((t1 - t0))" "$(date -u +%FT%TZ)" > "$DEST/build.json"
log "built in $((t1 - t0)) s: $BIN ($(stat -c %s "$BIN") bytes)"
echo "$BIN"
