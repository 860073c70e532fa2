#!/usr/bin/env bash
# Two node processes in two network namespaces joined by a veth pair (made
# and removed here; addresses exist only inside these namespaces) run the
# dsm-demo counter over tcp. Skips (exit 77) without root or iproute2.
set -euo pipefail
SSI=${1:?usage: netns_smoke.sh path/to/ssi}
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 to create network namespaces"
  exit 77
fi
# The machine secret (docs/security.md): both namespaces' processes inherit it.
SSI_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SSI_SECRET
tag="ssi$$"
a="$tag-a"; b="$tag-b"
cleanup() {
  ip netns pids "$a" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns pids "$b" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add "${tag}a" type veth peer name "${tag}b"
ip link set "${tag}a" netns "$a"
ip link set "${tag}b" netns "$b"
ip -n "$a" addr add 10.231.0.1/24 dev "${tag}a"
ip -n "$b" addr add 10.231.0.2/24 dev "${tag}b"
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
done
ip -n "$a" link set "${tag}a" up
ip -n "$b" link set "${tag}b" up

out=$(mktemp)
timeout 60 ip netns exec "$a" "$SSI" coordinator --listen 10.231.0.1:7470 --nodes 2 \
  --workload dsm-demo --rounds 2000 >"$out" 2>&1 &
coord=$!
sleep 0.3
timeout 60 ip netns exec "$a" "$SSI" node --coordinator 10.231.0.1:7470 --id 0 \
  --transport tcp --listen tcp:10.231.0.1:0 2>/dev/null &
timeout 60 ip netns exec "$b" "$SSI" node --coordinator 10.231.0.1:7470 --id 1 \
  --transport tcp --listen tcp:10.231.0.2:0 2>/dev/null &
rc=0
wait "$coord" || rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
  echo "FAIL: coordinator exited with $rc"
  exit 1
fi
grep -q "counter = 8000 (exact)" "$out" || { echo "FAIL: no exact counter in the output"; exit 1; }
echo "PASS: 2 nodes in 2 network namespaces agree on the DSM counter over tcp"
