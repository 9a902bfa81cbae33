// libsignal jobs queued on one address by two async contexts at once (two sockets of a pooled
// runtime sending to the same contact): which context does each job's storage call see, before
// and after node-runtime's signal-context patch? Prints one JSON object.
import { AsyncLocalStorage } from 'node:async_hooks'
import libsignal from 'libsignal'
import { keepSignalJobsInTheirContext } from '../../../node-runtime/signal-context.mjs'

const als = new AsyncLocalStorage()
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function seenBy (make) {
  const seen = {}
  const storage = (name) => ({
    getOurIdentity: async () => ({ pubKey: Buffer.alloc(33), privKey: Buffer.alloc(32) }),
    loadSession: async () => { seen[name] = als.getStore(); await pause(30); return null },
    isTrustedIdentity: async () => { seen[name] = als.getStore(); await pause(30); return false }
  })
  const address = new libsignal.ProtocolAddress('15551234567', 0)
  await Promise.allSettled(['socket-a', 'socket-b'].map((name) => als.run(name, () => make(storage(name), address))))
  return seen
}

const encrypt = (storage, address) => new libsignal.SessionCipher(storage, address).encrypt(Buffer.from('hi'))
const build = (storage, address) => new libsignal.SessionBuilder(storage, address).initOutgoing({ identityKey: Buffer.alloc(33) })

const before = { cipher: await seenBy(encrypt), builder: await seenBy(build) }
keepSignalJobsInTheirContext()
keepSignalJobsInTheirContext() // twice: still one layer
const after = { cipher: await seenBy(encrypt), builder: await seenBy(build) }
process.stdout.write(JSON.stringify({ before, after }) + '\n')
