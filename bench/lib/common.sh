# bench/lib/common.sh: helpers shared by bench/tls, bench/tunnel and bench/policy-cost.
#
# The method is the one of bench/http-proxy and /work/shared/reference/peer-baseline.md: the load generator on
# CPU 0, every server (upstreams, warren, peers, agents) on CPU 1, so a number is "everything on the
# server side sharing one core"; before every run wait (bounded) for a quiet machine; during every run
# count the CPU time of processes that are not ours ("foreign %") and repeat a run that was disturbed;
# report the median of RUNS runs.
#
# Usage (in a bash script with `set -euo pipefail`):
#   BENCH=tls; source "$ROOT/bench/lib/common.sh"; bench_init
#   start NAME CMD...            start CMD on the server core, log in $WORK/NAME.log, pid in PID_NAME
#   wait_port NAME PORT          until 127.0.0.1:PORT accepts (or die)
#   bench_run KEY TOOL CMD...    one accepted measurement: wait_quiet, run CMD on the load core, parse
#                                TOOL's output (wrk | hey | curl), repeat if disturbed; appends to RES[KEY]
#   median KEY                   sets M_* from the median run of KEY
# Environment: DURATION RUNS CONNS WARMUP QUIET_MAX QUIET_TIMEOUT FOREIGN_MAX MAX_RETRIES WARREN KEEP

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2s}
QUIET_MAX=${QUIET_MAX:-10}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-60}
FOREIGN_MAX=${FOREIGN_MAX:-10}
MAX_RETRIES=${MAX_RETRIES:-3}
BUN=${BUN:-$ROOT/node_modules/.bin/bun}
# Our own binary copy (never dist/warren): built from the working tree when missing.
WARREN=${WARREN:-/tmp/bench-warren/warren}
LOADGEN_CPU=0
SERVER_CPU=1

log() { printf '[%s %s] %s\n' "${BENCH:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
declare -A RES=()      # RES[KEY] = newline-separated accepted runs ("metric p50 p99 err non2xx cpu0 cpu1 foreign extra")
DISCARDED=()
COMMANDS=()            # "KEY: command" (one per measurement, for the report)
FINDINGS=()            # things that looked wrong (errors, resets, restarts)

bench_cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ "$(type -t bench_on_exit)" = function ] && bench_on_exit || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

