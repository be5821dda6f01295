#!/usr/bin/env bash
# wharf component list of VERSIONS component versions (COMPONENTS components) from the catalog,
# against a scan of the same registry without it, on wharf serve (referrers API) and on
# docker-registry 2.8 (no referrers API: the fallback index and the entries' tags). Requests are
# counted in each registry's access log.
#
#   bench/catalog.sh
#   COMPONENTS=100 VERSIONS=1000 bench/catalog.sh
source "$(dirname "$0")/lib.sh"

COMPONENTS=${COMPONENTS:-100}
VERSIONS=${VERSIONS:-1000}

build_wharf
{
  echo "components:"
  for i in $(seq 0 $((VERSIONS - 1))); do
    echo "- name: bench.example/c$((i % COMPONENTS))"
    echo "  version: 1.$((i / COMPONENTS)).0"
    echo "  provider:"
    echo "    name: provider$((i % 3))"
  done
} >"$work/constructor.yaml"
"$wharf" component build "$work/constructor.yaml" --to "ctf:$work/source.ctf" >/dev/null

start_wharf_serve served --access-log "$work/served/access.log"
SERVED=$ADDR
ACCESSLOG_DISABLED=false start_docker_registry docker
DOCKER=$ADDR

served_requests() { wc -l <"$work/served/access.log"; }

# measure NAME COUNTER ARGS...: one listing, its time and its requests; sets SECS, REQ and ROWS.
measure() {
  local name=$1 counter=$2
  shift 2
  local before
  before=$($counter)
  timed_rss "$name" "$wharf" component list --output json "$@"
  REQ=$(( $($counter) - before ))
  ROWS=$(python3 -c "import json; print(len(json.load(open('$work/$name.out'))))" 2>/dev/null \
    || grep -c '"digest"' "$work/$name.out")
  [ "$ROWS" = "$VERSIONS" ] || { echo "$name listed $ROWS versions, not $VERSIONS" >&2; exit 1; }
}

docker_requests() { requests docker; }

for target in served docker; do
  if [ $target = served ]; then addr=$SERVED; counter=served_requests; else addr=$DOCKER; counter=docker_requests; fi
  echo "== $target: writing $VERSIONS component versions with their catalog entries"
  timed_rss "$target-write" "$wharf" sync --quiet "ctf:$work/source.ctf" --to "$addr/ocm"
  echo "written in ${SECS}s"
  # The first listing also learns whether the registry has the referrers API: list twice, keep the second.
  measure "$target-catalog-warm" $counter "$addr/ocm"
  measure "$target-catalog" $counter "$addr/ocm"
  c_secs=$SECS; c_req=$REQ; c_rss=$RSS
  measure "$target-scan" $counter --scan "$addr/ocm"
  s_secs=$SECS; s_req=$REQ
  echo "catalog ${c_secs}s, $c_req requests (RSS $c_rss MiB); scan ${s_secs}s, $s_req requests: $(ratio "$s_secs" "$c_secs")x"
  eval "${target}_row='${c_secs} s, $c_req requests | ${s_secs} s, $s_req requests (**$(ratio "$s_secs" "$c_secs")x**)'"
done

echo
echo "| date | versions | wharf serve: catalog | wharf serve: scan | docker-registry: catalog | docker-registry: scan |"
echo "|---|---|---|---|---|---|"
echo "| $(date +%F) | $VERSIONS ($COMPONENTS components) | ${served_row/ | / | } | ${docker_row/ | / | } |"
echo "Machine: $(machine)"
