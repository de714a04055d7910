#!/usr/bin/env bash
# The queue worker against a real Redis: a private redis-server on a free
# local port, 1,000 jobs, two workers; one gets SIGTERM mid-batch and hands
# its unfinished jobs back, the other drains the queue. Then every job id
# must be counted done exactly once, and the queue and both processing
# lists must be empty. Prints
#   jobs 1000, workers 2, requeued N, done 1000, lost 0, duplicated 0
# and exits non-zero on any failure; exit 77 (and nothing else) means
# redis-server is missing and could not be installed. Every wait is bounded:
# a hang fails.
#
#   examples/queue-worker/run.sh            # from anywhere
#   QW_JOBS=5000 examples/queue-worker/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

jobs=${QW_JOBS:-1000}
max_tasks=8
# On SIGTERM, running jobs (10-40 ms each) get this long to finish: short,
# so that the worker that is stopped has some to requeue.
close_ms=5
# Worker a gets SIGTERM once it has completed this many jobs.
kill_after=$((jobs * 3 / 20))

failures=()
fail() {
    failures+=("$1")
}

# --- redis-server: installed if missing (Debian; root, or sudo) ----------
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "installing redis-server (apt-get)"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    export DEBIAN_FRONTEND=noninteractive
    install_log=$(mktemp)
    # The package lists may be stale or missing: update only if a plain
    # install fails. Each apt step is bounded by a timeout.
    if ! { timeout 300 $sudo apt-get install -y -qq redis-server >"$install_log" 2>&1 ||
        { timeout 300 $sudo apt-get update -qq >>"$install_log" 2>&1 &&
            timeout 300 $sudo apt-get install -y -qq redis-server >>"$install_log" 2>&1; }; } ||
        ! command -v redis-server >/dev/null; then
        echo "redis-server could not be installed: $(tail -n 2 "$install_log" | tr '\n' ' ')"
        rm -f "$install_log"
        exit 77
    fi
    rm -f "$install_log"
fi

