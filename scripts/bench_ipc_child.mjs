// Benchmark child for scripts/bench_ipc.py. Two modes, same operations, same values:
//   ipc:    under the runtime's permission flags, keys.get/keys.set of node-runtime's IPC auth
//           state with its key cache off (every op a round trip to Python, writes durable before
//           the answer); then the same rounds with the cache on (`get_cached`: the read of keys
//           just written is answered in Node);
//   legacy: plain Node, Baileys' own useMultiFileAuthState on a folder (argv[3]), in process.
// Prints/returns {get: [ms...], set: [ms...]} per-operation latencies measured with hrtime.
import { createHash } from 'node:crypto'
import { useMultiFileAuthState } from '@whiskeysockets/baileys'
import { createIpc } from '../node-runtime/ipc.mjs'
import { loadIpcAuthState } from '../node-runtime/auth-state.mjs'
import { makeLogger } from '../node-runtime/logger.mjs'

const bytes = (label) => createHash('sha256').update(label).digest()
const batch = (round, size) => {
  const data = { 'pre-key': {} }
  for (let i = 0; i < size; i++) {
    const id = String(round * size + i)
    data['pre-key'][id] = { public: bytes('pub' + id), private: bytes('priv' + id) }
  }
  return data
}

async function run (keys, n, size) {
  const set = []
  const get = []
  for (let r = 0; r < n; r++) {
    const data = batch(r, size)
    let t = process.hrtime.bigint()
    await keys.set(data)
    set.push(Number(process.hrtime.bigint() - t) / 1e6)
    t = process.hrtime.bigint()
    const got = await keys.get('pre-key', Object.keys(data['pre-key']))
    get.push(Number(process.hrtime.bigint() - t) / 1e6)
    if (Object.values(got).some((v) => !v)) throw new Error('a key written was not read back')
  }
  return { set, get }
}

const mode = process.argv[2]
if (mode === 'legacy') {
  const n = Number(process.argv[4])
  const size = Number(process.argv[5])
  const { state } = await useMultiFileAuthState(process.argv[3])
  await run(state.keys, Math.min(20, n), size) // warm-up
  process.stdout.write(JSON.stringify(await run(state.keys, n, size)) + '\n')
} else {
  const log = makeLogger('warn')
  const ipc = createIpc({ input: process.stdin, output: process.stdout, log })
  ipc.onEnd(() => process.exit(0))
  ipc.setCommandHandler(async (msg) => {
    const auth = await loadIpcAuthState(ipc, msg.s, log, { cache: false })
    const { n, size } = msg.args
    await run(auth.state.keys, Math.min(20, n), size) // warm-up
    const result = await run(auth.state.keys, n, size)
    const cached = await loadIpcAuthState(ipc, msg.s, log)
    result.get_cached = (await run(cached.state.keys, n, size)).get
    return result
  })
  process.stdin.resume()
}
