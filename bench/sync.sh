#!/usr/bin/env bash
# wharf sync against skopeo sync, registry to registry on loopback, Debian's docker-registry as source
# and destinations (access logs on, so requests are counted at the wire), in the same run:
#   1. cold: IMAGES images x LAYERS layers x LAYER_SIZE with SHARED base layers, against the floor
#      (one curl process uploading every distinct blob of the set into a third registry) and skopeo
#   2. the same set again, nothing to do: requests per image on both registries, with and without
#      referrers (skopeo sync copies none)
#   3. a second cold sync into a new prefix of the same registry: wharf with its blob cache, wharf
#      with --no-cache, skopeo (with its own blob-info cache)
#   4. a sweep of --images-at-once and -j on the cold sync (each into a new prefix, --no-cache)
#   5. MANY images with one small layer each: cold sync and no-op re-run, time and peak RSS
#   6. one image with a single BIG layer: wharf copy vs skopeo copy vs a bare curl upload of the bytes
# Prints ratios and a table row for bench/RESULTS.md.
#
#   bench/sync.sh
#   IMAGES=20 LAYERS=8 LAYER_SIZE=2M SHARED=3 MANY=2000 BIG=1G bench/sync.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-20}
LAYERS=${LAYERS:-8}
LAYER_SIZE=${LAYER_SIZE:-2M}
SHARED=${SHARED:-3}
MANY=${MANY:-2000}
BIG=${BIG:-1G}
# wharf's blob cache starts empty and lives in the work directory.
export XDG_CACHE_HOME=$work/cache

build_wharf
gen_set "$work/set"

ACCESSLOG_DISABLED=false start_docker_registry source
SRC=$ADDR
seed_registry "$SRC" "$IMAGES"

# skopeo sync reads its sources from a YAML file of its own.
{
  echo "$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for i in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$i: [v1]"; done
} >"$work/skopeo.yaml"
sources=()
for i in $(seq 0 $((IMAGES - 1))); do sources+=("$SRC/bench/img$i:v1"); done

ACCESSLOG_DISABLED=false start_docker_registry wharf-dst
WDST=$ADDR
ACCESSLOG_DISABLED=false start_docker_registry skopeo-dst
SDST=$ADDR
start_docker_registry floor-dst
FDST=$ADDR

skopeo_sync=(skopeo sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yaml")

echo "== cold: $IMAGES images x $LAYERS layers x $LAYER_SIZE, $SHARED shared ($SET_MIB MiB)"
timed_rss wharf-cold "$wharf" sync --quiet --no-referrers --to "$WDST/mirror" "${sources[@]}"
w_cold=$SECS; w_cold_rss=$RSS
timed_rss skopeo-cold "${skopeo_sync[@]}" "$SDST/mirror"
s_cold=$SECS
# The floor: every distinct blob of the set in one curl process (upload sessions opened beforehand).
uploads=()
for blob in "$work/set/blobs/sha256/"*; do
  location=$(curl -fsS -o /dev/null -D - -X POST "http://$FDST/v2/floor/blobs/uploads/" \
    | awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
  case "$location" in http*) ;; *) location="http://$FDST$location" ;; esac
  separator='?'; case "$location" in *\?*) separator='&' ;; esac
  uploads+=(-T "$blob" "$location${separator}digest=sha256:$(basename "$blob")")
done
timed_rss curl-floor curl -fsS -H 'content-type: application/octet-stream' "${uploads[@]}"
floor=$SECS
echo "wharf ${w_cold}s (RSS ${w_cold_rss} MiB) = $(ratio "$w_cold" "$floor")x the floor (${floor}s); skopeo ${s_cold}s = $(ratio "$s_cold" "$floor")x the floor, $(ratio "$s_cold" "$w_cold")x wharf"

echo "== no-op re-run (requests on source and destination per image)"
# Requests on the source and on destination NAME, without the per-run `GET /v2/` checks.
image_requests() {
  echo $(( $(grep -c '"[A-Z]* /v2/[^ ]' "$work/source/log") + $(grep -c '"[A-Z]* /v2/[^ ]' "$work/$1/log") ))
}
count_noop() { # NAME DEST-LOG COMMAND...: sets SECS and PER_IMAGE
  local name=$1 log=$2
  shift 2
  local before
  before=$(image_requests "$log")
  timed_rss "$name" "$@"
  PER_IMAGE=$(python3 -c "print(f'{($(image_requests "$log") - $before) / $IMAGES:.2f}')")
}
count_noop wharf-noop-referrers wharf-dst "$wharf" sync --quiet --to "$WDST/mirror" "${sources[@]}"
w_noop_ref=$SECS; w_req_ref=$PER_IMAGE
count_noop wharf-noop wharf-dst "$wharf" sync --quiet --no-referrers --to "$WDST/mirror" "${sources[@]}"
w_noop=$SECS; w_req=$PER_IMAGE; w_noop_rss=$RSS
count_noop skopeo-noop skopeo-dst "${skopeo_sync[@]}" "$SDST/mirror"
s_noop=$SECS; s_req=$PER_IMAGE
echo "wharf ${w_noop_ref}s with referrers ($w_req_ref requests per image), ${w_noop}s without ($w_req); skopeo ${s_noop}s ($s_req): $(ratio "$s_noop" "$w_noop")x"

