# vlm-slurm.sh — shell functions the job scripts in this folder share (sourced, not run).
# A batch script runs from slurmd's spool copy, so the scripts find this file through
# $VLM_SLURM_DIR, else the folder `sbatch` was run from ($SLURM_SUBMIT_DIR).

VLM=${VLM:-vlm}                        # the vlm binary (after `make install`, on PATH)
VLM_HEALTH_TIMEOUT=${VLM_HEALTH_TIMEOUT:-600}   # seconds to wait for /health (hub downloads count)

vlm_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# A TCP port no socket uses, from outside the kernel's ephemeral range (the source ports of
# outgoing connections, health checks included, come from that range and block a bind to the
# same port), above the usual services. Racy by nature: the starts below retry on another
# port if they lose the race.
vlm_free_port() {
  local p lo=32768 hi=60999 a b
  read -r a b < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && { lo=$a; hi=$b; }
  for _ in $(seq 200); do
    if [ "$lo" -gt 11024 ]; then p=$(( 10000 + RANDOM % (lo - 10000) ))
    elif [ "$hi" -lt 64535 ]; then p=$(( hi + 1 + RANDOM % (65535 - hi) ))
    else p=$(( 20000 + RANDOM % 30000 )); fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    if command -v ss >/dev/null 2>&1; then
      [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ] && continue
    fi
    echo "$p"; return 0
  done
  return 1
}

# vlm_wait_health URL PID: 0 once URL/health answers 200, 1 if PID exits or the timeout passes.
vlm_wait_health() {
  local url=$1 pid=$2 t=0
  while [ "$t" -lt $((VLM_HEALTH_TIMEOUT * 5)) ]; do
    curl -fsS -o /dev/null --max-time 2 "$url/health" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
    t=$((t + 1))
  done
  return 1
}

# vlm_start MODEL [vlm serve flags...]: starts `vlm serve` on this node, on a free port, with
# SLURM_CPUS_PER_TASK threads, and waits for /health. Sets VLM_PID, VLM_PORT and VLM_URL
# (http://HOST:PORT, HOST being this node's name so other nodes reach it).
vlm_start() {
  local model=$1; shift
  local threads=${SLURM_CPUS_PER_TASK:-$(nproc)} host try
  host=$(hostname)
  for try in 1 2 3; do
    VLM_PORT=${PORT:-$(vlm_free_port)}
    vlm_log "vlm serve $model on $host:$VLM_PORT, $threads threads (try $try)"
    "$VLM" serve "$model" --host 0.0.0.0 --port "$VLM_PORT" --threads "$threads" "$@" &
    VLM_PID=$!
    VLM_URL="http://$host:$VLM_PORT"
    if vlm_wait_health "http://127.0.0.1:$VLM_PORT" "$VLM_PID"; then
      vlm_log "ready: $VLM_URL/v1"
      return 0
    fi
    kill "$VLM_PID" 2>/dev/null; wait "$VLM_PID" 2>/dev/null
    [ -n "${PORT:-}" ] && break    # a fixed port that failed will fail again
  done
  vlm_log "vlm serve did not become healthy"
  return 1
}

# Stops the server with SIGTERM (it finishes running requests, then exits) and waits for it.
vlm_stop() {
  [ -n "${VLM_PID:-}" ] || return 0
  kill -TERM "$VLM_PID" 2>/dev/null || true
  wait "$VLM_PID" 2>/dev/null || true
  VLM_PID=
}
