#!/usr/bin/env bash
# `wharf serve` against Debian's docker-registry (distribution 2.8) in the same run: skopeo pushes a
# generated image set into each, then pulls it back; each round uses fresh registries on fresh ports so
# no tool can reuse earlier state. Prints the median times, their ratios, and each server's peak RSS.
#
# Then the same on S3-compatible storage (moto's standalone server on loopback): `wharf serve --storage
# s3://…` against docker-registry with its S3 driver, on the same moto, S3_IMAGES images.
#
#   bench/serve.sh            # 10 images x 8 layers x 4 MiB, 3 rounds; 4 images on S3
#   IMAGES=20 LAYER_SIZE=8M ROUNDS=5 S3_IMAGES=10 bench/serve.sh
source "$(dirname "$0")/lib.sh"

IMAGES=${IMAGES:-10}
LAYERS=${LAYERS:-8}
LAYER_SIZE=${LAYER_SIZE:-4M}
ROUNDS=${ROUNDS:-3}
S3_IMAGES=${S3_IMAGES:-4}

build_wharf
gen_set "$work/layout"
echo "image set: $IMAGES images x $LAYERS layers x $LAYER_SIZE ($SET_MIB MiB)"

push_all() {
  for i in $(seq 0 $((IMAGES - 1))); do
    skopeo copy -q --dest-tls-verify=false "oci:$work/layout:img$i" "docker://$1/bench/img$i:v1"
  done
}

pull_all() {
  rm -rf "$work/pulled"; mkdir -p "$work/pulled"
  for i in $(seq 0 $((IMAGES - 1))); do
    skopeo copy -q --src-tls-verify=false "docker://$1/bench/img$i:v1" "dir:$work/pulled/img$i"
  done
}

declare -A push pull rss cpu
for kind in wharf registry; do push[$kind]=""; pull[$kind]=""; rss[$kind]=""; cpu[$kind]=""; done
for round in $(seq "$ROUNDS"); do
  # Alternate the order so neither server always runs on a warmer page cache.
  order="wharf registry"; [ $((round % 2)) -eq 0 ] && order="registry wharf"
  for kind in $order; do
    name="$kind-$round"
    if [ "$kind" = wharf ]; then start_wharf_serve "$name"; else start_docker_registry "$name"; fi
    t0=$(now); push_all "$ADDR"; t1=$(now); pull_all "$ADDR"; t2=$(now)
    push[$kind]+=" $(elapsed "$t0" "$t1")"
    pull[$kind]+=" $(elapsed "$t1" "$t2")"
    stop "$name" "$PID"
    rss[$kind]+=" $RSS"
    cpu[$kind]+=" $CPU"
    rm -rf "$work/$name/data"
  done
done

wp=$(median ${push[wharf]}); rp=$(median ${push[registry]})
wl=$(median ${pull[wharf]}); rl=$(median ${pull[registry]})
wr=$(median ${rss[wharf]}); rr=$(median ${rss[registry]})
wc=$(median ${cpu[wharf]}); rc=$(median ${cpu[registry]})
table="| $(date +%F) | $IMAGES x $LAYERS x $LAYER_SIZE ($SET_MIB MiB), $ROUNDS rounds | ${wp}s vs ${rp}s (**$(ratio "$rp" "$wp")x**) | ${wl}s vs ${rl}s (**$(ratio "$rl" "$wl")x**) | ${wc}s vs ${rc}s (**$(ratio "$rc" "$wc")x**) | ${wr} vs ${rr} MiB |"
echo
echo "| date | image set | skopeo push, wall | skopeo pull, wall | server CPU (user+sys) | server peak RSS |"
echo "|---|---|---|---|---|---|"
echo "$table"
echo "machine: $(machine)"

echo
echo "== on S3 (moto): $S3_IMAGES images"
start_moto
IMAGES=$S3_IMAGES
declare -A s3push s3pull s3rss
for kind in wharf registry; do s3push[$kind]=""; s3pull[$kind]=""; s3rss[$kind]=""; done
for round in $(seq "$ROUNDS"); do
  order="wharf registry"; [ $((round % 2)) -eq 0 ] && order="registry wharf"
  for kind in $order; do
    name="s3-$kind-$round"
    make_bucket "$name"
    if [ "$kind" = wharf ]; then STORAGE="s3://$name" start_wharf_serve "$name"; else start_docker_registry_s3 "$name" "$name"; fi
    t0=$(now); push_all "$ADDR"; t1=$(now); pull_all "$ADDR"; t2=$(now)
    s3push[$kind]+=" $(elapsed "$t0" "$t1")"
    s3pull[$kind]+=" $(elapsed "$t1" "$t2")"
    stop "$name" "$PID"
    s3rss[$kind]+=" $RSS"
  done
done
wp=$(median ${s3push[wharf]}); rp=$(median ${s3push[registry]})
wl=$(median ${s3pull[wharf]}); rl=$(median ${s3pull[registry]})
wr=$(median ${s3rss[wharf]}); rr=$(median ${s3rss[registry]})
echo "| date | image set (S3 on moto) | skopeo push, wall | skopeo pull, wall | server peak RSS |"
echo "|---|---|---|---|---|"
echo "| $(date +%F) | $S3_IMAGES x $LAYERS x $LAYER_SIZE, $ROUNDS rounds | ${wp}s vs ${rp}s (**$(ratio "$rp" "$wp")x**) | ${wl}s vs ${rl}s (**$(ratio "$rl" "$wl")x**) | ${wr} vs ${rr} MiB |"

# Memory does not grow with blob size: one large blob pushed (streamed, monolithic) and pulled with curl.
BIG=${BIG:-1G}
python3 -c "import sys,os; n=int(sys.argv[1][:-1])<<{'K':10,'M':20,'G':30}[sys.argv[1][-1]]; f=open(sys.argv[2],'wb'); [f.write(os.urandom(1<<20)) for _ in range(n>>20)]" "$BIG" "$work/big.bin"
big_digest="sha256:$(sha256sum "$work/big.bin" | cut -d' ' -f1)"
start_wharf_serve big
t0=$(now)
curl -fsS -X POST -H 'content-type: application/octet-stream' -T "$work/big.bin" \
  "http://$ADDR/v2/bench/big/blobs/uploads?digest=$big_digest" -o /dev/null
t1=$(now)
curl -fsS "http://$ADDR/v2/bench/big/blobs/$big_digest" -o /dev/null
t2=$(now)
pulled=$(curl -fsS "http://$ADDR/v2/bench/big/blobs/$big_digest" | sha256sum | cut -d' ' -f1)
stop big "$PID"
[ "sha256:$pulled" = "$big_digest" ] || { echo "big blob came back different" >&2; exit 1; }
echo "one $BIG blob with curl: push $(elapsed "$t0" "$t1")s, pull $(elapsed "$t1" "$t2")s, wharf peak RSS $RSS MiB"
