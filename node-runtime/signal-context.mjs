// Keeps each libsignal job in the async context of the code that queued it.
//
// libsignal serialises the work on one address through a queue that is global to the process
// (queue_job.js, keyed by the address string, e.g. "15551234567.0"). A job queued while another
// job on that address is running is run by the loop the first caller started, i.e. in the FIRST
// caller's async context. Baileys keeps its key transaction in an AsyncLocalStorage context, one
// per socket: so when two sockets of a pooled runtime (or a decrypt and a send of one socket)
// work on the same contact at once, the second job runs outside its own transaction. Its reads
// miss the keys its transaction holds (a session just fetched for a first message: "No
// sessions") and its writes skip the transaction's commit. Binding every job (and the storage
// calls of a session builder) to the caller's context makes each job see its own transaction.
import { AsyncResource } from 'node:async_hooks'
import libsignal from 'libsignal'

const PATCHED = Symbol.for('baileys-bridge.signal-context')

export function keepSignalJobsInTheirContext () {
  const { SessionCipher, SessionBuilder } = libsignal
  if (SessionCipher.prototype[PATCHED]) return
  const queueJob = SessionCipher.prototype.queueJob
  SessionCipher.prototype.queueJob = function (awaitable) {
    return queueJob.call(this, AsyncResource.bind(awaitable))
  }
  // SessionBuilder queues its closures through the module's queue directly; binding the storage
  // it calls (the only thing that reads the context) has the same effect.
  for (const name of ['initOutgoing', 'initIncoming']) {
    const original = SessionBuilder.prototype[name]
    SessionBuilder.prototype[name] = function (...args) {
      const scope = new AsyncResource('libsignal-session-builder')
      const storage = this.storage
      const bound = new Proxy(storage, {
        get (target, key) {
          const value = Reflect.get(target, key)
          return typeof value === 'function' ? (...a) => scope.runInAsyncScope(value, target, ...a) : value
        }
      })
      return original.apply(Object.create(this, { storage: { value: bound } }), args)
    }
  }
  SessionCipher.prototype[PATCHED] = true
}
