// A legacy Baileys tenant, as run before the bridge: real useMultiFileAuthState writing its own folder.
//
//   node legacy_tenant.mjs make <folder> <pre-keys> [fresh]
//       create the folder (registered creds with `me` unless `fresh`, n pre-keys, a session and a
//       sender key), print {"ok":true,"me":...} and exit.
//   node legacy_tenant.mjs serve <folder>
//       keep running like a live tenant; one command a line on stdin, one JSON line answer:
//         register            set creds.me (as after a QR scan) and saveCreds()
//         prekeys <from> <n>  keys.set n new pre-keys, bump creds.nextPreKeyId, saveCreds()
//         consume <id>        keys.set {pre-key: {id: null}} (legacy unlinks the file)
//         creds               print creds.me and the noise public key as Baileys holds them
//         exit
import { createInterface } from 'node:readline'
import { useMultiFileAuthState, Curve } from '@whiskeysockets/baileys'

const ME = { id: '15550001111:7@s.whatsapp.net', name: 'legacy tenant', lid: '123456789:7@lid' }

function preKeys (from, count) {
  const out = {}
  for (let i = from; i < from + count; i++) out[String(i)] = Curve.generateKeyPair()
  return out
}

const noisePub = (creds) => Buffer.from(creds.noiseKey.public).toString('base64')

async function make (folder, count, registered) {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  if (registered) {
    state.creds.me = ME
    state.creds.registered = true
  }
  await state.keys.set({
    'pre-key': preKeys(1, count),
    session: { '15550002222.0': Buffer.from('session record bytes '.repeat(8)) },
    'sender-key': { '120363000000000000@g.us::15550002222::0': Buffer.from('sender key bytes') }
  })
  state.creds.nextPreKeyId = count + 1
  await saveCreds()
  process.stdout.write(JSON.stringify({ ok: true, me: state.creds.me ?? null, noise: noisePub(state.creds) }) + '\n')
}

async function serve (folder) {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  await saveCreds()
  const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
  say({ ok: true, ready: true, noise: noisePub(state.creds) })
  const rl = createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, a, b] = line.trim().split(/\s+/)
    try {
      if (cmd === 'register') {
        state.creds.me = ME
        state.creds.registered = true
        await saveCreds()
        say({ ok: true })
      } else if (cmd === 'prekeys') {
        const from = Number(a); const n = Number(b)
        await state.keys.set({ 'pre-key': preKeys(from, n) })
        state.creds.nextPreKeyId = from + n
        await saveCreds()
        say({ ok: true })
      } else if (cmd === 'consume') {
        await state.keys.set({ 'pre-key': { [a]: null } })
        say({ ok: true })
      } else if (cmd === 'creds') {
        say({ ok: true, me: state.creds.me ?? null, noise: noisePub(state.creds) })
      } else if (cmd === 'exit') {
        say({ ok: true })
        break
      } else {
        say({ ok: false, error: `unknown command ${cmd}` })
      }
    } catch (err) {
      say({ ok: false, error: String(err) })
    }
  }
  process.exit(0)
}

const [mode, folder, count, flag] = process.argv.slice(2)
if (mode === 'make') await make(folder, Number(count || 5), flag !== 'fresh')
else if (mode === 'serve') await serve(folder)
else { process.stderr.write('usage: legacy_tenant.mjs make <folder> [n] [fresh] | serve <folder>\n'); process.exit(2) }
