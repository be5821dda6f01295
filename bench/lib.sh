# Shared helpers for the benchmark scripts: free ports, starting and stopping registries, timing, RSS.
# Source it; it sets `work` (a temporary directory removed on exit).

set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wharf="${CARGO_TARGET_DIR:-$repo_root/target}/release/wharf"
work=$(mktemp -d)
pids=()

cleanup() {
  # Servers run under /usr/bin/time, which does not pass signals on: stop its children too.
  for pid in "${pids[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] && echo "work directory kept: $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

build_wharf() {
  (cd "$repo_root" && cargo build --release --quiet -p wharf)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() {
  local addr=$1
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://$addr/v2/" && return 0
    sleep 0.05
  done
  echo "registry at $addr did not come up" >&2
  return 1
}

# start_docker_registry NAME: starts Debian's docker-registry (distribution 2.8) under /usr/bin/time;
# sets ADDR and PID. With ACCESSLOG_DISABLED=false its log ($work/NAME/log) has a line per request;
# REGISTRY_STORAGE replaces its storage driver (a filesystem below $work/NAME/data by default).
start_docker_registry() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  local storage=${REGISTRY_STORAGE:-"  filesystem:
    rootdirectory: $work/$name/data"}
  cat >"$work/$name/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: ${ACCESSLOG_DISABLED:-true}
storage:
$storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  # The Go SDK of the S3 driver refuses a custom CA bundle with its transport; nothing else reads it.
  env -u AWS_CA_BUNDLE /usr/bin/time -v -o "$work/$name/time" docker-registry serve \
    "$work/$name/config.yml" >"$work/$name/log" 2>&1 &
  PID=$!
  pids+=("$PID")
  ADDR=127.0.0.1:$port
  wait_for "$ADDR"
}

# start_moto: moto's standalone S3 server (the venv scripts/setup-peers makes); sets MOTO and exports
# the AWS_* settings that reach it.
start_moto() {
  local port
  port=$(free_port)
  "${WHARF_VENV:-$HOME/.cache/wharf/venv}/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
  pids+=("$!")
  MOTO=127.0.0.1:$port
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://$MOTO/" && break
    sleep 0.05
  done
  export AWS_ENDPOINT_URL=http://$MOTO AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
}

# make_bucket NAME: creates a bucket in moto.
make_bucket() {
  curl -fsS -X PUT "http://$MOTO/$1" >/dev/null
}

# start_docker_registry_s3 NAME BUCKET: docker-registry with its S3 driver on moto; sets ADDR, PID.
start_docker_registry_s3() {
  REGISTRY_STORAGE="  s3:
    accesskey: bench
    secretkey: bench
    region: us-east-1
    regionendpoint: http://$MOTO
    bucket: $2
    secure: false
    v4auth: true" start_docker_registry "$1"
}

# start_wharf_serve NAME [ARGS...]: starts `wharf serve` under /usr/bin/time; sets ADDR and PID.
start_wharf_serve() {
  local name=$1 port
  shift
  port=$(free_port)
  mkdir -p "$work/$name"
  local storage=(--root "$work/$name/data")
  [ -n "${STORAGE:-}" ] && storage=(--storage "$STORAGE")
  /usr/bin/time -v -o "$work/$name/time" "$wharf" serve "${storage[@]}" \
    --listen "127.0.0.1:$port" "$@" >"$work/$name/log" 2>&1 &
  PID=$!
  pids+=("$PID")
  ADDR=127.0.0.1:$port
  wait_for "$ADDR"
}

# gen_set DIR: the generated layout of $IMAGES images x $LAYERS layers x $LAYER_SIZE ($SHARED of
# them shared, default none) at DIR; sets SET_MIB to the size of its blobs.
gen_set() {
  python3 "$repo_root/bench/gen-layout.py" "$1" --images "$IMAGES" --layers "$LAYERS" \
    --layer-size "$LAYER_SIZE" --shared "${SHARED:-0}"
  SET_MIB=$(du -sm "$1/blobs" | cut -f1)
}

# seed_registry ADDR COUNT: pushes images img0..COUNT-1 of the layout $work/set (gen-layout.py) to
# ADDR/bench/imgN:v1.
seed_registry() {
  local addr=$1 count=$2
  {
    echo "images:"
    for i in $(seq 0 $((count - 1))); do
      echo "- source: oci:$work/set:img$i"
      echo "  destination: $addr/bench/img$i:v1"
    done
  } >"$work/seed.yaml"
  "$wharf" sync --quiet --file "$work/seed.yaml" >/dev/null
}

# requests NAME: the number of requests a docker-registry started with its access log has served.
requests() {
  grep -c '"[A-Z]* /v2/' "$work/$1/log" || true
}

# timed_rss NAME COMMAND...: runs COMMAND under /usr/bin/time; sets SECS and RSS (MiB).
timed_rss() {
  local name=$1
  shift
  local t0 t1
  t0=$(now)
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>&1 || {
    echo "$name failed:" >&2
    tail -5 "$work/$name.out" >&2
    return 1
  }
  t1=$(now)
  SECS=$(elapsed "$t0" "$t1")
  RSS=$(awk '/Maximum resident set size/ {printf "%.1f", $6/1024}' "$work/$name.time")
}

# stop NAME PID: stops a server started above; sets RSS to its peak RSS in MiB and CPU to its user +
# system seconds. (Not in a subshell: only this shell can wait for the server.)
stop() {
  local name=$1 pid=$2
  # $pid is /usr/bin/time; stop the server under it so time can write its report.
  pkill -TERM -P "$pid"
  wait "$pid" 2>/dev/null || true
  RSS=$(awk '/Maximum resident set size/ {printf "%.1f", $6/1024}' "$work/$name/time")
  CPU=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$work/$name/time")
}

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

machine() {
  echo "$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB"
}
