# The real-program workloads, shared by compare.sh (same output with and without a
# preloaded allocator) and bench.sh (timed under several allocators). Source it;
# each workload_NAME takes an empty scratch directory and prints, on stdout, the
# output that must not depend on the allocator. Only the programs under test run
# with $PRELOAD_LIB preloaded: the harness's own helpers run on plain glibc.

programs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$programs_dir/../.." && pwd)

# Where tests/c/build.sh put the C and C++ programs.
: "${C_BUILD_DIR:=$repo_root/target/ctests}"

# Debian's CPython with its regression suite (libpython3.11-testsuite): the
# pyenv python on these machines has a site hook that imports threading at
# start-up, which makes one of test_threading's checks fail without any preload.
: "${PYTHON:=/usr/bin/python3.11}"
# `malloc` sends every Python object to the C allocator instead of pymalloc's
# arenas: the strongest test of a malloc, and what bench.sh measures too.
: "${PYTHON_MALLOC:=malloc}"
PYTHON_TEST_MODULES="test_dict test_list test_set test_unicode test_json test_re test_threading
  test_subprocess test_gc test_weakref test_mmap test_bytes test_deque test_heapq test_itertools test_sort"
: "${GIT:=/usr/bin/git}"
: "${GIT_FILES:=3000}"
: "${SQLITE:=/usr/bin/sqlite3}"

# PostgreSQL's server, from Debian's postgresql package (the newest major version installed).
: "${POSTGRES_BIN:=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"

WORKLOADS="stress cxx sqlite git python postgres"

# No single program of a workload may run longer than this (a hang in an
# allocator must fail the test, not stall CI).
: "${PROGRAM_TIMEOUT:=600}"

# Runs a program under test, with the allocator preloaded when one is given.
preloaded() {
  if [ -n "${PRELOAD_LIB:-}" ]; then
    LD_PRELOAD="$PRELOAD_LIB${LD_PRELOAD:+:$LD_PRELOAD}" timeout -k 10 "$PROGRAM_TIMEOUT" "$@"
  else
    timeout -k 10 "$PROGRAM_TIMEOUT" "$@"
  fi
}

workload_stress() {
  preloaded "$C_BUILD_DIR/stress_threads" 2>&1
  echo "exit $?"
}

workload_cxx() {
  preloaded "$C_BUILD_DIR/cxx_workload" 2>&1
  echo "exit $?"
}

# sqlite3 builds a 200,000-row table with indexes and runs aggregate queries.
workload_sqlite() {
  local dir=$1
  preloaded "$SQLITE" -bail "$dir/orders.db" <"$programs_dir/sqlite_workload.sql" 2>&1
  echo "exit $?"
}

# git: init, add and commit thousands of generated files, then 30 commits that
# touch a slice of them, an aggressive gc, log, fsck and grep. Identity and dates
# are fixed, so every hash is the same from run to run.
workload_git() (
  local dir=$1 files=$GIT_FILES
  set -e
  export HOME=$dir GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
    GIT_AUTHOR_NAME=Larder GIT_AUTHOR_EMAIL=larder@example.invalid \
    GIT_COMMITTER_NAME=Larder GIT_COMMITTER_EMAIL=larder@example.invalid \
    GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
  local repo=$dir/repo
  preloaded "$GIT" init -q -b main "$repo"
  cd "$repo"
  "$PYTHON" - "$files" <<'PY'
import os, sys
n = int(sys.argv[1])
for i in range(n):
    d = f"src/mod{i % 40:02d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/file{i:05d}.txt", "w") as f:
        for line in range(20 + i % 50):
            f.write(f"file {i} line {line} value {(i * 7919 + line * 104729) % 1000003}\n")
PY
  preloaded "$GIT" add -A
  preloaded "$GIT" commit -q -m "initial: $files generated files"
  local c i
  for c in $(seq 1 30); do
    for i in $(seq "$c" 97 "$files"); do
      echo "commit $c touched $i" >>"$(printf 'src/mod%02d/file%05d.txt' $((i % 40)) "$i")"
    done
    GIT_COMMITTER_DATE="2024-01-01T00:$(printf %02d "$c"):00Z" preloaded "$GIT" commit -q -a -m "change $c"
  done
  preloaded "$GIT" gc -q --aggressive
  echo "log --stat digest: $(preloaded "$GIT" log --stat --format='%H %s' | md5sum)"
  preloaded "$GIT" log -3 --format='%H %s'
  preloaded "$GIT" count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
  preloaded "$GIT" fsck --strict 2>&1
  echo "objects: $(preloaded "$GIT" rev-list --all --objects | wc -l)"
  preloaded "$GIT" grep -c 'commit 17 touched' >"$dir/grep.out"
  echo "files with commit 17: $(wc -l <"$dir/grep.out"), first: $(head -1 "$dir/grep.out")"
  echo "exit 0"
)

