#!/usr/bin/env bash
# wharf bundle copy of an imgpkg bundle of IMAGES images (3 nested bundles locking most of them, the
# root the rest), against the same images copied through wharf sync and skopeo sync, docker-registry
# 2.8 as source and destinations, in the same run:
#   1. cold: into empty registries
#   2. again: nothing to copy (requests counted in each destination's access log)
# Prints times, ratios (sync / bundle copy, skopeo / bundle copy) and wharf's peak RSS.
#
#   bench/bundle.sh
#   IMAGES=50 LAYERS=4 LAYER_SIZE=1M SHARED=2 bench/bundle.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-50}
LAYERS=${LAYERS:-4}
LAYER_SIZE=${LAYER_SIZE:-1M}
SHARED=${SHARED:-2}

build_wharf
gen_set "$work/set"
start_docker_registry source
SRC=$ADDR
seed_registry "$SRC" "$IMAGES"

digest_of() {
  "$wharf" inspect --output json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["descriptor"]["digest"])'
}

# bundle NAME REF...: pushes a bundle locking REF... to $SRC/bench/bundles/NAME:1; prints its reference.
bundle() {
  local name=$1 dir="$work/bundles/$1"
  shift
  mkdir -p "$dir/.imgpkg"
  echo "name: $name" >"$dir/values.yml"
  {
    echo "apiVersion: imgpkg.carvel.dev/v1alpha1"
    echo "kind: ImagesLock"
    echo "images:"
    for ref in "$@"; do echo "- image: $ref"; done
  } >"$dir/.imgpkg/images.yml"
  "$wharf" bundle push "$dir" "$SRC/bench/bundles/$name:1" >/dev/null
  echo "$SRC/bench/bundles/$name@$(digest_of "$SRC/bench/bundles/$name:1")"
}

refs=()
for i in $(seq 0 $((IMAGES - 1))); do
  refs+=("$SRC/bench/img$i@$(digest_of "$SRC/bench/img$i:v1")")
done
third=$((IMAGES * 3 / 10))
nested=()
for n in 0 1 2; do
  nested+=("$(bundle "nested$n" "${refs[@]:$((n * third)):$third}")")
done
bundle root "${nested[@]}" "${refs[@]:$((3 * third))}" >/dev/null

# The same images and bundle images, as plain images, for wharf sync and skopeo sync.
sources=()
for i in $(seq 0 $((IMAGES - 1))); do sources+=("$SRC/bench/img$i:v1"); done
for name in nested0 nested1 nested2 root; do sources+=("$SRC/bench/bundles/$name:1"); done
{
  echo "$SRC:"
  echo "  tls-verify: false"
  echo "  images:"
  for i in $(seq 0 $((IMAGES - 1))); do echo "    bench/img$i: ['v1']"; done
  for name in nested0 nested1 nested2 root; do echo "    bench/bundles/$name: ['1']"; done
} >"$work/skopeo.yaml"

ACCESSLOG_DISABLED=false start_docker_registry bundle-dst
BDST=$ADDR
ACCESSLOG_DISABLED=false start_docker_registry sync-dst
YDST=$ADDR
ACCESSLOG_DISABLED=false start_docker_registry skopeo-dst
SDST=$ADDR

echo "== cold: a bundle of $IMAGES images x $LAYERS layers x $LAYER_SIZE ($SHARED shared, $SET_MIB MiB), 3 nested bundles"
timed_rss bundle-cold "$wharf" bundle copy --no-referrers "$SRC/bench/bundles/root:1" "$BDST/copy/app"
b_cold=$SECS; b_cold_rss=$RSS
timed_rss sync-cold "$wharf" sync --quiet --no-referrers --to "$YDST/mirror" "${sources[@]}"
y_cold=$SECS
timed_rss skopeo-cold skopeo sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yaml" "$SDST/mirror"
s_cold=$SECS
echo "bundle copy ${b_cold}s (RSS ${b_cold_rss} MiB), wharf sync ${y_cold}s, skopeo sync ${s_cold}s:" \
  "sync/bundle $(ratio "$y_cold" "$b_cold")x, skopeo/bundle $(ratio "$s_cold" "$b_cold")x"
records=$(skopeo list-tags --tls-verify=false "docker://$BDST/copy/app" | grep -c 'image-locations.imgpkg' || true)
[ "$records" = 4 ] || { echo "expected 4 location records, found $records" >&2; exit 1; }

echo "== again: nothing to copy"
b_before=$(requests bundle-dst); y_before=$(requests sync-dst); s_before=$(requests skopeo-dst)
timed_rss bundle-noop "$wharf" bundle copy --no-referrers "$SRC/bench/bundles/root:1" "$BDST/copy/app"
b_noop=$SECS; b_noop_rss=$RSS
timed_rss sync-noop "$wharf" sync --quiet --no-referrers --to "$YDST/mirror" "${sources[@]}"
y_noop=$SECS
timed_rss skopeo-noop skopeo sync --src yaml --dest docker --dest-tls-verify=false "$work/skopeo.yaml" "$SDST/mirror"
s_noop=$SECS
b_req=$(( $(requests bundle-dst) - b_before )); y_req=$(( $(requests sync-dst) - y_before ))
s_req=$(( $(requests skopeo-dst) - s_before ))
echo "bundle copy ${b_noop}s ($b_req destination requests), wharf sync ${y_noop}s ($y_req), skopeo sync ${s_noop}s ($s_req):" \
  "sync/bundle $(ratio "$y_noop" "$b_noop")x, skopeo/bundle $(ratio "$s_noop" "$b_noop")x"

echo
echo "| date | set | cold: bundle copy, wharf sync, skopeo sync | again: times, destination requests | bundle copy peak RSS (cold, again) |"
echo "|---|---|---|---|---|"
echo "| $(date +%F) | $IMAGES x $LAYERS x $LAYER_SIZE, $SET_MIB MiB | ${b_cold} s, ${y_cold} s (**$(ratio "$y_cold" "$b_cold")x**), ${s_cold} s (**$(ratio "$s_cold" "$b_cold")x**) | ${b_noop} s / ${y_noop} s / ${s_noop} s; $b_req / $y_req / $s_req | ${b_cold_rss} / ${b_noop_rss} MiB |"
echo "Machine: $(machine)"
