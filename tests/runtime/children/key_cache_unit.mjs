// The KeyCache's bookkeeping on its own (no IPC): orderings a live test cannot force. Prints one
// JSON object of named outcomes.
import { KeyCache } from '../../../node-runtime/key-cache.mjs'

const out = {}
const k = (id) => KeyCache.key('session', id)

// A read answered after a write of the same key was sent must not be cached: its answer may be
// the value the write replaced.
let c = new KeyCache()
let mark = c.mark()
let n = c.beginWrite([k('a')])
c.fill(mark, 'session', 'a', '"old"')
c.endWrite(n, new Map([[k('a'), '"new"']]))
out.stale_read_after_write = c.lookup('session', 'a').text

// A read sent while a write of the key was in flight, answered after that write was acknowledged:
// Python may have read before the write landed, so the answer must not replace the written value.
c = new KeyCache()
n = c.beginWrite([k('a')])
mark = c.mark()
c.endWrite(n, new Map([[k('a'), '"new"']]))
c.fill(mark, 'session', 'a', null)
out.read_sent_during_write = c.lookup('session', 'a').text

// Even when the written entry was evicted before the stale answer arrived.
c = new KeyCache({ maxEntries: 1 })
mark = c.mark()
n = c.beginWrite([k('a')])
c.endWrite(n, new Map([[k('a'), '"new"']]))
c.put(k('b'), '"b"') // evicts a
c.fill(mark, 'session', 'a', '"old"')
out.stale_read_after_eviction = c.lookup('session', 'a').hit

// Two writes of one key in flight: the first answer does not make its value servable.
c = new KeyCache()
const first = c.beginWrite([k('a')])
const second = c.beginWrite([k('a')])
c.endWrite(first, new Map([[k('a'), '"first"']]))
out.served_while_newer_write_in_flight = c.lookup('session', 'a').hit
c.endWrite(second, new Map([[k('a'), '"second"']]))
out.after_both = c.lookup('session', 'a').text

// A failed write empties the cache and a read sent before it is not kept.
c = new KeyCache()
c.put(k('x'), '"x"')
mark = c.mark()
n = c.beginWrite([k('a')])
c.failWrite(n, [k('a')])
c.fill(mark, 'session', 'y', '"y"')
out.after_failed_write = { x: c.lookup('session', 'x').hit, y: c.lookup('session', 'y').hit, pending: c.pending.size }

// A pipelined write is served as its own text while in flight, survives any eviction until it is
// answered, and gives way to a later plain write of the same key (not served until answered).
c = new KeyCache({ maxEntries: 1 })
n = c.beginWrite([k('a')], new Map([[k('a'), '"ahead"']]))
c.put(k('b'), '"b"')
c.put(k('c'), '"c"')
out.provisional = { served: c.lookup('session', 'a').text, pending: c.pending.size }
c.endWrite(n, new Map([[k('a'), '"ahead"']]))
out.provisional_answered = { served: c.lookup('session', 'a').text, left: c.provisional.size }
const ahead = c.beginWrite([k('a')], new Map([[k('a'), '"ahead"']]))
c.beginWrite([k('a')])
out.provisional_superseded = c.lookup('session', 'a').hit
c.failWrite(ahead, [k('a')])
c = new KeyCache()
n = c.beginWrite([k('a')], new Map([[k('a'), '"ahead"']]))
const other = c.beginWrite([k('z')], new Map([[k('z'), '"z"']]))
c.failWrite(n, [k('a')])
out.provisional_after_failed_write = { a: c.lookup('session', 'a').hit, z: c.lookup('session', 'z').hit, other_pending: c.pending.get(k('z')) === other }

// Absent keys are cached as null; the byte budget evicts the least recently used first.
c = new KeyCache({ maxBytes: 3 * (64 + 9 + 100) })
c.put(k('none'), null)
out.absent = c.lookup('session', 'none')
for (const id of ['p', 'q', 'r', 's']) c.put(k(id), '"' + 'x'.repeat(98) + '"')
out.budget = { entries: c.entries.size, within: c.bytes <= c.maxBytes, oldest_gone: !c.lookup('session', 'p').hit, newest: c.lookup('session', 's').hit }
process.stdout.write(JSON.stringify(out) + '\n')
