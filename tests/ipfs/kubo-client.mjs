// Drives an IPFS proxy with kubo-rpc-client, the JS client of Kubo's RPC API:
//
//   NODE_PATH=$(tests/ipfs/install.sh)/node_modules node tests/ipfs/kubo-client.mjs http://127.0.0.1:9095
//
// Steps: id (forwarded to the daemon), add of a small buffer, pin.add, pin.ls (must list the
// pin), repo.stat, pin.rm. One JSON line per step on stdout, {"step":..,"ok":true,...}; the first
// failure prints {"step":..,"ok":false,"error":..} and exits 1.
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

// ES modules ignore NODE_PATH, and kubo-rpc-client is ESM-only (no `require` export): find its
// package in the NODE_PATH folders and import its `import` entry by file URL.
async function loadClient () {
  const folders = (process.env.NODE_PATH ?? '').split(path.delimiter).filter(Boolean)
  for (const folder of folders) {
    const pkgDir = path.join(folder, 'kubo-rpc-client')
    const pkgFile = path.join(pkgDir, 'package.json')
    if (existsSync(pkgFile)) {
      const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'))
      const entry = pkg.exports?.['.']?.import ?? pkg.main ?? 'index.js'
      return import(pathToFileURL(path.join(pkgDir, entry)).href)
    }
  }
  return import('kubo-rpc-client')
}
const { create } = await loadClient()

const url = process.argv[2]
if (url == null) {
  console.error('usage: node kubo-client.mjs <proxy URL> [--keep]')
  process.exit(2)
}
const ipfs = create({ url, timeout: '60s' })

let current = 'setup'
function report (step, fields) {
  console.log(JSON.stringify({ step, ok: true, ...fields }))
}

try {
  current = 'id'
  const id = await ipfs.id()
  report('id', { id: id.id.toString(), agentVersion: id.agentVersion ?? null })

  current = 'add'
  const content = new TextEncoder().encode(`hello from kubo-rpc-client at ${new Date().toISOString()}\n`)
  const added = await ipfs.add(content)
  const cid = added.cid
  report('add', { cid: cid.toString(), size: added.size })

  current = 'pin.add'
  const pinned = await ipfs.pin.add(cid)
  report('pin.add', { cid: pinned.toString() })

  current = 'pin.ls'
  const pins = []
  for await (const pin of ipfs.pin.ls()) {
    pins.push({ cid: pin.cid.toString(), type: pin.type })
  }
  if (!pins.some((p) => p.cid === pinned.toString())) {
    throw new Error(`${pinned} is not in pin.ls: ${JSON.stringify(pins)}`)
  }
  report('pin.ls', { count: pins.length, pins: pins.slice(0, 10) })

  current = 'repo.stat'
  const stat = await ipfs.repo.stat()
  report('repo.stat', { repoSize: stat.repoSize.toString(), storageMax: stat.storageMax.toString() })

  // --keep: leave the pin in place, so the caller can check where the cluster put it.
  if (process.argv[3] !== '--keep') {
    current = 'pin.rm'
    const removed = await ipfs.pin.rm(pinned)
    report('pin.rm', { cid: removed.toString() })
  }
} catch (err) {
  console.log(JSON.stringify({ step: current, ok: false, error: String(err?.stack ?? err) }))
  process.exit(1)
}
