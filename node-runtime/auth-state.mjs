// Baileys' {creds, keys} auth state where every read and write is an IPC request to Python.
// Values travel as the exact text of JSON.stringify(value, BufferJSON.replacer), the bytes
// useMultiFileAuthState would write; reads are revived exactly as it revives them.
import { AsyncLocalStorage } from 'node:async_hooks'
import { BufferJSON, initAuthCreds, proto } from '@whiskeysockets/baileys'
import { SET_MERGE_BYTES, SET_MERGE_KEYS } from './defaults.mjs'
import { KeyCache } from './key-cache.mjs'
import { keepSignalJobsInTheirContext } from './signal-context.mjs'

// Every read and write below must reach the right socket's key transaction (signal-context.mjs).
keepSignalJobsInTheirContext()

// A send's key writes, pipelined: { writes: [durable promises], open, wanted } (see `pipelineWrites`).
const pipelines = new AsyncLocalStorage()

// Runs `work` (one send: Baileys' relayMessage) with the key writes it makes pipelined, and
// resolves to { result, durable }: `durable` settles once every one of them is durable, and
// rejects (with `authWrite`) if one was not.
//
// Why: Baileys sends the stanza inside its per-account key transaction and commits the keys after
// it, holding the transaction until the commit resolves; each send of an account waits for the one
// before. A plain in-process Baileys' commit is a write into the page cache. Ours is a round trip
// to Python and an fdatasync, and the next send only needs the new keys in memory, not on disk,
// to encrypt. So within `work` a key write resolves once it is sent to Python (served meanwhile by
// the cache as provisional), and the send is answered `persisted: true` only when `durable` is.
// What is given up: a crash in that window leaves the disk behind messages that went out, as it
// already could for the one message whose commit was in flight; a failed write still faults the
// socket at once (`onWriteFault`). Receiving never pipelines (received.mjs).
//
// `wanted()` is asked at each write: a write is pipelined only when it says yes (the caller: when
// another send of the account is in flight). A lone sender gains nothing from it, its next send
// starts after this answer, so it keeps the narrower crash window.
export async function pipelineWrites (work, wanted = () => true) {
  const pipeline = { writes: [], open: true, wanted }
  try {
    const result = await pipelines.run(pipeline, work)
    return { result, durable: Promise.all(pipeline.writes).then(() => undefined) }
  } finally {
    pipeline.open = false
  }
}

const isStorageFault = (err) => typeof err?.code === 'string' && err.code.startsWith('storage_')

