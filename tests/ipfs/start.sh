#!/bin/bash
# Starts a real Kubo-RPC-compatible IPFS daemon (js-ipfs 0.66.1) isolated on loopback:
#
#   tests/ipfs/start.sh <repo-dir> <api-port> <swarm-port>
#
# API on /ip4/127.0.0.1/tcp/<api-port>, swarm on /ip4/127.0.0.1/tcp/<swarm-port>; no gateway, no
# gRPC, no bootstrap peers, no mDNS, no DHT, no delegates, no NAT port mapping, no preload. The
# daemon is "online" only so that two test daemons can `swarm/connect` to each other; it knows no
# other peer. Set CAIRN_JSIPFS_OFFLINE=1 to run it with --offline instead (no swarm at all), and
# CAIRN_JSIPFS_EXIT_WITH_PARENT=1 to make it exit when the process that ran this script is gone.
#
# The repo is created on first use and re-configured on every start (so the ports may change);
# the daemon's pid is this script's pid (exec), so SIGTERM stops it. The install comes from
# $CAIRN_JSIPFS_DIR, else from install.sh (cached outside the clone).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ne 3 ]; then
  echo "usage: $0 <repo-dir> <api-port> <swarm-port>" >&2
  exit 2
fi
repo="$1" api_port="$2" swarm_port="$3"
jsipfs="${CAIRN_JSIPFS_DIR:-$("$here/install.sh")}"
cli="$jsipfs/node_modules/ipfs/src/cli.js"
[ -f "$cli" ] || { echo "start.sh: no js-ipfs at $jsipfs (run tests/ipfs/install.sh)" >&2; exit 1; }

mkdir -p "$repo"
export IPFS_PATH="$(cd "$repo" && pwd)"
# Node 20 lacks Promise.withResolvers, which js-ipfs's dependencies call (see withresolvers.cjs).
export NODE_OPTIONS="--require $here/withresolvers.cjs${NODE_OPTIONS:+ $NODE_OPTIONS}"

if [ ! -f "$IPFS_PATH/config" ]; then
  # --empty-repo: no default pins, so pin listings hold only what the test adds.
  node "$cli" init --empty-repo >/dev/null
fi

node - "$IPFS_PATH/config" "$api_port" "$swarm_port" <<'JS'
const fs = require('fs')
const [file, api, swarm] = process.argv.slice(2)
const c = JSON.parse(fs.readFileSync(file, 'utf8'))
c.Addresses = {
  ...c.Addresses,
  API: `/ip4/127.0.0.1/tcp/${api}`,
  Gateway: '',          // serverCreator treats '' as no gateway
  RPC: '',              // and as no gRPC server
  Swarm: [`/ip4/127.0.0.1/tcp/${swarm}`],
  Announce: [],
  NoAnnounce: [],
  Delegates: []
}
c.Bootstrap = []
c.Discovery = { ...c.Discovery, MDNS: { Enabled: false }, webRTCStar: { Enabled: false } }
c.Routing = { ...c.Routing, Type: 'none' }   // no DHT (js-ipfs defaults to a DHT client)
c.Swarm = { ...c.Swarm, DisableNatPortMap: true }   // no UPnP/NAT-PMP on the LAN
fs.writeFileSync(file, JSON.stringify(c, null, 2))
JS

# A daemon killed with SIGKILL leaves its repo.lock directory behind, which blocks the next start.
rm -rf "$IPFS_PATH/repo.lock"
if [ "${CAIRN_JSIPFS_EXIT_WITH_PARENT:-0}" = 1 ]; then
  export NODE_OPTIONS="$NODE_OPTIONS --require $here/exit-with-parent.cjs"
fi
offline=()
[ "${CAIRN_JSIPFS_OFFLINE:-0}" = 1 ] && offline=(--offline)
exec node "$cli" daemon --enable-preload=false "${offline[@]}"