echo "== a second cold sync into a new prefix of the same registry"
timed_rss wharf-second "$wharf" sync --quiet --no-referrers --to "$WDST/second" "${sources[@]}"
w_second=$SECS
timed_rss wharf-second-nocache "$wharf" sync --quiet --no-referrers --no-cache --to "$WDST/third" "${sources[@]}"
w_second_nocache=$SECS
timed_rss skopeo-second "${skopeo_sync[@]}" "$SDST/second"
s_second=$SECS
echo "wharf ${w_second}s with its cache, ${w_second_nocache}s without; skopeo ${s_second}s: $(ratio "$s_second" "$w_second")x"

echo "== --images-at-once and -j (cold, --no-cache, each into a new prefix)"
sweep=()
for at_once in 4 16 32; do
  for jobs in 8 32 64; do
    timed_rss "sweep-$at_once-$jobs" "$wharf" sync --quiet --no-referrers --no-cache \
      --images-at-once "$at_once" -j "$jobs" --to "$WDST/sweep-$at_once-$jobs" "${sources[@]}"
    sweep+=("$at_once/$jobs: ${SECS}s")
    echo "  --images-at-once $at_once -j $jobs: ${SECS}s"
  done
done

echo "== $MANY images, one 1 KiB layer each"
python3 "$repo_root/bench/gen-layout.py" "$work/many" --images "$MANY" --layers 1 --layer-size 1K >/dev/null
{
  echo "images:"
  for i in $(seq 0 $((MANY - 1))); do
    echo "- source: oci:$work/many:img$i"
    echo "  destination: $SRC/many/img$i:v1"
  done
} >"$work/many-seed.yaml"
"$wharf" sync --quiet --no-referrers --images-at-once 32 --file "$work/many-seed.yaml" >/dev/null
{
  echo "images:"
  for i in $(seq 0 $((MANY - 1))); do echo "- source: $SRC/many/img$i:v1"; done
} >"$work/many.yaml"
timed_rss wharf-many-cold "$wharf" sync --quiet --file "$work/many.yaml" --to "$WDST/many"
m_cold=$SECS; m_cold_rss=$RSS
timed_rss wharf-many-noop "$wharf" sync --quiet --file "$work/many.yaml" --to "$WDST/many"
m_noop=$SECS; m_noop_rss=$RSS
echo "cold ${m_cold}s (RSS $m_cold_rss MiB), no-op ${m_noop}s (RSS $m_noop_rss MiB)"

echo "== one image with a single $BIG layer"
python3 "$repo_root/bench/gen-layout.py" "$work/big" --images 1 --layers 1 --layer-size "$BIG"
"$wharf" copy "oci:$work/big:img0" "$SRC/bench/big:v1" >/dev/null
layer=$(ls -S "$work/big/blobs/sha256" | head -1)
timed_rss wharf-big "$wharf" copy --no-referrers --no-cache "$SRC/bench/big:v1" "$WDST/big/wharf:v1"
w_big=$SECS; w_big_rss=$RSS
timed_rss skopeo-big skopeo copy --src-tls-verify=false --dest-tls-verify=false \
  "docker://$SRC/bench/big:v1" "docker://$SDST/big/skopeo:v1"
s_big=$SECS
# The floor: the same bytes from a local file in one streamed PUT (distribution ignores POST bodies).
location=$(curl -fsS -o /dev/null -D - -X POST "http://$FDST/v2/big/curl/blobs/uploads/" \
  | awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
case "$location" in http*) ;; *) location="http://$FDST$location" ;; esac
separator='?'; case "$location" in *\?*) separator='&' ;; esac
timed_rss curl-big curl -fsS -X PUT -H 'content-type: application/octet-stream' \
  -T "$work/big/blobs/sha256/$layer" "$location${separator}digest=sha256:$layer"
c_big=$SECS
[ "$(curl -fsS -o /dev/null -w '%{http_code}' -I "http://$FDST/v2/big/curl/blobs/sha256:$layer")" = 200 ] \
  || { echo "the curl upload did not land" >&2; exit 1; }
echo "wharf ${w_big}s (RSS ${w_big_rss} MiB), skopeo ${s_big}s, curl floor ${c_big}s: wharf/floor $(ratio "$w_big" "$c_big"), skopeo/wharf $(ratio "$s_big" "$w_big")x"

echo
echo "| date | cold: wharf, skopeo (x the floor) | no-op requests per image: wharf with referrers, without; skopeo | no-op time skopeo/wharf | second cold into a new prefix: wharf cached, uncached, skopeo | $MANY images: cold, no-op (peak RSS) | $BIG layer: wharf vs floor, skopeo/wharf |"
echo "|---|---|---|---|---|---|---|"
echo "| $(date +%F) | ${w_cold}s (**$(ratio "$w_cold" "$floor")x**), ${s_cold}s ($(ratio "$s_cold" "$floor")x); floor ${floor}s | **$w_req_ref**, **$w_req**; $s_req | ${s_noop}s / ${w_noop}s = $(ratio "$s_noop" "$w_noop")x | **${w_second}s**, ${w_second_nocache}s, ${s_second}s | ${m_cold}s ($m_cold_rss MiB), **${m_noop}s ($m_noop_rss MiB)** | ${w_big}s vs ${c_big}s ($(ratio "$w_big" "$c_big")), $(ratio "$s_big" "$w_big")x |"
echo "sweep (--images-at-once/-j): ${sweep[*]}"
echo "machine: $(machine)"
