// A bounded read cache in front of one session's IPC key store (auth-state.mjs).
//
// It holds, per key, the exact text Python last answered or acknowledged (null = absent), never
// a value of its own making: a write enters it only once Python has made it durable, and a read
// fills it only when no write that could have changed the answer was sent meanwhile. So a hit
// returns what a round trip to Python would have returned, without the round trip.
//
// Why text and not the revived object: Baileys may change what it gets in place; reviving each
// hit gives every reader a fresh object, as a read from Python would, and makes the byte budget
// exact. Absent keys are cached too (a send asks for the contact's tctoken, usually absent, twice).
//
// One exception, for sends only (auth-state.mjs `pipelineWrites`): a write a send's key commit
// made may be served while Python still makes it durable ("provisional"), so the next send can
// encrypt without waiting for that round trip. Those texts are Baileys' own in-memory state,
// which a plain in-process Baileys would serve too; they are never evicted before the write is
// answered, and a failed write drops them with everything else.
//
// The cache lives as long as one auth state, i.e. one `start` command: every start Python sends
// (after a stop, a restore, a repair, a suspension or a runtime restart) builds a new, empty one.
// A failed write (or any doubt) empties it: `clear()`.
import { KEY_CACHE_BYTES, KEY_CACHE_ENTRIES } from './defaults.mjs'

const ENTRY_OVERHEAD = 64

export class KeyCache {
  constructor ({ maxEntries = KEY_CACHE_ENTRIES, maxBytes = KEY_CACHE_BYTES } = {}) {
    this.maxEntries = maxEntries
    this.maxBytes = maxBytes
    this.entries = new Map() // `${type}\u0000${id}` -> text | null, least recently used first
    this.bytes = 0
    this.writes = 0 // writes sent so far
    this.settled = 0 // writes answered so far (a read fills only if neither moved while it was out)
    this.epoch = 0 // bumped by clear()
    this.pending = new Map() // key -> number of the latest write sent for it and not yet answered
    this.provisional = new Map() // key -> text, while the latest write of key is a pipelined one not yet answered
    this.stats = { hits: 0, misses: 0, evictions: 0, clears: 0 }
  }

  static key (type, id) { return `${type}\u0000${id}` }

  // { hit: true, text } when the key is cached and no write of it is in flight, or when the
  // latest write of it in flight is a pipelined one (its text).
  lookup (type, id) {
    const key = KeyCache.key(type, id)
    if (this.provisional.has(key)) {
      this.stats.hits++
      return { hit: true, text: this.provisional.get(key) }
    }
    if (this.pending.has(key) || !this.entries.has(key)) {
      this.stats.misses++
      return { hit: false, text: undefined }
    }
    const text = this.entries.get(key)
    this.entries.delete(key)
    this.entries.set(key, text)
    this.stats.hits++
    return { hit: true, text }
  }

  // Taken before a read is sent; `fill` with it keeps the answer only if no write was sent or
  // answered while the read was out. A read sent before a write is answered from the state before
  // it; one sent while a write is in flight is served after that write only because Python's
  // channel serves a session's requests in order, which this cache does not rely on.
  mark () { return { writes: this.writes, settled: this.settled, epoch: this.epoch } }

  fill (mark, type, id, text) {
    if (mark.writes !== this.writes || mark.settled !== this.settled || mark.epoch !== this.epoch) return
    const key = KeyCache.key(type, id)
    if (this.pending.has(key)) return
    this.put(key, text)
  }

  // A write was sent: its keys stop being served until Python answers. Returns its number.
  // With `texts` (a pipelined write: key -> text) they are served as those texts meanwhile.
  beginWrite (keys, texts = null) {
    const n = ++this.writes
    for (const key of keys) {
      this.drop(key)
      this.pending.set(key, n)
      if (texts) this.provisional.set(key, texts.get(key))
      else this.provisional.delete(key)
    }
    return n
  }

  // Python made write `n` durable: each key whose latest write it is now holds its text.
  endWrite (n, texts) {
    this.settled++
    for (const [key, text] of texts) {
      if (this.pending.get(key) !== n) continue
      this.pending.delete(key)
      this.provisional.delete(key)
      this.put(key, text)
    }
  }

  // Write `n` failed: nothing it touched (nor anything else) is trusted any more.
  failWrite (n, keys) {
    this.settled++
    for (const key of keys) {
      if (this.pending.get(key) === n) this.pending.delete(key)
    }
    this.clear()
  }

  clear () {
    this.entries.clear()
    this.provisional.clear()
    this.bytes = 0
    this.epoch++
    this.stats.clears++
  }

  put (key, text) {
    this.drop(key)
    const size = ENTRY_OVERHEAD + key.length + (text === null ? 0 : text.length)
    if (size > this.maxBytes) return
    this.entries.set(key, text)
    this.bytes += size
    while (this.entries.size > this.maxEntries || this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next().value
      this.drop(oldest)
      this.stats.evictions++
    }
  }

  drop (key) {
    if (!this.entries.has(key)) return
    const text = this.entries.get(key)
    this.entries.delete(key)
    this.bytes -= ENTRY_OVERHEAD + key.length + (text === null ? 0 : text.length)
  }
}
