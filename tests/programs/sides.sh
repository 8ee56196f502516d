# The three ways the tool sweeps run a program: plain glibc, liblarder.so preloaded, and check
# mode (liblarder_check.so preloaded, its records in a report file), for tools.sh and
# version_sweep.sh. Source it from a script whose first argument is LIB_DIR.

# Sets lib and check_lib from LIB_DIR, or prints the usage and exits 2.
libs_from_dir() {
  if [ $# -lt 1 ] || [ ! -f "$1/liblarder.so" ] || [ ! -f "$1/liblarder_check.so" ]; then
    echo "usage: $0 LIB_DIR${USAGE_MORE:+ $USAGE_MORE}   (LIB_DIR holds liblarder.so and liblarder_check.so)" >&2
    exit 2
  fi
  lib=$(realpath "$1/liblarder.so")
  check_lib=$(realpath "$1/liblarder_check.so")
}

# Sets env to the environment of SIDE (plain, preload or check; check writes to REPORT).
side_env() {
  case $1 in
    plain) env=() ;;
    preload) env=(LD_PRELOAD="$lib") ;;
    check) env=(LD_PRELOAD="$check_lib" LARDER_REPORT_FILE="$2") ;;
  esac
}
