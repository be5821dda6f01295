#!/usr/bin/env bash
# Air-gap archives, in the same run: export a generated set from a registry into an OCI archive and
# import it into a fresh registry, wharf against skopeo, both against the disk's own fsync'd write speed.
#   1. the disk: dd of the set's size with conv=fdatasync
#   2. export: `wharf sync --to oci-archive:FILE` (the whole set in one archive) vs `skopeo copy
#      docker://... oci-archive:FILE` (an oci-archive holds one image for skopeo, so one per image)
#   3. import: `wharf sync oci-archive:FILE --to REGISTRY` vs `skopeo copy oci-archive:FILE docker://...`
# The registries are `wharf serve` (which fsyncs every blob). Prints throughputs and ratios.
#
#   bench/archive.sh
#   IMAGES=8 LAYERS=8 LAYER_SIZE=32M bench/archive.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-8}
LAYERS=${LAYERS:-8}
LAYER_SIZE=${LAYER_SIZE:-32M}

build_wharf
gen_set "$work/set"

start_wharf_serve source
SRC=$ADDR
seed_registry "$SRC" "$IMAGES"
sources=()
for i in $(seq 0 $((IMAGES - 1))); do sources+=("$SRC/bench/img$i:v1"); done
mibps() { python3 -c "print(f'{$SET_MIB / $1:.0f}')"; }
# The source stands for a registry elsewhere: its blobs are read from memory, so that the export
# measures writing the archive, not this disk reading and writing at once.
warm_source() { find "$work/source/data" -type f -exec cat {} + >/dev/null; }

echo "== disk: $SET_MIB MiB with dd conv=fdatasync, median of 3"
runs=()
for _ in 1 2 3; do
  sync
  t0=$(now)
  dd if=/dev/zero of="$work/dd.bin" bs=1M count="$SET_MIB" conv=fdatasync status=none
  runs+=("$(elapsed "$t0" "$(now)")")
  rm "$work/dd.bin"
done
d_secs=$(median "${runs[@]}")
echo "${runs[*]} s: $(mibps "$d_secs") MiB/s"

echo "== export: $IMAGES images x $LAYERS layers x $LAYER_SIZE into OCI archives"
sync
warm_source
timed_rss wharf-export "$wharf" sync --quiet --no-referrers --to "oci-archive:$work/wharf.tar" \
  "${sources[@]}"
w_exp=$SECS
w_exp_rss=$RSS
sync
warm_source
t0=$(now)
for i in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --src-tls-verify=false "docker://$SRC/bench/img$i:v1" \
    "oci-archive:$work/skopeo$i.tar:v1"
done
sync
s_exp=$(elapsed "$t0" "$(now)")
echo "wharf ${w_exp}s ($(mibps "$w_exp") MiB/s, $(ratio "$d_secs" "$w_exp") of the disk, RSS ${w_exp_rss} MiB)," \
  "skopeo ${s_exp}s ($(mibps "$s_exp") MiB/s): $(ratio "$s_exp" "$w_exp")x"

echo "== import into a fresh registry"
start_wharf_serve wharf-dst
WDST=$ADDR
start_wharf_serve skopeo-dst
SDST=$ADDR
sync
timed_rss wharf-import "$wharf" sync --quiet --no-referrers "oci-archive:$work/wharf.tar" \
  --to "$WDST/imported"
w_imp=$SECS
w_imp_rss=$RSS
t0=$(now)
for i in $(seq 0 $((IMAGES - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "oci-archive:$work/skopeo$i.tar:v1" \
    "docker://$SDST/imported/img$i:v1"
done
s_imp=$(elapsed "$t0" "$(now)")
for i in 0 $((IMAGES - 1)); do
  [ "$("$wharf" inspect --output json "$WDST/imported/bench/img$i:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["descriptor"]["digest"])')" \
    = "$("$wharf" inspect --output json "$SRC/bench/img$i:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["descriptor"]["digest"])')" ] \
    || { echo "img$i did not arrive intact" >&2; exit 1; }
done
echo "wharf ${w_imp}s ($(mibps "$w_imp") MiB/s, $(ratio "$d_secs" "$w_imp") of the disk, RSS ${w_imp_rss} MiB)," \
  "skopeo ${s_imp}s ($(mibps "$s_imp") MiB/s): $(ratio "$s_imp" "$w_imp")x"

echo
echo "| date | set | disk (dd fdatasync) | export: wharf, of disk, vs skopeo | import: wharf, of disk, vs skopeo | wharf peak RSS (export, import) |"
echo "|---|---|---|---|---|---|"
echo "| $(date +%F) | $IMAGES x $LAYERS x $LAYER_SIZE ($SET_MIB MiB) | $(mibps "$d_secs") MiB/s | $(mibps "$w_exp") MiB/s, **$(ratio "$d_secs" "$w_exp")**, **$(ratio "$s_exp" "$w_exp")x** | $(mibps "$w_imp") MiB/s, **$(ratio "$d_secs" "$w_imp")**, **$(ratio "$s_imp" "$w_imp")x** | $w_exp_rss, $w_imp_rss MiB |"
echo "machine: $(machine)"