// `onWriteFault(err)` is called once, at the first write Python could not make durable (or the
// first read storage refused): from then on the caller must stop using the socket (the Signal
// state in memory is ahead of the disk, or a message could be acked without being decrypted).
// Such errors carry `authWrite: true`, so a send can tell "the message went out, its keys were
// not stored" from "nothing was sent".
//
// Reads go through a bounded `KeyCache` (key-cache.mjs; `cache: false` turns it off, an object
// sets its bounds): a hit costs no round trip. Writes still resolve only once Python answered
// that they are durable, except a send's while others are in flight (`pipelineWrites`). Writes
// sent in the same tick (Baileys writes each key type of a batch separately) travel as one
// `auth.set`: one journal record and one fdatasync instead of several.
export async function loadIpcAuthState (ipc, session, log, { onWriteFault = () => { /* no listener: the failed write still rejects */ }, cache: cacheOptions = {} } = {}) {
  const text = await ipc.request(session, 'auth.load', {})
  const fresh = text === null || text === undefined
  const creds = fresh ? initAuthCreds() : JSON.parse(text, BufferJSON.reviver)
  const inflight = new Set()
  let saveChain = Promise.resolve()
  let lastError = null

  let faulted = false
  const track = (promise) => {
    const p = promise.catch((err) => {
      lastError = err
      if (err && typeof err === 'object') err.authWrite = true
      log.error({ err: String(err?.message ?? err) }, 'auth write was not made durable')
      if (!faulted) {
        faulted = true
        onWriteFault(err)
      }
      throw err
    })
    inflight.add(p)
    p.then(() => inflight.delete(p), () => inflight.delete(p))
    return p
  }

  // creds.save requests are serialised: each writes the creds as they are when it is sent.
  const saveCreds = () => {
    const next = saveChain.then(() => ipc.request(session, 'creds.save', { creds: JSON.stringify(creds, BufferJSON.replacer) }))
    saveChain = next.catch(() => { /* reported through track(next); the chain only orders saves */ })
    return track(next)
  }

  const cache = cacheOptions === false ? null : new KeyCache(cacheOptions)
  const revive = (type, raw) => {
    let value = raw === null || raw === undefined ? null : JSON.parse(raw, BufferJSON.reviver)
    if (type === 'app-state-sync-key' && value) value = proto.Message.AppStateSyncKeyData.fromObject(value)
    return value
  }

  // The auth.set being gathered this tick: { data, count, bytes, sent } (see SET_MERGE_*).
  let gathering = null
  const sendSet = (batch, count, bytes) => {
    if (gathering && (gathering.count + count > SET_MERGE_KEYS || gathering.bytes + bytes > SET_MERGE_BYTES)) gathering = null
    if (!gathering) {
      const open = gathering = { data: {}, count: 0, bytes: 0 }
      open.sent = new Promise((resolve) => queueMicrotask(resolve)).then(() => {
        if (gathering === open) gathering = null
        return ipc.request(session, 'auth.set', { data: open.data })
      })
    }
    for (const type in batch) Object.assign(gathering.data[type] ??= {}, batch[type])
    gathering.count += count
    gathering.bytes += bytes
    return gathering.sent
  }

  const keys = {
    async get (type, ids) {
      const data = {}
      const missing = []
      for (const id of ids) {
        const cached = cache ? cache.lookup(type, id) : { hit: false }
        if (cached.hit) data[id] = revive(type, cached.text)
        else missing.push(id)
      }
      if (!missing.length) return data
      const mark = cache?.mark()
      let found
      try {
        found = await ipc.request(session, 'auth.get', { type, ids: missing })
      } catch (err) {
        // A key Python cannot read (permission, I/O) would make Baileys fail to decrypt and then
        // ack the message, which WhatsApp would drop for good: stop the socket like a failed write,
        // so nothing is acked and the server delivers the message again after the restart.
        if (isStorageFault(err) && !faulted) {
          faulted = true
          onWriteFault(err)
        }
        throw err
      }
      for (const id of missing) {
        const raw = found?.[id] ?? null
        cache?.fill(mark, type, id, raw)
        data[id] = revive(type, raw)
      }
      return data
    },
    async set (data) {
      const batch = {}
      const texts = new Map()
      let bytes = 0
      for (const type in data) {
        batch[type] = {}
        for (const id in data[type]) {
          const value = data[type][id]
          const text = value ? JSON.stringify(value, BufferJSON.replacer) : null
          batch[type][id] = text
          texts.set(KeyCache.key(type, id), text)
          bytes += id.length + (text?.length ?? 0)
        }
      }
      if (!texts.size) return
      const pipeline = cache ? pipelines.getStore() : undefined
      const pipelined = pipeline?.open === true && pipeline.wanted()
      const n = cache?.beginWrite(texts.keys(), pipelined ? texts : null)
      const durable = track(sendSet(batch, texts.size, bytes)).then(
        () => cache?.endWrite(n, texts),
        (err) => {
          cache?.failWrite(n, texts.keys())
          throw err
        })
      if (!pipelined) return durable
      durable.catch(() => { /* awaited by the pipeline's owner */ })
      pipeline.writes.push(durable)
    }
  }

  // Resolves once every write sent so far is durable; throws if any of them failed since the last flush.
  const flush = async () => {
    await Promise.allSettled([...inflight, saveChain])
    if (lastError) {
      const err = lastError
      lastError = null
      throw err
    }
  }

  if (fresh) {
    await saveCreds()
  }
  return { state: { creds, keys }, saveCreds, flush, fresh, cache }
}
