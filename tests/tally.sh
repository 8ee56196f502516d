# Test results counted and printed in TAP style, for the shell test scripts (tests/c/run.sh,
# tests/programs/compare.sh). Source it; then `pass DESCRIPTION` or `fail DESCRIPTION` per test
# (a failing test prints its evidence after), and `tally NAME` last, which fails if any did.
passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok - $*"
}
fail() {
  failed=$((failed + 1))
  echo "not ok - $*"
}
tally() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
