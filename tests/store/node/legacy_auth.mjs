// A real legacy Baileys process, for tests: `node legacy_auth.mjs make <folder> [n] [fresh]` creates
// an auth folder with real useMultiFileAuthState (creds registered via `me` unless `fresh`, n
// pre-keys and one key of several other types);
// `node legacy_auth.mjs dump <folder>` loads it again with useMultiFileAuthState and prints every
// value (creds and the keys listed by file name) as BufferJSON text on stdout, so a test can
// compare what real Baileys reads before and after a snapshot/restore round trip.
import { readdir } from 'node:fs/promises'
import { useMultiFileAuthState, BufferJSON, Curve, signedKeyPair } from '@whiskeysockets/baileys'

const KEY_TYPES = ['app-state-sync-version', 'app-state-sync-key', 'sender-key-memory', 'sender-key',
  'pre-key', 'session', 'lid-mapping', 'device-list', 'tctoken', 'identity-key']

async function make (folder, count, registered) {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  if (registered) {
    state.creds.me = { id: '15550001111:7@s.whatsapp.net', name: 'legacy tenant', lid: '123456789:7@lid' }
    state.creds.registered = true
  }
  await saveCreds()
  const preKeys = {}
  for (let i = 1; i <= count; i++) preKeys[String(i)] = Curve.generateKeyPair()
  const spk = signedKeyPair(state.creds.signedIdentityKey, 1)
  await state.keys.set({
    'pre-key': preKeys,
    session: { '15550002222.0': Buffer.from('session record bytes '.repeat(8)) },
    'sender-key': { '120363000000000000@g.us::15550002222::0': Buffer.from('sender key bytes') },
    'app-state-sync-key': { AAAAAH2x: { keyData: spk.keyPair.public, fingerprint: { rawId: 7, currentIndex: 1, deviceIndexes: [0, 1] }, timestamp: 1700000000 } },
    'lid-mapping': { '15550002222': '987654321' },
  })
  process.stdout.write(JSON.stringify({ ok: true }) + '\n')
}

async function dump (folder) {
  const { state } = await useMultiFileAuthState(folder)
  const out = { creds: state.creds, keys: {} }
  const names = (await readdir(folder)).filter(n => n !== 'creds.json' && n.endsWith('.json')).sort()
  for (const name of names) {
    const stem = name.slice(0, -5)
    const type = KEY_TYPES.find(t => stem.startsWith(t + '-'))
    if (!type) continue
    const id = stem.slice(type.length + 1)
    const got = await state.keys.get(type, [id])
    out.keys[name] = got[id]
  }
  process.stdout.write(JSON.stringify(out, BufferJSON.replacer) + '\n')
}

const [mode, folder, count, flag] = process.argv.slice(2)
if (mode === 'make') await make(folder, Number(count || 5), flag !== 'fresh')
else if (mode === 'dump') await dump(folder)
else { process.stderr.write('usage: legacy_auth.mjs make <folder> [pre-key count] [fresh] | dump <folder>\n'); process.exit(2) }
