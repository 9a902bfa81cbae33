// Legacy side of scripts/bench_store.py: real useMultiFileAuthState doing keys.set / keys.get.
//   node bench_legacy.mjs <folder> <batch> <batches> <valueBytes>
// Prints {"set_seconds", "get_seconds", "keys"}; ids are unique per batch (new files, like pre-keys).
//   node bench_legacy.mjs <folder> creds <saves>
// Prints {"creds_seconds", "saves", "creds"}: saveCreds after each accountSyncCounter change, and
// the creds text (BufferJSON) the bridge side then saves the same way.
//   node bench_legacy.mjs <folder> concurrent <sessions> <keys> <valueBytes>
// Prints {"set_seconds", "keys"}: <sessions> auth states in <folder>/s<i>, all writing at once,
// each <keys> single-key keys.set one after the other (a pooled runtime's sessions at work).
import { randomBytes } from 'crypto'
import { BufferJSON, useMultiFileAuthState } from '@whiskeysockets/baileys'

const [folder, batchArg, batchesArg, bytesArg] = process.argv.slice(2)
if (batchArg === 'concurrent') {
  const sessions = Number(batchesArg)
  const keys = Number(bytesArg)
  const valueBytes = Number(process.argv[6])
  const states = await Promise.all(Array.from({ length: sessions }, (_, i) => useMultiFileAuthState(`${folder}/s${i}`)))
  const start = process.hrtime.bigint()
  await Promise.all(states.map(async ({ state }) => {
    for (let k = 0; k < keys; k++) await state.keys.set({ session: { [`c.${k}`]: new Uint8Array(randomBytes(valueBytes)) } })
  }))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  process.stdout.write(JSON.stringify({ set_seconds: seconds, keys: sessions * keys }))
  process.exit(0)
}
if (batchArg === 'creds') {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  state.creds.me = { id: '4915112345678:3@s.whatsapp.net', name: 'Bench' }
  state.creds.registered = true
  const saves = Number(batchesArg)
  const start = process.hrtime.bigint()
  for (let i = 0; i < saves; i++) {
    state.creds.accountSyncCounter = i
    await saveCreds()
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  process.stdout.write(JSON.stringify({ creds_seconds: seconds, saves, creds: JSON.stringify(state.creds, BufferJSON.replacer) }))
  process.exit(0)
}
const batch = Number(batchArg)
const batches = Number(batchesArg)
const valueBytes = Number(bytesArg)
const { state } = await useMultiFileAuthState(folder)

const ids = []
let start = process.hrtime.bigint()
for (let b = 0; b < batches; b++) {
  const values = {}
  const batchIds = []
  for (let j = 0; j < batch; j++) {
    const id = `${b}.${j}`
    values[id] = new Uint8Array(randomBytes(valueBytes))
    batchIds.push(id)
  }
  ids.push(batchIds)
  await state.keys.set({ session: values })
}
const setSeconds = Number(process.hrtime.bigint() - start) / 1e9

start = process.hrtime.bigint()
let found = 0
for (const batchIds of ids) {
  const got = await state.keys.get('session', batchIds)
  for (const id of batchIds) if (got[id]) found++
}
const getSeconds = Number(process.hrtime.bigint() - start) / 1e9
if (found !== batch * batches) throw new Error(`read back ${found} of ${batch * batches} keys`)
process.stdout.write(JSON.stringify({ set_seconds: setSeconds, get_seconds: getSeconds, keys: batch * batches }))
