# Shared by scripts/launch-slurm and scripts/launch-ssh (sourced).

# The IPv4 address this host has on the cluster network: on interface
# $SSI_IFACE if set, else the source address of the default route.
ssi_local_address() {
  if [ -n "${SSI_IFACE:-}" ]; then
    ip -4 -o addr show dev "$SSI_IFACE" | awk '{split($4, a, "/"); print a[1]; exit}'
  else
    ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}'
  fi
}

# Reads the coordinator's stderr from fd 3 (forwarding every line to ours)
# until it names the address it listens on; prints that HOST:PORT. Fails
# when the coordinator ends first or after $1 seconds.
ssi_coordinator_address() {
  local line deadline=$((SECONDS + $1))
  while [ $SECONDS -lt $deadline ] && IFS= read -r -t $((deadline - SECONDS)) line <&3; do
    echo "$line" >&2
    if [[ $line =~ coordinator\ on\ ([^ ]+):\ waiting ]]; then
      echo "${BASH_REMATCH[1]}"
      return 0
    fi
  done
  return 1
}

# The exit code of the run: the coordinator's (it knows why the machine
# ended), or the nodes' when the coordinator succeeded but a node did not.
ssi_run_exit_code() {
  local coord_rc=$1 nodes_rc=$2
  if [ "$coord_rc" -ne 0 ]; then echo "$coord_rc"; else echo "$nodes_rc"; fi
}

# Waits for background job $1 and sets SSI_RC to its exit code, waiting
# through trapped signals (they make `wait` return while the job still
# runs). Not in $(...): a subshell cannot wait for our jobs.
ssi_wait() {
  while :; do
    SSI_RC=0; wait "$1" || SSI_RC=$?
    kill -0 "$1" 2>/dev/null || return 0
  done
}

# The machine secret every process of the machine proves (docs/security.md).
# Keeps SSI_SECRET / SSI_SECRET_FILE when the caller set one; otherwise makes
# a fresh one in a 0600 file under ~/.ssi (on a cluster the home directory
# is usually shared, so every host sees the same path) and exports its path.
# The secret itself never appears on a command line.
ssi_ensure_secret() {
  [ -n "${SSI_SECRET:-}" ] || [ -n "${SSI_SECRET_FILE:-}" ] && return 0
  local dir="${HOME:-/tmp}/.ssi"
  mkdir -p "$dir" && chmod 700 "$dir"
  SSI_SECRET_FILE=$(mktemp "$dir/secret.XXXXXX")
  chmod 600 "$SSI_SECRET_FILE"
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$SSI_SECRET_FILE"
  export SSI_SECRET_FILE
  SSI_SECRET_MADE=$SSI_SECRET_FILE
}
