// Stand-in child under the runtime's permission flags that drives the REAL auth-state module of
// node-runtime over IPC: load creds, write every kind of key, read them back, compare.
import { isDeepStrictEqual } from 'node:util'
import { BufferJSON } from '@whiskeysockets/baileys'
import { createIpc } from '../../../node-runtime/ipc.mjs'
import { loadIpcAuthState } from '../../../node-runtime/auth-state.mjs'
import { makeLogger } from '../../../node-runtime/logger.mjs'
import { sampleKeys } from './values.mjs'

const log = makeLogger('warn')
const ipc = createIpc({ input: process.stdin, output: process.stdout, log })
ipc.onEnd(() => process.exit(0))
const norm = (v) => JSON.parse(JSON.stringify(v, BufferJSON.replacer))

ipc.setCommandHandler(async (msg) => {
  if (msg.cmd !== 'roundtrip') throw new Error('unknown')
  const auth = await loadIpcAuthState(ipc, msg.s, log)
  const keys = sampleKeys()
  await auth.state.keys.set(keys)
  const back = {}
  for (const type of Object.keys(keys)) back[type] = await auth.state.keys.get(type, Object.keys(keys[type]))
  const missing = await auth.state.keys.get('pre-key', ['999'])
  await auth.state.keys.set({ 'pre-key': { 2: null } })
  const gone = await auth.state.keys.get('pre-key', ['2'])
  auth.state.creds.registrationId = 4242
  await auth.saveCreds()
  await auth.flush()
  return {
    fresh: auth.fresh,
    equal: isDeepStrictEqual(norm(back), norm(keys)),
    app_state_is_proto: back['app-state-sync-key'].AAAAAKqr instanceof Object && typeof back['app-state-sync-key'].AAAAAKqr.toJSON === 'function',
    missing_is_null: missing['999'] === null,
    deleted_is_null: gone['2'] === null,
    creds_text: JSON.stringify(auth.state.creds, BufferJSON.replacer)
  }
})
process.stdin.resume()
