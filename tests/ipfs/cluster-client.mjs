// Drives a Cairn cluster with the real IPFS Cluster client `@nftstorage/ipfs-cluster` (installed
// by install.sh next to js-ipfs), unchanged. Prints one JSON line per step and exits non-zero on
// the first failure, naming the step.
//
//   node cluster-client.mjs <REST API URL> <number of peers>
import { pathToFileURL } from 'node:url'

const [url, peerCount] = process.argv.slice(2)
const dir = process.env.CAIRN_JSIPFS_DIR
if (!url || !peerCount || !dir) {
  console.error('usage: CAIRN_JSIPFS_DIR=<install dir> node cluster-client.mjs <url> <peers>')
  process.exit(2)
}
const { Cluster } = await import(
  pathToFileURL(`${dir}/node_modules/@nftstorage/ipfs-cluster/src/index.js`).href
)
const cluster = new Cluster(url)
const peers = Number(peerCount)

function check (cond, what, value) {
  if (!cond) throw new Error(`${what}: ${JSON.stringify(value)}`)
}
async function step (name, fn) {
  try {
    const result = await fn()
    console.log(JSON.stringify({ step: name, ok: true, result }))
    return result
  } catch (e) {
    console.log(JSON.stringify({ step: name, ok: false, error: String(e?.stack || e) }))
    process.exit(1)
  }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function waitStatus (cid, what, pred) {
  for (let i = 0; i < 240; i++) {
    const s = await cluster.status(cid)
    if (pred(Object.values(s.peerMap || {}).map((p) => p.status))) return s
    await sleep(500)
  }
  throw new Error(`timed out waiting for ${what} on ${cid}`)
}
const count = (statuses, st) => statuses.filter((s) => s === st).length

await step('version', async () => {
  const v = await cluster.version()
  check(typeof v === 'string' && v.length > 0, 'version', v)
  return v
})
const me = await step('id', async () => {
  const info = await cluster.info()
  check(info.id && info.peerName && info.ipfs?.id, 'id fields', info)
  return info
})
await step('peers', async () => {
  const list = await cluster.peerList()
  check(list.length === peers, `${peers} peers`, list.map((p) => p.id))
  check(list.some((p) => p.id === me.id), 'this peer listed', list.map((p) => p.id))
  return list.map((p) => p.id)
})
const content = new TextEncoder().encode(`cairn npm client ${Date.now()}\n`.repeat(20000))
const added = await step('add', async () => {
  const out = await cluster.add(new Blob([content]), {
    name: 'npm-add',
    replicationFactorMin: 2,
    replicationFactorMax: 2
  })
  check(typeof out.cid === "string" && out.cid.startsWith("bafy"), "a dag-pb CIDv1 root (cid-version 1, more than one chunk)", out)
  check(out.size > content.length, 'size counts the DAG', out)
  check(Array.isArray(out.allocations) && out.allocations.length === 2, 'two allocations', out)
  return out
})
const cid = added.cid
await step('status after add', async () => {
  const s = await waitStatus(cid, 'two pinned', (st) => count(st, 'pinned') === 2)
  check(s.name === 'npm-add', 'name', s)
  return s.peerMap
})
await step('pin with options', async () => {
  const pin = await cluster.pin(cid, {
    name: 'renamed-by-npm',
    replicationFactorMin: 1,
    replicationFactorMax: 2,
    metadata: { source: 'npm' }
  })
  check(pin.cid === cid, 'cid', pin)
  check(pin.name === 'renamed-by-npm', 'name', pin)
  check(pin.replicationFactorMin === 1 && pin.replicationFactorMax === 2, 'replication', pin)
  check(pin.metadata?.source === 'npm', 'metadata', pin)
  check(pin.allocations.length >= 1 && pin.allocations.length <= 2, 'allocations', pin)
  return pin
})
await step('allocation', async () => {
  const pin = await cluster.allocation(cid)
  check(pin.cid === cid && pin.name === 'renamed-by-npm', 'allocation', pin)
  check(pin.allocations.every((a) => typeof a === 'string'), 'peer ids', pin)
  return pin.allocations
})
await step('status', async () => {
  const s = await waitStatus(cid, 'pinned and remote', (st) => count(st, 'pinned') >= 1 && st.length === peers)
  check(Object.values(s.peerMap).every((p) => p.timestamp instanceof Date && p.peerName), 'peer map', s)
  return s.peerMap
})
await step('statusAll', async () => {
  const all = await cluster.statusAll()
  check(all.some((s) => s.cid === cid), 'lists the pin', all.map((s) => s.cid))
  return all.length
})
await step('recover', async () => {
  const s = await cluster.recover(cid)
  check(s.cid === cid && Object.keys(s.peerMap).length === peers, 'recover answer', s)
  return s.peerMap
})
await step('metricNames', async () => {
  const names = await cluster.metricNames()
  check(names.includes('ping') && names.includes('freespace'), 'ping and freespace', names)
  return names
})
await step('addDirectory', async () => {
  const files = [
    new File([new TextEncoder().encode('first file')], 'a.txt'),
    new File([new TextEncoder().encode('second file')], 'b.txt')
  ]
  const out = await cluster.addDirectory(files)
  check(Array.isArray(out) && out.length === 3, 'two files and the wrapping directory', out)
  check(out.every((o) => typeof o.cid === 'string'), 'CIDs as strings', out)
  check(out[2].allocations?.length > 0 || out[2].name === '', 'the wrapping directory last', out)
  return out.map((o) => [o.name, o.cid])
})
await step('unpin', async () => {
  const pin = await cluster.unpin(cid)
  check(pin.cid === cid, 'unpinned pin', pin)
  await waitStatus(cid, 'unpinned everywhere', (st) => st.every((s) => s === 'unpinned'))
  return pin.cid
})
console.log(JSON.stringify({ step: 'done', ok: true, cid }))