# PostgreSQL, a server of many processes (the postmaster forks a backend per connection and
# its background workers; they share memory): initdb, the server started preloaded (every
# process it forks inherits the preload), pgbench's tables and 1,200 transactions from 4
# clients with a fixed seed (the sums are the same whatever the interleaving), then queries
# that sort, hash, aggregate and build indexes, and a clean stop. The server refuses to run
# as root: as root it runs as `nobody`, so the scratch directory and LARDER_REPORT_FILE must
# be reachable by it (check.sh and compare.sh make them so). Skipped, with a line saying so,
# where PostgreSQL is not installed.
workload_postgres() (
  local dir=$1 bin=$POSTGRES_BIN
  if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
    echo "postgres skipped: no /usr/lib/postgresql/*/bin/postgres"
    echo "exit 0"
    return
  fi
  set -e
  as_user=()
  if [ "$(id -u)" = 0 ]; then
    chown nobody "$dir"
    as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  fi
  pg() { preloaded "${as_user[@]}" env HOME="$dir" "$@"; }
  sql() { pg psql -h "$dir" -U postgres -At -v ON_ERROR_STOP=1 -c "$1" postgres 2>&1; }
  pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1
  pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-k $dir -c listen_addresses='' -c shared_buffers=32MB" start >/dev/null
  trap 'pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1' EXIT
  pg "$bin/pgbench" -q -h "$dir" -U postgres -i -s 2 postgres >"$dir/pgbench-init.log" 2>&1
  pg "$bin/pgbench" -h "$dir" -U postgres -c 4 -j 2 -t 300 --random-seed=7 postgres 2>&1 |
    grep -E '^number of transactions actually processed'
  sql "select count(*), sum(abalance) from pgbench_accounts;
    select (select sum(tbalance) from pgbench_tellers), (select sum(bbalance) from pgbench_branches);
    select count(*) from pgbench_history"
  sql "create table t as select g, md5(g::text) m from generate_series(1, 200000) g;
    create index on t (m); select count(distinct m) from t;
    select sum(length(s)) from (select string_agg(m, ',' order by m) s from t group by g % 100) a;
    select count(*) from t a join t b on a.m = b.m where a.g % 7 = 0;
    with recursive r(n, x) as (select 1, ''::text union all select n + 1, x || n from r where n < 2000)
      select max(length(x)) from r;
    select md5(string_agg(js::text, '')) from (select json_agg(json_build_object('g', g, 'm', m)
      order by g) js from t where g < 5000) j"
  pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  trap - EXIT
  if grep -E 'PANIC|terminated by signal|was terminated' "$dir/server.log"; then
    echo "server log: a process died"
  fi
  echo "exit 0"
)

# CPython's own regression tests for the modules the issue names, compared by
# the outcome of every test case (the log itself has timings in it).
workload_python() {
  local dir=$1 rc=0
  # shellcheck disable=SC2086 # the module list is meant to split
  PYTHONMALLOC=$PYTHON_MALLOC preloaded "$PYTHON" -m test --junit-xml "$dir/junit.xml" \
    $PYTHON_TEST_MODULES >"$dir/python.log" 2>&1 || rc=$?
  "$PYTHON" - "$dir/junit.xml" <<'PY' || echo "junit report unreadable"
import sys
import xml.etree.ElementTree as ET
cases = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    outcome = ",".join(child.tag for child in case) or "passed"
    cases.append(f"{case.get('name')} {case.get('result')} {outcome}")
print(f"{len(cases)} test cases")
print("\n".join(sorted(cases)))
PY
  echo "exit $rc"
}

# The same tests with CPython's own small-object allocator (pymalloc) in front
# of malloc, as Python normally runs: only blocks above 512 bytes reach malloc.
workload_python_pymalloc() {
  PYTHON_MALLOC=pymalloc workload_python "$@"
}
