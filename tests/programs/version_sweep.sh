#!/usr/bin/env bash
# Every ELF program in a directory (default /usr/bin) run as `PROGRAM --version`, with stdin
# from /dev/null and a 5-second limit: plain, with liblarder.so preloaded, and under check mode
# (liblarder_check.so). Each must print the same output with the same status all three ways,
# and no checked process may report an error. Start-up paths are where a preloaded allocator
# meets code no test suite reaches: static constructors, argument parsers, locale and plugin
# loading. Programs that would act on the system or wait for input are skipped by name. Not in
# scripts/test.sh: what /usr/bin holds differs between machines, and a few programs print
# timestamps or a pid (their differences are listed; read them).
#
# Usage: tests/programs/version_sweep.sh LIB_DIR [DIR]
set -uo pipefail
# shellcheck source=sides.sh
source "$(dirname "$0")/sides.sh"
USAGE_MORE="[DIR]" libs_from_dir "$@"
dir=${2:-/usr/bin}
skip='^(reboot|halt|poweroff|shutdown|kill|pkill|killall|init|telinit|systemctl|runlevel|login|su|sudo|passwd|chsh|chfn|newgrp|sg|xdg-.*|x-.*|dbus-.*|yes|top|htop|less|more|vi|vim|view|ex|nano|script|watch|sleep|tail|cat|tee|dd|head|nc|ncat|socat|ssh|sshd|scp|sftp|telnet|ftp|.*-config|time|timeout|nohup|env|setsid|setpriv|unshare|nsenter|chroot|flock|expect|tclsh.*|wish.*|node|nodejs|perl.*|sh|bash|dash|rbash|zsh|csh|tcsh|busybox|gdb.*|valgrind.*|strace|ltrace|perf|man|info|pager|sensible-.*|editor|select-editor|update-alternatives|pg_.*|mysql.*)$'
scratch=$(mktemp -d -t larder-sweep.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
ran=0 differing=0
for program in "$dir"/*; do
  name=$(basename "$program")
  [[ "$name" =~ $skip ]] && continue
  [ -f "$program" ] && [ -x "$program" ] && head -c 4 "$program" | grep -q ELF || continue
  ran=$((ran + 1))
  : >"$scratch/report"
  declare -A out=() status=()
  for side in plain preload check; do
    side_env "$side" "$scratch/report"
    (cd "$scratch" && env "${env[@]}" timeout -k 2 5 "$program" --version </dev/null >"$scratch/$side.out" 2>&1)
    status[$side]=$?
    out[$side]=$(head -c 100000 "$scratch/$side.out" | md5sum)
  done
  errors=$(grep -c '^larder-error v1' "$scratch/report")
  if [ "${out[preload]}" != "${out[plain]}" ] || [ "${out[check]}" != "${out[plain]}" ] ||
    [ "${status[preload]}" != "${status[plain]}" ] || [ "${status[check]}" != "${status[plain]}" ] ||
    [ "$errors" -ne 0 ]; then
    differing=$((differing + 1))
    echo "differs: $name (status plain ${status[plain]}, preloaded ${status[preload]}, check ${status[check]}; $errors error reports)"
    grep '^larder-error v1' "$scratch/report" | head -2 | cut -c1-300
  fi
done
echo "version sweep: $ran programs, $differing differing"
