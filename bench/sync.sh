#!/usr/bin/env bash
# wharf sync against skopeo sync, registry to registry on loopback, Debian's docker-registry as source
# and destination for both tools, in the same run:
#   1. cold: IMAGES images x LAYERS layers x LAYER_SIZE with SHARED base layers
#   2. the same set again, nothing to do (requests counted in the destination's access log)
#   3. one image with a single BIG layer: wharf copy vs skopeo copy vs a bare curl upload of the bytes
# Prints ratios (skopeo time / wharf time) and wharf's peak RSS.
#
#   bench/sync.sh
#   IMAGES=20 LAYERS=8 LAYER_SIZE=2M SHARED=3 BIG=1G bench/sync.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-20}
LAYERS=${LAYERS:-8}
LAYER_SIZE=${LAYER_SIZE:-2M}
SHARED=${SHARED:-3}
BIG=${BIG:-1G}

build_wharf
gen_set "$work/set"

start_docker_registry source
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

echo "== cold: $IMAGES images x $LAYERS layers x $LAYER_SIZE, $SHARED shared ($SET_MIB MiB)"
timed_rss wharf-cold "$wharf" sync --quiet --no-referrers --to "$WDST/mirror" "${sources[@]}"
w_cold=$SECS; w_cold_rss=$RSS
timed_rss skopeo-cold skopeo sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yaml" "$SDST/mirror"
s_cold=$SECS
echo "wharf ${w_cold}s (RSS ${w_cold_rss} MiB), skopeo ${s_cold}s: $(ratio "$s_cold" "$w_cold")x"

echo "== no-op re-run"
w_before=$(requests wharf-dst); s_before=$(requests skopeo-dst)
timed_rss wharf-noop "$wharf" sync --quiet --no-referrers --to "$WDST/mirror" "${sources[@]}"
w_noop=$SECS; w_noop_rss=$RSS
timed_rss skopeo-noop skopeo sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yaml" "$SDST/mirror"
s_noop=$SECS
w_req=$(( $(requests wharf-dst) - w_before )); s_req=$(( $(requests skopeo-dst) - s_before ))
echo "wharf ${w_noop}s ($w_req destination requests), skopeo ${s_noop}s ($s_req): $(ratio "$s_noop" "$w_noop")x"

echo "== one image with a single $BIG layer"
python3 "$repo_root/bench/gen-layout.py" "$work/big" --images 1 --layers 1 --layer-size "$BIG"
"$wharf" copy "oci:$work/big:img0" "$SRC/bench/big:v1" >/dev/null
layer=$(ls -S "$work/big/blobs/sha256" | head -1)
timed_rss wharf-big "$wharf" copy --no-referrers "$SRC/bench/big:v1" "$WDST/big/wharf:v1"
w_big=$SECS; w_big_rss=$RSS
timed_rss skopeo-big skopeo copy --src-tls-verify=false --dest-tls-verify=false \
  "docker://$SRC/bench/big:v1" "docker://$SDST/big/skopeo:v1"
s_big=$SECS
# The floor: the same bytes from a local file in one streamed PUT (distribution ignores POST bodies).
location=$(curl -fsS -o /dev/null -D - -X POST "http://$WDST/v2/big/curl/blobs/uploads/" \
  | awk 'tolower($1) == "location:" {print $2}' | tr -d '\r')
case "$location" in http*) ;; *) location="http://$WDST$location" ;; esac
separator='?'; case "$location" in *\?*) separator='&' ;; esac
timed_rss curl-big curl -fsS -X PUT -H 'content-type: application/octet-stream' \
  -T "$work/big/blobs/sha256/$layer" "$location${separator}digest=sha256:$layer"
c_big=$SECS
[ "$(curl -fsS -o /dev/null -w '%{http_code}' -I "http://$WDST/v2/big/curl/blobs/sha256:$layer")" = 200 ] \
  || { echo "the curl upload did not land" >&2; exit 1; }
echo "wharf ${w_big}s (RSS ${w_big_rss} MiB), skopeo ${s_big}s, curl floor ${c_big}s: wharf/floor $(ratio "$w_big" "$c_big"), skopeo/wharf $(ratio "$s_big" "$w_big")x"

echo
echo "| date | cold sync (skopeo/wharf) | no-op re-run (skopeo/wharf), requests | $BIG layer: wharf vs floor, skopeo/wharf | wharf peak RSS (cold, no-op, big) |"
echo "|---|---|---|---|---|"
echo "| $(date +%F) | ${s_cold}s / ${w_cold}s = **$(ratio "$s_cold" "$w_cold")x** | ${s_noop}s / ${w_noop}s = **$(ratio "$s_noop" "$w_noop")x**, $w_req vs $s_req | ${w_big}s vs ${c_big}s (**$(ratio "$w_big" "$c_big")**), **$(ratio "$s_big" "$w_big")x** | $w_cold_rss, $w_noop_rss, $w_big_rss MiB |"
echo "machine: $(machine)"
