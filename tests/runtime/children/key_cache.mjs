// Stand-in child under the runtime's permission flags that drives the REAL auth-state module (and
// its key cache) over IPC, one command per step, so the test can count what crosses the pipe.
// Values travel as their stored JSON text both ways.
import { BufferJSON } from '@whiskeysockets/baileys'
import { createIpc } from '../../../node-runtime/ipc.mjs'
import { loadIpcAuthState, pipelineWrites } from '../../../node-runtime/auth-state.mjs'
import { makeLogger } from '../../../node-runtime/logger.mjs'

const log = makeLogger('fatal')
const ipc = createIpc({ input: process.stdin, output: process.stdout, log })
ipc.onEnd(() => process.exit(0))
let auth = null
let faults = 0

const revived = (data) => {
  const out = {}
  for (const type in data) {
    out[type] = {}
    for (const id in data[type]) out[type][id] = data[type][id] === null ? null : JSON.parse(data[type][id], BufferJSON.reviver)
  }
  return out
}
const texts = (found) => Object.fromEntries(Object.entries(found).map(([id, v]) => [id, v === null || v === undefined ? null : JSON.stringify(v, BufferJSON.replacer)]))

const steps = {
  open: async ({ cache }) => {
    auth = await loadIpcAuthState(ipc, 'alice', log, { cache: cache ?? {}, onWriteFault: () => { faults++ } })
    return {}
  },
  get: async ({ type, ids }) => texts(await auth.state.keys.get(type, ids)),
  set: async ({ data }) => { await auth.state.keys.set(revived(data)); return {} },
  // Every batch sent in the same tick, as Baileys does for the key types of one write.
  set_same_tick: async ({ batches }) => { await Promise.all(batches.map((b) => auth.state.keys.set(revived(b)))); return {} },
  // A read and a write of the same key in flight together; then what the cache serves.
  race: async ({ type, id, text }) => {
    const read = auth.state.keys.get(type, [id])
    const write = auth.state.keys.set(revived({ [type]: { [id]: text } }))
    await Promise.all([read, write])
    return texts(await auth.state.keys.get(type, [id]))
  },
  // A send's writes (pipelineWrites): whether the write resolved before Python answered it, what
  // a read serves meanwhile, then the outcome of its durability.
  pipelined: async ({ data, read }) => {
    const { result, durable } = await pipelineWrites(async () => {
      await auth.state.keys.set(revived(data))
      const unanswered = auth.cache.pending.size
      return { unanswered, served: texts(await auth.state.keys.get(read.type, read.ids)) }
    })
    try {
      await durable
      return { ...result, durable: true }
    } catch (err) {
      return { ...result, durable: false, error: String(err?.message ?? err), authWrite: err?.authWrite === true }
    }
  },
  stats: async () => ({ ...auth.cache.stats, entries: auth.cache.entries.size, bytes: auth.cache.bytes, faults })
}

ipc.setCommandHandler(async (msg) => {
  const step = Object.hasOwn(steps, msg.cmd) ? steps[msg.cmd] : null
  if (!step) throw new Error(`unknown step ${msg.cmd}`)
  return step(msg.args ?? {})
})
process.stdin.resume()