work=$(mktemp -d)
redis_pid=""
runners=()
cleanup() {
    # Only the processes this script started, by pid.
    for pid in "${runners[@]}" $redis_pid; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- a private redis-server on a free port, never 6379 --------------------
port=""
for _ in $(seq 5); do
    candidate=$((20000 + RANDOM % 40000))
    # A port that takes a connection is in use.
    if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        continue
    fi
    redis-server --port "$candidate" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$work" --logfile "$work/redis.log" --daemonize no &
    redis_pid=$!
    for _ in $(seq 100); do # up to 10 s for it to answer
        if [ "$(timeout 2 redis-cli -p "$candidate" PING 2>/dev/null)" = PONG ]; then
            port=$candidate
            break 2
        fi
        kill -0 "$redis_pid" 2>/dev/null || break # it died: the port was taken after all
        sleep 0.1
    done
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
done
if [ -z "$port" ]; then
    echo "queue-worker FAILED: redis-server did not start on any of 5 ports"
    tail -n 20 "$work/redis.log" 2>/dev/null || true
    exit 1
fi
url="redis://127.0.0.1:$port/"
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on port $port (pid $redis_pid)"

# Every Redis command of this script, bounded.
rcli() {
    timeout 5 redis-cli -p "$port" "$@"
}

# --- the worker -----------------------------------------------------------
build_start=$SECONDS
timeout 900 cargo build -q -p taskwarden-queue-worker
echo "built taskwarden-queue-worker in $((SECONDS - build_start)) s"
bin="${CARGO_TARGET_DIR:-target}/debug/taskwarden-queue-worker"

# --- the jobs: ids 1..N, taken oldest first --------------------------------
queued=$(seq 1 "$jobs" | xargs timeout 10 redis-cli -p "$port" LPUSH jobs | tail -n 1)
[ "$queued" = "$jobs" ] || {
    echo "queue-worker FAILED: LPUSH left $queued jobs, not $jobs"
    exit 1
}

# Starts worker $1 under a 120 s timeout (it bounds every wait on it below)
# and waits until it says it takes jobs; sets pid_$1 to the worker's own pid.
start_worker() {
    local name=$1
    timeout 120 "$bin" --redis "$url" --name "$name" --max-tasks "$max_tasks" \
        --close-ms "$close_ms" >"$work/$name.out" 2>&1 &
    runners+=("$!")
    eval "runner_$name=$!"
    for _ in $(seq 300); do # up to 30 s
        if grep -q "taking jobs" "$work/$name.out"; then
            eval "pid_$name=$(sed -n 's/^worker [^:]*: pid \([0-9]*\),.*/\1/p' "$work/$name.out")"
            return 0
        fi
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/$name.out"
    echo "queue-worker FAILED: worker $name did not start"
    exit 1
}

# Sends SIGTERM to worker $1, waits for it (its timeout bounds the wait),
# requires exit 0 and prints its output.
stop_worker() {
    local name=$1 runner pid status=0
    runner=$(eval "echo \$runner_$name")
    pid=$(eval "echo \$pid_$name")
    kill -TERM "$pid"
    wait "$runner" || status=$?
    sed "s/^/  $name| /" "$work/$name.out"
    [ "$status" = 0 ] || fail "worker $name exited with status $status (124: still running after 120 s)"
}

# A number from worker $1's summary line: `field $1 requeued`.
field() {
    sed -n "/^worker $1: taken /s/.*[ :,(]$2 \([0-9][0-9]*\).*/\1/p" "$work/$1.out"
}

start_worker a
start_worker b

# --- SIGTERM to worker a, mid-batch ---------------------------------------
a_done=0
for _ in $(seq 600); do # up to 30 s
    a_done=$(rcli HGET stats:a done)
    [ "${a_done:-0}" -ge "$kill_after" ] && break
    sleep 0.05
done
left=$(rcli LLEN jobs)
echo "SIGTERM to worker a after $a_done jobs done by it, $left still in the queue"
[ "${a_done:-0}" -ge "$kill_after" ] || fail "worker a did only ${a_done:-0} jobs in 30 s"
[ "$left" -gt 0 ] || fail "the queue was already empty at SIGTERM: not mid-batch"
stop_worker a

# --- worker b drains the queue, requeued jobs included --------------------
drained=no
for _ in $(seq 600); do # up to 60 s
    if [ "$(rcli LLEN jobs)" = 0 ] && [ "$(rcli LLEN processing:b)" = 0 ]; then
        drained=yes
        break
    fi
    sleep 0.1
done
[ "$drained" = yes ] || fail "the queue was not drained within 60 s"
stop_worker b

# --- the checks -------------------------------------------------------------
# Each id 1..N: counted once (done), more than once (duplicated) or never
# (lost); anything else in the hash is a stray.
read -r done_ids lost duplicated strays < <(rcli HGETALL done | awk -v n="$jobs" '
    NR % 2 == 1 { id = $0; next }
    { count[id] = $0 }
    END {
        done = lost = dup = 0
        for (i = 1; i <= n; i++) {
            if (!(i in count)) lost++
            else { done++; if (count[i] != 1) dup++ }
        }
        strays = 0
        for (id in count) if (id !~ /^[0-9]+$/ || id + 0 < 1 || id + 0 > n) strays++
        print done, lost, dup, strays
    }')
for list in jobs processing:a processing:b; do
    len=$(rcli LLEN "$list")
    [ "$len" = 0 ] || fail "$list still holds $len jobs"
done
[ "$lost" = 0 ] || fail "$lost jobs never done"
[ "$duplicated" = 0 ] || fail "$duplicated jobs done more than once"
[ "$strays" = 0 ] || fail "$strays unknown ids counted done"

requeued=$(field a requeued)
for name in a b; do
    [ -n "$(field "$name" taken)" ] || fail "worker $name printed no summary line"
done
[ "${requeued:-0}" -gt 0 ] || fail "worker a requeued nothing: the SIGTERM path was not exercised"
# The workers' own counts agree with Redis: together they did every job once.
worker_done=$(($(field a done || echo 0) + $(field b done || echo 0)))
[ "$worker_done" = "$jobs" ] || fail "the workers say they did $worker_done jobs, not $jobs"
[ "$(field b taken)" = "$(($(field b done) + $(field b requeued)))" ] || fail "worker b: taken != done + requeued"

echo "jobs $jobs, workers 2, requeued ${requeued:-0}, done $done_ids, lost $lost, duplicated $duplicated"
if [ ${#failures[@]} -gt 0 ]; then
    printf 'queue-worker FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "queue-worker passed"
