#!/usr/bin/env bash
# Two Ray nodes on this one machine (a head and a worker, 2 logical CPUs each), joined by the usual
# commands, then `arm train --distributed --address auto` on them; prints where every actor ran
# and the run's summary, and stops both nodes.
#
#   bash bench/two_nodes.sh [MINUTES] [OUT]
#
# The nodes use the loopback aliases 127.0.0.2 (head) and 127.0.0.3 (worker). Ray binds to the
# loopback interface only for 127.0.0.1, which it reserves to single-node clusters; on any other
# node IP its GCS and raylets listen on all interfaces, so this demo relies on token
# authentication (RAY_AUTH_MODE=token, the token in ~/.ray/auth_token) and is kept out of the
# test suite, where nothing may listen on a public address.
set -eo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-2}"
OUT="${2:-runs/two_nodes-$(date +%Y%m%d-%H%M%S)}"
source env.sh
set -u
export RAY_AUTH_MODE=token
PORT=6391
[ -s ~/.ray/auth_token ] || ray get-auth-token --generate >/dev/null
trap 'ray stop >/dev/null 2>&1 || true' EXIT
ray start --head --node-ip-address 127.0.0.2 --port "$PORT" --num-cpus 2 --include-dashboard false \
    --disable-usage-stats >/dev/null
ray start --address "127.0.0.2:$PORT" --node-ip-address 127.0.0.3 --num-cpus 2 --disable-usage-stats >/dev/null
ray status --address "127.0.0.2:$PORT" | sed -n '/Active:/,/Pending:/p'
arm train --distributed --algo qtopt --task grasp_bin --demos 20 --minutes "$MINUTES" --eval-every 500 \
    --eval-episodes 5 --collectors 2 --bellman-updaters 1 --address auto --out "$OUT"
