#!/usr/bin/env bash
# Shows the progress of a build whose output arrives on stdin, and keeps the full output in LOG.
#
#   some-build 2>&1 | progress.sh LOG [PREFIX]
#
# Ninja's "[n/N] ..." lines become progress: on a terminal (stderr is a TTY and CI is not on) one
# line that updates in place; otherwise (CI=true, a log file, a pipe) one line per step. Meson's
# configure step and the libsrtp part of the build are named as they start. Always exits 0: the
# build's own status is the pipeline's (set -o pipefail in the caller).
set -uo pipefail
LOG="${1:?usage: progress.sh LOG [PREFIX]}"
PREFIX="${2:-c4v worker install}"
: > "$LOG"

is_on() { case "$(printf '%s' "${1:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')" in on|true|1|yes) return 0 ;; *) return 1 ;; esac; }
bar=0
if [ -t 2 ] && ! is_on "${CI:-}"; then bar=1; fi
width="${COLUMNS:-$(tput cols 2>/dev/null || echo 100)}"

say() { # a whole line (ends an open progress line first)
  if [ "$bar" = 1 ] && [ "$open" = 1 ]; then printf '\n' >&2; open=0; fi
  printf '%s: %s\n' "$PREFIX" "$*" >&2
}
open=0
run=0; last_total=0; srtp_named=0
while IFS= read -r line || [ -n "$line" ]; do
  printf '%s\n' "$line" >> "$LOG"
  case "$line" in
    "The Meson build system"*) say "configuring the build (meson setup)" ;;
    "["[0-9]*/[0-9]*"]"*)
      step="${line#[}"; step="${step%%]*}"
      n="${step%/*}"; total="${step#*/}"
      case "$n$total" in *[!0-9]*) continue ;; esac
      [ "$total" -gt 0 ] || continue
      if [ "$total" != "$last_total" ]; then
        run=$((run + 1)); last_total="$total"
        say "ninja run $run: $total steps"
      fi
      what="${line#*] }"
      # "Compiling C++ object foo.p/../src/RTC/Transport.cpp.o" -> "Compiling C++ object .../Transport.cpp.o"
      if [[ "$what" == */* ]]; then short="${what%% *} ${what##*/}"; else short="$what"; fi
      if [ "$srtp_named" = 0 ] && [[ "$what" == *libsrtp2-debian* ]]; then
        srtp_named=1
        say "libsrtp: compiling Debian's libsrtp2 on OpenSSL (static)"
      fi
      pct=$((n * 100 / total))
      if [ "$bar" = 1 ]; then
        text="$PREFIX: [$n/$total] $pct% $short"
        printf '\r\033[K%s' "${text:0:$((width - 1))}" >&2
        open=1
      else
        printf '%s: [%d/%d] %d%% %s\n' "$PREFIX" "$n" "$total" "$pct" "$short" >&2
      fi
      ;;
  esac
done
if [ "$bar" = 1 ] && [ "$open" = 1 ]; then printf '\n' >&2; fi
exit 0
