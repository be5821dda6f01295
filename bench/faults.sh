#!/usr/bin/env bash
# wharf sync through fault-injecting proxies on both sides (source and destination, Debian's
# docker-registry behind each), against a clean run of the same set, and side by side with skopeo sync
# under the faults skopeo can survive (it has no idle timeout, so a stalled body would hang it):
#   1. clean: IMAGES images x LAYERS layers x LAYER_SIZE (SHARED shared), no faults
#   2. all faults at RATE% of requests (503, connection cut mid-body, stalled body, corrupted bytes,
#      damaged uploads): passes of `--retry-failed` needed, completion after the first, wall time
#   3. the same without stalls, wharf and skopeo (whole reruns until it succeeds)
# Every mirror is checked against the source afterwards with a direct, fault-free no-op sync.
#
#   bench/faults.sh
#   IMAGES=50 RATE=15 SEED=1 bench/faults.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-50}
LAYERS=${LAYERS:-4}
LAYER_SIZE=${LAYER_SIZE:-512K}
SHARED=${SHARED:-2}
RATE=${RATE:-15}
SEED=${SEED:-1}
MAX_PASSES=${MAX_PASSES:-10}
IDLE=${IDLE:-2}

proxy="${CARGO_TARGET_DIR:-$repo_root/target}/release/fault-proxy"
(cd "$repo_root" && cargo build --release --quiet -p wharf -p wharf-testkit --bin wharf --bin fault-proxy)
gen_set "$work/set"

start_docker_registry source
SRC=$ADDR
seed_registry "$SRC" "$IMAGES"

# start_proxy NAME UPSTREAM KINDS SEED: a fault proxy; sets ADDR.
start_proxy() {
  local name=$1
  "$proxy" "$2" "$RATE" "$4" "$3" "$work/$name.dealt" >"$work/$name.out" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do
    ADDR=$(sed -n 's/^listening on //p' "$work/$name.out")
    [ -n "$ADDR" ] && return 0
    sleep 0.05
  done
  echo "fault proxy $name did not start" >&2
  return 1
}

dealt() { cat "$work/$1.dealt" 2>/dev/null || echo 0; }
failures() { python3 -c "import json,sys; print(sum(r['status'] == 'failed' for r in json.load(open(sys.argv[1]))['roots']))" "$1"; }

# sources HOST: the set's images as read through HOST.
sources() { for i in $(seq 0 $((IMAGES - 1))); do echo "$1/bench/img$i:v1"; done; }

# check DST: a direct, fault-free sync from the source finds every image already there.
check() {
  local out dst=$1
  out=$("$wharf" sync --no-referrers --to "$dst/mirror" $(sources "$SRC"))
  case "$out" in
    *"0 copied, $IMAGES already there, 0 failed"*) ;;
    *) echo "the mirror at $dst is not whole: $out" >&2; exit 1 ;;
  esac
}

# wharf_passes NAME DST_PROXY SRC_PROXY: syncs until nothing fails; sets PASSES, FIRST (images done
# after the first pass), SECS (all passes).
wharf_passes() {
  local name=$1 dst=$2 src=$3 t0 t1 report pass=1 left
  t0=$(now)
  report="$work/$name-1.json"
  "$wharf" sync --quiet --no-referrers --idle-timeout "$IDLE" --output json --to "$dst/mirror" \
    $(sources "$src") >"$report" 2>"$work/$name-1.err" || true
  left=$(failures "$report")
  FIRST=$((IMAGES - left))
  while [ "$left" -gt 0 ] && [ "$pass" -lt "$MAX_PASSES" ]; do
    pass=$((pass + 1))
    "$wharf" sync --quiet --no-referrers --idle-timeout "$IDLE" --output json --to "$dst/mirror" \
      --retry-failed "$report" >"$work/$name-$pass.json" 2>"$work/$name-$pass.err" || true
    report="$work/$name-$pass.json"
    left=$(failures "$report")
  done
  t1=$(now)
  [ "$left" -eq 0 ] || { echo "$name: $left images still failing after $pass passes" >&2; exit 1; }
  PASSES=$pass
  SECS=$(elapsed "$t0" "$t1")
}

