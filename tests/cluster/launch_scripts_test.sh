#!/usr/bin/env bash
# scripts/launch-slurm against a stub srun (and launch-ssh against a stub
# ssh) whose hosts are two network namespaces joined by a veth pair (each
# end named eth0, as on a cluster): the coordinator runs on the first host
# at its eth0 address and a free port, the nodes join it, the run's exit
# code comes back, nothing is left behind.
# Skips (exit 77) without root or iproute2.
set -euo pipefail
ROOT=${1:?usage: launch_scripts_test.sh SOURCE_DIR path/to/ssi}
SSI=${2:?usage: launch_scripts_test.sh SOURCE_DIR path/to/ssi}
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 to create network namespaces"
  exit 77
fi
tag="slm$$"
a="$tag-h0"; b="$tag-h1"
out=$(mktemp); err=$(mktemp)
cleanup() {
  for ns in "$a" "$b"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$out" "$err"
}
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip link add "${tag}a" type veth peer name "${tag}b"
ip link set "${tag}a" netns "$a"; ip link set "${tag}b" netns "$b"
ip -n "$a" link set "${tag}a" name eth0; ip -n "$b" link set "${tag}b" name eth0
ip -n "$a" addr add 10.232.0.1/24 dev eth0; ip -n "$b" addr add 10.232.0.2/24 dev eth0
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done

slurm_env=(PATH="$ROOT/tests/cluster/launch_stubs:$PATH" STUB_HOSTS="$a $b" SLURM_JOB_ID=1 SLURM_NNODES=2
           SLURM_JOB_NODELIST="$a,$b" SSI_IFACE=eth0 SSI_BIN="$SSI")
launch() { env "${slurm_env[@]}" timeout 60 "$ROOT/scripts/launch-slurm" "$@"; }
fail() { echo "FAIL: $*"; echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"; exit 1; }
no_process_left() {
  sleep 0.2
  [ -z "$(ip netns pids "$a")$(ip netns pids "$b")" ] || fail "processes left: $(ip netns pids "$a") $(ip netns pids "$b")"
}

# 1. A run: exit 0, the result on stdout, the coordinator at 10.232.0.1.
rc=0; launch --workload dsm-demo --rounds 2000 >"$out" 2>"$err" || rc=$?
[ "$rc" -eq 0 ] || fail "exit $rc, expected 0"
grep -q "counter = 8000 (exact)" "$out" || fail "no exact counter on stdout"
grep -q "coordinator on 10.232.0.1:[1-9][0-9]*: waiting" "$err" || fail "coordinator not on eth0 of the first host"
no_process_left
echo "ok: run across 2 hosts"

# 2. A failure's code comes back: bad coordinator options (exit 2), at once.
rc=0; launch --workload nope >"$out" 2>"$err" || rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc, expected 2 for an unknown workload"
no_process_left
echo "ok: exit code 2 propagated"

# 3. SIGTERM (scancel) in the middle: everything stops, exit 143.
env "${slurm_env[@]}" "$ROOT/scripts/launch-slurm" --workload lab-counter --rounds 100000000 \
  >"$out" 2>"$err" &
pid=$!  # env execs the script: this is its pid
for _ in $(seq 100); do grep -q "2/2" "$err" && break; sleep 0.1; done
grep -q "2/2" "$err" || fail "nodes did not join"
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 2000 ] || fail "took $ms ms to stop after SIGTERM"
[ "$rc" -eq 143 ] || fail "exit $rc after SIGTERM, expected 143"
no_process_left
echo "ok: SIGTERM stops the machine in $ms ms"

# 4. launch-ssh from the first host: the same run over a stub ssh.
hostfile=$(mktemp)
printf '# hosts\n%s\n%s\n' "$a" "$b" >"$hostfile"
rc=0
ip netns exec "$a" env PATH="$ROOT/tests/cluster/launch_stubs:$PATH" SSI_IFACE=eth0 SSI_BIN="$SSI" \
  timeout 60 "$ROOT/scripts/launch-ssh" "$hostfile" --workload dsm-demo --rounds 2000 >"$out" 2>"$err" || rc=$?
rm -f "$hostfile"
[ "$rc" -eq 0 ] || fail "launch-ssh: exit $rc, expected 0"
grep -q "counter = 8000 (exact)" "$out" || fail "launch-ssh: no exact counter on stdout"
no_process_left
echo "ok: launch-ssh across 2 hosts"
