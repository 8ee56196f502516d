#!/usr/bin/env bash
# Everyday tools on larder: each command below runs on plain glibc, with liblarder.so preloaded
# and with liblarder_check.so preloaded (every process it starts too), and must print the same
# output with the same exit status all three ways; under check mode no process may report an
# error (leaks are not errors). The commands are the programs a user reaches for first, in
# interpreters and tools with allocators of their own above malloc: node (V8, worker threads),
# perl, tclsh, CPython (threads, multiprocessing), bash, coreutils' sort, awk, sed, grep, xz and
# zstd on two threads, gzip, bzip2, tar, jq, openssl, g++ compiling C++ (cc1plus), git, sqlite3,
# vim, gdb reading debug info, curl, and cargo building a crate (rustc, and rust-lld on
# libLLVM.so, which keeps a private copy of C++'s operator new). A tool that is not installed
# is skipped and said so.
# Usage: tests/programs/tools.sh LIB_DIR   (LIB_DIR holds liblarder.so and liblarder_check.so)
# TOOLS="node git" runs only the commands of those tools.
set -uo pipefail
# shellcheck source=sides.sh
source "$(dirname "$0")/sides.sh"
libs_from_dir "$@"
scratch=$(mktemp -d -t larder-tools.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# shellcheck source=../tally.sh
source "$(dirname "$0")/../tally.sh"
export SCRATCH=$scratch
seq 1 500000 >"$scratch/numbers.txt"

# One command a line: the tool it needs, a tab, the shell command (run by bash in $SCRATCH).
commands=$(
  cat <<'EOF'
node	node -e "let a=[];for(let i=0;i<200000;i++)a.push({x:i,s:'v'+i});const m=new Map();for(const o of a)m.set(o.s,o);console.log(m.size,JSON.stringify(a.slice(0,3)).length)"
node	node -e "const {Worker}=require('worker_threads');let n=0,t=0;for(let i=0;i<4;i++){const w=new Worker('let s=0;for(let i=0;i<1e5;i++)s+=JSON.stringify({i}).length;require(\"worker_threads\").parentPort.postMessage(s)',{eval:true});w.on('message',m=>{t+=m;if(++n==4)console.log('workers',t)})}"
perl	perl -e 'my %h; for my $i (1..300000) { $h{"k$i"} = [$i, "x" x ($i % 50)] } my $s = 0; $s += length(join ",", @{$h{$_}}) for keys %h; print "$s\n"'
tclsh	echo 'set l {}; for {set i 0} {$i < 200000} {incr i} {lappend l [string repeat x [expr {$i % 40}]]}; puts [llength $l]' | tclsh
python3	python3 -c "import json,re,collections;d=[{'k':i,'v':str(i)*3} for i in range(200000)];s=json.dumps(d);print(len(s),len(json.loads(s)),collections.Counter(re.findall(r'\d',s[:100000])).most_common(2))"
python3	python3 -c "import concurrent.futures as f;print(sum(f.ThreadPoolExecutor(8).map(lambda i: len(bytearray(i*1000)), range(2000))))"
python3	python3 -c "import multiprocessing as m; print(sum(m.Pool(3).map(abs, range(-1000,1000))))"
bash	bash -c 'x=""; for i in $(seq 1 20000); do x="$x$i"; done; echo ${#x}; declare -A h; for i in $(seq 1 20000); do h[$i]=$i; done; echo ${#h[@]}'
sort	sort -R --random-source=numbers.txt numbers.txt | sort -n | uniq | md5sum
awk	awk '{a[$1]=$1*2} END{s=0;for(k in a)s+=a[k];print s}' numbers.txt
sed	sed -e 's/1/one/g' numbers.txt | grep -c one
xz	xz -T2 -c numbers.txt | xz -d | md5sum
zstd	zstd -T2 -q -c numbers.txt | zstd -d -q | md5sum
bzip2	gzip -c numbers.txt | gzip -d | bzip2 | bzip2 -d | md5sum
tar	tar cf - -C /usr/include linux 2>/dev/null | tar tf - | wc -l
jq	seq 1 100000 | jq -s 'map(.*2) | add'
openssl	openssl dgst -sha256 numbers.txt | cut -d' ' -f2
g++	printf '#include <cstdio>\n#include <map>\n#include <string>\n#include <vector>\nint main(){std::map<std::string,std::vector<int>> m;for(int i=0;i<1000;i++)m[std::to_string(i)].push_back(i);std::printf("%%zu\\n",m.size());}\n' >t.cpp && g++ -O2 -g -o t t.cpp && ./t
git	rm -rf repo && git init -q repo && cd repo && for i in $(seq 1 200); do echo $i >f$i; done && git add . && git -c user.email=a@b -c user.name=a commit -qm x && git log --oneline | wc -l && git gc -q && git fsck 2>&1 | wc -l
sqlite3	sqlite3 :memory: "create table t(a,b); with recursive c(x) as (select 1 union all select x+1 from c where x<100000) insert into t select x, hex(x*7919) from c; create index i on t(b); select count(*), sum(length(b)) from t;"
vim	vim -es -u NONE -c 'for i in range(1,20000) | call append(0, repeat("x", i % 80)) | endfor' -c 'echo line("$")' -c 'q!' /dev/null
gdb	g++ -O0 -g -o u -x c++ - <<<'int main(){return 0;}' && gdb -batch -ex 'info functions ^main$' ./u 2>&1 | grep -c main
curl	curl -s file://$SCRATCH/numbers.txt | wc -l
cargo	rm -rf hello && cargo new -q --vcs none hello && cd hello && CARGO_TARGET_DIR=target cargo build -q --offline && ./target/debug/hello
EOF
)

ran=0
while IFS=$'\t' read -r tool command; do
  [[ -z "${TOOLS:-}" || " $TOOLS " == *" $tool "* ]] || continue
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "# skipped (no $tool): $command"
    continue
  fi
  ran=$((ran + 1))
  declare -A out=() status=()
  for side in plain preload check; do
    report=$scratch/report.$ran
    : >"$report"
    side_env "$side" "$report"
    out[$side]=$(cd "$scratch" && timeout -k 10 300 env "${env[@]}" bash -c "$command" 2>"$scratch/err.$side")
    status[$side]=$?
  done
  errors=$(grep -c '^larder-error v1' "$report")
  what="$tool: ${command:0:60}"
  if [ "${out[preload]}" != "${out[plain]}" ] || [ "${status[preload]}" != "${status[plain]}" ]; then
    fail "$what, preloaded (status ${status[preload]}, plain ${status[plain]})"
    diff <(echo "${out[plain]}") <(echo "${out[preload]}") | head -5
    head -c 1000 "$scratch/err.preload"
  elif [ "${out[check]}" != "${out[plain]}" ] || [ "${status[check]}" != "${status[plain]}" ] || [ "$errors" -ne 0 ]; then
    fail "$what, under check mode (status ${status[check]}, plain ${status[plain]}, $errors error report(s))"
    diff <(echo "${out[plain]}") <(echo "${out[check]}") | head -5
    head -c 2000 "$scratch/err.check"
  else
    pass "$what (same output and status plain, preloaded and checked)"
  fi
done <<<"$commands"
tally tools
