// Baileys' {creds, keys} auth state where every read and write is an IPC request to Python.
// Values travel as the exact text of JSON.stringify(value, BufferJSON.replacer), the bytes
// useMultiFileAuthState would write; reads are revived exactly as it revives them.
import { BufferJSON, initAuthCreds, proto } from '@whiskeysockets/baileys'

const isStorageFault = (err) => typeof err?.code === 'string' && err.code.startsWith('storage_')

// `onWriteFault(err)` is called once, at the first write Python could not make durable (or the
// first read storage refused): from then on the caller must stop using the socket (the Signal
// state in memory is ahead of the disk, or a message could be acked without being decrypted).
// Such errors carry `authWrite: true`, so a send can tell "the message went out, its keys were
// not stored" from "nothing was sent".
export async function loadIpcAuthState (ipc, session, log, { onWriteFault = () => { /* no listener: the failed write still rejects */ } } = {}) {
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

  const keys = {
    async get (type, ids) {
      let found
      try {
        found = await ipc.request(session, 'auth.get', { type, ids })
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
      const data = {}
      for (const id of ids) {
        const raw = found?.[id]
        let value = raw === null || raw === undefined ? null : JSON.parse(raw, BufferJSON.reviver)
        if (type === 'app-state-sync-key' && value) value = proto.Message.AppStateSyncKeyData.fromObject(value)
        data[id] = value
      }
      return data
    },
    async set (data) {
      const batch = {}
      for (const type in data) {
        batch[type] = {}
        for (const id in data[type]) {
          const value = data[type][id]
          batch[type][id] = value ? JSON.stringify(value, BufferJSON.replacer) : null
        }
      }
      await track(ipc.request(session, 'auth.set', { data: batch }))
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
  return { state: { creds, keys }, saveCreds, flush, fresh }
}