bench_init() {
  WORK=$(mktemp -d "/tmp/warren-bench-$BENCH.XXXXXX")
  chmod 755 "$WORK"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  [ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs (load on CPU $LOADGEN_CPU, servers on CPU $SERVER_CPU)"
  command -v taskset >/dev/null || need_pkgs util-linux
  log "work directory $WORK"
}

# need CMD:PACKAGE...: apt-get install the packages whose command is missing.
need() {
  local missing=() spec cmd pkg
  for spec in "$@"; do
    cmd=${spec%%:*}; pkg=${spec#*:}
    command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] || need_pkgs "${missing[@]}"
}
need_pkgs() {
  log "installing $* (apt-get)"
  [ "$(id -u)" = 0 ] || die "need root to install $*"
  # policy-rc.d (when present) keeps packaged services (nginx, haproxy, sshd) from starting.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

ensure_warren() {
  if [ ! -x "$BUN" ]; then
    log "bun missing: npm install"
    (cd "$ROOT" && npm install --no-audit --no-fund >/dev/null)
  fi
  if [ ! -x "$WARREN" ]; then
    log "building $WARREN from the working tree"
    mkdir -p "$(dirname "$WARREN")"
    (cd "$ROOT" && "$BUN" scripts/build.ts --outfile "$WARREN" >&2)
  fi
}

# start NAME CMD...: CMD pinned to the server core, output in $WORK/NAME.log, pid in PID_NAME.
start() {
  local name=$1; shift
  taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  eval "PID_${name//-/_}=$!"
}
pid_of() { local v="PID_${1//-/_}"; echo "${!v}"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() { local p; for p in "$@"; do port_free "$p" || die "port $p on 127.0.0.1 is in use (set PORT_BASE)"; done; }

# wait_port NAME PORT [SECONDS]: until 127.0.0.1:PORT accepts.
wait_port() {
  local name=$1 port=$2 secs=${3:-15} pid
  pid=$(pid_of "$name")
  for _ in $(seq 1 $((secs * 10))); do
    port_free "$port" || return 0
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  die "$name does not listen on $port"
}

# wait_log NAME REGEX [SECONDS]: until the log of NAME has a line matching REGEX.
wait_log() {
  local name=$1 re=$2 secs=${3:-15} pid
  pid=$(pid_of "$name")
  for _ in $(seq 1 $((secs * 10))); do
    grep -Eq "$re" "$WORK/$name.log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "$name exited at start"; }
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2
  die "$name: no log line matching /$re/ within ${secs}s"
}

# A self-signed ECDSA P-256 certificate (as in peer-baseline.md) for the names given:
# cert_make DIR NAME... -> DIR/cert.pem DIR/key.pem DIR/both.pem
cert_make() {
  local dir=$1; shift
  local san="" n
  for n in "$@"; do
    if [[ $n =~ ^[0-9.]+$ ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
  done
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 -subj "/CN=$1" \
    -addext "subjectAltName=$san" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "openssl req failed"
  cat "$dir/cert.pem" "$dir/key.pem" >"$dir/both.pem"
}

# ---------------------------------------------------------------- names on loopback
# wrk takes the TLS server name (SNI) from the URL, and *.localhost names do not resolve here (no
# systemd-resolved). Rather than editing the shared /etc/hosts, the load generator runs in its own
# mount namespace where a private hosts file is bind-mounted over /etc/hosts (root only).
LOADGEN_HOSTS=""
loadgen_hosts() { # loadgen_hosts NAME...: these names resolve to 127.0.0.1 for the load generator
  LOADGEN_HOSTS="$WORK/hosts"
  { echo "127.0.0.1 localhost"; echo "127.0.0.1 $*"; } >"$LOADGEN_HOSTS"
  unshare -m sh -c "mount --bind '$LOADGEN_HOSTS' /etc/hosts && getent hosts $1 >/dev/null" ||
    die "cannot give the load generator its own /etc/hosts (unshare -m needs root)"
}
# loadgen CMD...: CMD on the load-generator core (in the hosts namespace when set). exec all the way,
# so the command stays one process and its CPU time lands in this shell's cutime when reaped.
loadgen() {
  if [ -n "$LOADGEN_HOSTS" ]; then
    unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec taskset -c '"$LOADGEN_CPU"' "$@"' "$LOADGEN_HOSTS" "$@"
  else
    taskset -c "$LOADGEN_CPU" "$@"
  fi
}

# ---------------------------------------------------------------- CPU accounting
# Every process under the pids we started (nginx workers, sshd sessions), recursively.
descendants() {
  local pid=$1 c
  echo "$pid"
  for c in $(cat "/proc/$pid/task/"*/children 2>/dev/null); do descendants "$c"; done
}
server_pids() { local pid; for pid in "${PIDS[@]}"; do descendants "$pid"; done; }
# Sum of utime+stime (ticks) over the server processes.
server_ticks() {
  local sum=0 pid s
  for pid in $(server_pids); do
    s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    s=${s##*) }
    set -- $s
    sum=$((sum + ${12} + ${13}))
  done
  echo "$sum"
}
# Ticks of reaped children of this shell (the load generator runs as one): cutime+cstime.
child_ticks() { local s; s=$(cat /proc/$$/stat); s=${s##*) }; set -- $s; echo $((${14} + ${15})); }
# "cpuN busy total irq" for cpu (all), cpu0, cpu1 (busy = user+nice+system; irq+softirq separately).
cpu_snapshot() {
  awk '/^cpu[01 ] / { busy = $2 + $3 + $4; tot = 0; for (i = 2; i <= 9; i++) tot += $i; irq = $7 + $8;
       printf "%s %d %d %d\n", $1, busy, tot, irq }' /proc/stat
}

# wait_quiet: until whole-machine busy% (1 s sample, incl. irq) <= QUIET_MAX, at most QUIET_TIMEOUT s.
wait_quiet() {
  local start=$SECONDS a b busy
  while :; do
    a=$(awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $5 + $6, t }' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $5 + $6, t }' /proc/stat)
    busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); dt = y[2] - x[2];
           if (dt <= 0) { print 0; exit } printf "%d", 100 * (1 - (y[1] - x[1]) / dt) }')
    [ "$busy" -le "$QUIET_MAX" ] && { QUIET_LAST=$busy; return 0; }
    if [ $((SECONDS - start)) -ge "$QUIET_TIMEOUT" ]; then
      log "machine still ${busy}% busy after ${QUIET_TIMEOUT}s; running anyway"
      QUIET_LAST="$busy!"
      return 0
    fi
  done
}

# measure OUT CMD...: runs CMD via loadgen (stdout+stderr to OUT) and sets L_CPU0 L_CPU1 (utilisation
# incl. irq, %) and L_FOREIGN (CPU time of processes not ours, % of the whole machine).
measure() {
  local out=$1; shift
  local s0 s1 st0 st1 ct0 ct1
  s0=$(cpu_snapshot); st0=$(server_ticks); ct0=$(child_ticks)
  loadgen "$@" >"$out" 2>&1 || true
  s1=$(cpu_snapshot); st1=$(server_ticks); ct1=$(child_ticks)
  read -r L_CPU0 L_CPU1 L_FOREIGN < <(awk -v a="$s0" -v b="$s1" -v ours=$(((st1 - st0) + (ct1 - ct0))) 'BEGIN {
      n = split(a, A, "\n"); split(b, B, "\n");
      for (i = 1; i <= n; i++) { split(A[i], x, " "); split(B[i], y, " "); db[x[1]] = y[2] - x[2]; dt[x[1]] = y[3] - x[3]; di[x[1]] = y[4] - x[4] }
      c0 = dt["cpu0"] > 0 ? 100 * (db["cpu0"] + di["cpu0"]) / dt["cpu0"] : 0; c1 = dt["cpu1"] > 0 ? 100 * (db["cpu1"] + di["cpu1"]) / dt["cpu1"] : 0
      f = dt["cpu"] > 0 ? 100 * (db["cpu"] - ours) / dt["cpu"] : 0; if (f < 0) f = 0
      printf "%d %d %.1f\n", c0, c1, f }')
}

# ---------------------------------------------------------------- tool output parsers
# Each sets R_METRIC (req/s, or MB/s for curl) R_P50 R_P99 (ms) R_ERR R_ERRDETAIL R_NON2XX R_EXTRA
to_ms() { # 305.00us | 1.79ms | 1.02s -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
parse_wrk() { # R_EXTRA = bytes read per response (headers + body)
  local out=$1
  R_METRIC=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$out")
  R_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  R_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  R_ERR=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out"); R_ERR=${R_ERR:-0}
  R_ERRDETAIL=$(awk '/Socket errors:/ { gsub(",", ""); printf "connect %s read %s write %s timeout %s", $4, $6, $8, $10 }' "$out")
  R_NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' "$out"); R_NON2XX=${R_NON2XX:-0}
  R_EXTRA=$(awk '/requests in/ { n = $1; v = $5; m = 1; if (v ~ /KB$/) m = 1024; else if (v ~ /MB$/) m = 1048576; else if (v ~ /GB$/) m = 1073741824;
          if (n > 0) printf "%d", (v + 0) * m / n }' "$out")
  R_EXTRA=${R_EXTRA:-0}
  [ -n "$R_METRIC" ]
}
parse_hey() { # req/s counts only 2xx/3xx answers (hey's own figure counts errors too); R_EXTRA = all results
  local out=$1 total ok
  total=$(awk '/Total:/ { print $2; exit }' "$out")
  ok=$(awk '/^Status code distribution:/ { s = 1; next } s && /^[ \t]*\[[23][0-9][0-9]\]/ { n += $2 } s && /^$/ { s = 0 } END { print n + 0 }' "$out")
  R_NON2XX=$(awk '/^Status code distribution:/ { s = 1; next } s && /^[ \t]*\[[45][0-9][0-9]\]/ { n += $2 } s && /^$/ { s = 0 } END { print n + 0 }' "$out")
  R_ERR=$(awk '/^Error distribution:/ { s = 1; next } s && /^[ \t]*\[[0-9]+\]/ { gsub(/[\[\]]/, "", $1); n += $1 } END { print n + 0 }' "$out")
  R_ERRDETAIL=$(awk '/^Error distribution:/ { s = 1; next } s && /^[ \t]*\[/ { print; exit }' "$out" | cut -c1-200)
  R_METRIC=$(awk -v ok="$ok" -v t="$total" 'BEGIN { if (t > 0) printf "%d", ok / t }')
  R_P50=$(awk '$1 == "50%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$out"); R_P50=${R_P50:-0}
  R_P99=$(awk '$1 == "99%" && $2 == "in" { printf "%.3f", $3 * 1000 }' "$out"); R_P99=${R_P99:-0}
  R_EXTRA=$((ok + R_ERR + R_NON2XX))
  [ -n "$R_METRIC" ] && [ -n "$total" ]
}
parse_curl() { # one download; curl -w '%{http_code} %{size_download} %{time_total}'; MB/s = 10^6 B/s
  local out=$1 code size secs
  read -r code size secs < <(tail -1 "$out")
  R_P50=0 R_P99=0 R_NON2XX=0 R_ERR=0 R_ERRDETAIL=""
  [ "$code" = 200 ] || R_NON2XX=1
  [ "$size" = "${EXPECT_BYTES:-$size}" ] || { R_ERR=1; R_ERRDETAIL="got $size of ${EXPECT_BYTES} bytes"; }
  R_METRIC=$(awk -v s="$size" -v t="$secs" 'BEGIN { if (t > 0) printf "%.0f", s / t / 1e6; else print 0 }')
  R_EXTRA=$secs
  [ -n "$size" ]
}

# ---------------------------------------------------------------- measurements
# bench_run KEY TOOL CMD...: one accepted run (repeated when foreign load > FOREIGN_MAX).
bench_run() {
  local key=$1 tool=$2; shift 2
  local attempt out msg n
  n=$(printf '%s' "${RES[$key]:-}" | grep -c . || true)
  for attempt in $(seq 0 "$MAX_RETRIES"); do
    wait_quiet
    out="$WORK/out-${key//[^A-Za-z0-9_.-]/_}-run$((n + 1))-try$attempt.txt"
    measure "$out" "$@"
    "parse_$tool" "$out" || { cat "$out" >&2; die "$tool failed for $key"; }
    msg="$key run $((n + 1)): $R_METRIC p50 $R_P50 ms p99 $R_P99 ms errors $R_ERR non-2xx $R_NON2XX cpu0/cpu1 $L_CPU0/$L_CPU1% foreign $L_FOREIGN% (pre-run busy $QUIET_LAST%)"
    if awk -v f="$L_FOREIGN" -v m="$FOREIGN_MAX" 'BEGIN { exit !(f > m) }' && [ "$attempt" -lt "$MAX_RETRIES" ]; then
      log "DISCARDED (foreign load > ${FOREIGN_MAX}%): $msg"
      DISCARDED+=("$msg")
      continue
    fi
    log "$msg"
    if [ "$R_ERR" != 0 ] || [ "$R_NON2XX" != 0 ]; then
      log "  !! $key: errors $R_ERR ($R_ERRDETAIL), non-2xx $R_NON2XX (raw: $out)"
    fi
    RES[$key]+="$R_METRIC $R_P50 $R_P99 $R_ERR $R_NON2XX $L_CPU0 $L_CPU1 $L_FOREIGN $R_EXTRA"$'\n'
    break
  done
  local c
  c="$key: $(shquote "$@")"
  printf '%s\n' "${COMMANDS[@]:-}" | grep -qxF "$c" || COMMANDS+=("$c")
}
# shquote ARG...: the arguments as one shell command line (quoted only where needed).
shquote() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  echo "taskset -c $LOADGEN_CPU ${out[*]}"
}
# warmup TOOL CMD...: one unrecorded run (JIT, pools).
warmup() { local tool=$1; shift; loadgen "$@" >"$WORK/warmup.txt" 2>&1 || true; }

# median KEY: sets M_METRIC M_P50 M_P99 (of the median run) M_RUNS ("a / b / c") M_ERR M_NON2XX (sums)
# M_CPU ("cpu0/cpu1" of the median run) M_CPU1 M_FOREIGN (max) M_EXTRA (of the median run) M_N
median() {
  local key=$1 line sorted mid
  local lines=()
  mapfile -t lines < <(printf '%s' "${RES[$key]:-}" | grep .)
  M_N=${#lines[@]}
  if [ "$M_N" = 0 ]; then M_METRIC=0 M_P50=0 M_P99=0 M_RUNS="-" M_ERR=0 M_NON2XX=0 M_CPU="-" M_CPU1=0 M_FOREIGN=0 M_EXTRA=0; return; fi
  sorted=$(printf '%s\n' "${lines[@]}" | sort -n -k1,1)
  mid=$(( (M_N + 1) / 2 ))
  line=$(printf '%s\n' "$sorted" | sed -n "${mid}p")
  set -- $line
  M_METRIC=$1 M_P50=$2 M_P99=$3 M_CPU="$6/$7" M_CPU1=$7 M_EXTRA=$9
  M_RUNS=$(for l in "${lines[@]}"; do set -- $l; fmt "$1"; done | paste -sd/ | sed 's|/| / |g')
  M_ERR=$(for l in "${lines[@]}"; do set -- $l; echo "$4"; done | awk '{ s += $1 } END { print s + 0 }')
  M_NON2XX=$(for l in "${lines[@]}"; do set -- $l; echo "$5"; done | awk '{ s += $1 } END { print s + 0 }')
  M_FOREIGN=$(for l in "${lines[@]}"; do set -- $l; echo "$8"; done | sort -n | tail -1)
}
# µs of server-core time per unit: usper CPU1% RATE
usper() { awk -v c="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.1f", c / 100 / r * 1e6; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { echo "$1" | sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta'; }
# MB/s (10^6 B/s) from req/s and bytes per response
mbps() { awk -v r="$1" -v b="$2" 'BEGIN { printf "%.0f", r * b / 1e6 }'; }

# rss_kb PID: resident set (kB); hwm_kb PID: peak resident set (kB)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# log_mark NAME: remember how long NAME's log is; log_problems NAME: warn/error lines of a JSON log
# since the mark, counted by message and code.
declare -A LOG_MARK=()
log_mark() { LOG_MARK[$1]=$(wc -l <"$WORK/$1.log"); }
log_problems() {
  tail -n +$((${LOG_MARK[$1]:-0} + 1)) "$WORK/$1.log" | grep -E '"level":"(warn|error|fatal)"|panic|Segmentation|^error' |
    sed -E 's/.*"msg":"([^"]*)".*"code":"([^"]*)".*/\1 [\2]/; s/.*"msg":"([^"]*)".*/\1/' | sort | uniq -c | sort -rn | head -8 |
    sed 's/^ *//' | paste -sd';' | sed 's/;/; /g' || true
}

finding() { log "!! $*"; FINDINGS+=("$*"); }

# alive NAME: the server NAME is still running (records a finding otherwise)
alive() { kill -0 "$(pid_of "$1")" 2>/dev/null || { finding "$1 exited during the benchmark (log: $(tail -3 "$WORK/$1.log" | tr '\n' ' '))"; return 1; }; }

print_tail() { # discarded runs, findings, commands
  if [ ${#DISCARDED[@]} -gt 0 ]; then
    echo
    echo "Discarded runs (foreign load > ${FOREIGN_MAX}%, repeated):"
    printf -- '- %s\n' "${DISCARDED[@]}"
  fi
  if [ ${#FINDINGS[@]} -gt 0 ]; then
    echo
    echo "Findings:"
    printf -- '- %s\n' "${FINDINGS[@]}"
  fi
  echo
  echo "Commands (each run RUNS=$RUNS times):"
  echo
  echo '```'
  printf '%s\n' "${COMMANDS[@]}"
  echo '```'
}