# skopeo_passes NAME DST_PROXY SRC_PROXY: reruns skopeo sync until it succeeds; sets PASSES (or
# "none of N" when it never did), SECS.
skopeo_passes() {
  local name=$1 dst=$2 src=$3 t0 t1 pass=0
  {
    echo "$src:"
    echo "  tls-verify: false"
    echo "  images:"
    for i in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$i: [v1]"; done
  } >"$work/$name.yaml"
  t0=$(now)
  PASSES="none of $MAX_PASSES"
  while [ "$pass" -lt "$MAX_PASSES" ]; do
    pass=$((pass + 1))
    # A pass that stalls for good is cut off and counted, like any failed pass.
    if timeout 300 skopeo sync --retry-times 3 --src yaml --dest docker --dest-tls-verify=false \
      "$work/$name.yaml" "$dst/mirror" >"$work/$name-$pass.out" 2>&1; then
      PASSES=$pass
      break
    fi
  done
  t1=$(now)
  SECS=$(elapsed "$t0" "$t1")
}

echo "== $IMAGES images x $LAYERS layers x $LAYER_SIZE, $SHARED shared ($SET_MIB MiB); faults at $RATE% of requests, seed $SEED"

start_docker_registry clean
timed_rss wharf-clean "$wharf" sync --quiet --no-referrers --to "$ADDR/mirror" $(sources "$SRC")
clean=$SECS
check "$ADDR"
echo "clean: wharf ${clean}s"

start_docker_registry all-dst
DST=$ADDR
start_proxy all-src "$SRC" all "$SEED"; PSRC=$ADDR
start_proxy all-dst "$DST" all "$((SEED + 1))"; PDST=$ADDR
wharf_passes wharf-all "$PDST" "$PSRC"
check "$DST"
echo "all faults: wharf $FIRST/$IMAGES after the first pass, $PASSES passes, ${SECS}s" \
  "($(ratio "$SECS" "$clean")x the clean run; $(( $(dealt all-src) + $(dealt all-dst) )) faults dealt)"

kinds=unavailable,cut,corrupt,damaged-request
for tool in wharf skopeo; do
  start_docker_registry "$tool-dst"
  DST=$ADDR
  start_proxy "$tool-src" "$SRC" "$kinds" "$SEED"; PSRC=$ADDR
  start_proxy "$tool-dst" "$DST" "$kinds" "$((SEED + 1))"; PDST=$ADDR
  if [ "$tool" = wharf ]; then
    wharf_passes wharf-nostall "$PDST" "$PSRC"
    w_first=$FIRST; w_passes=$PASSES; w_secs=$SECS
  else
    skopeo_passes skopeo-nostall "$PDST" "$PSRC"
    s_passes=$PASSES; s_secs=$SECS
  fi
  # skopeo sync keeps only the last path component and writes manifests anew (other digests):
  # its mirror is checked by reading every image back whole. One it never finished is not checked.
  if [ "$tool" = wharf ]; then
    check "$DST"
  elif [ "$s_passes" != "none of $MAX_PASSES" ]; then
    for i in $(seq 0 $((IMAGES - 1))); do
      "$wharf" verify --no-referrers "$DST/mirror/img$i:v1" >/dev/null \
        || { echo "skopeo's mirror lacks img$i" >&2; exit 1; }
    done
  fi
done
if [ "$s_passes" = "none of $MAX_PASSES" ]; then
  skopeo_result="did not finish in $MAX_PASSES passes (${s_secs}s)"
else
  skopeo_result="finished after $s_passes passes, ${s_secs}s, $(ratio "$s_secs" "$w_secs")x wharf's time"
fi
echo "faults without stalls: wharf $w_first/$IMAGES after the first pass, $w_passes passes, ${w_secs}s;" \
  "skopeo sync --retry-times 3 $skopeo_result"
echo
echo "machine: $(machine)"
