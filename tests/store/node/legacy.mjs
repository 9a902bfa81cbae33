// Real Baileys on one side of the compatibility tests: legacy useMultiFileAuthState.
//
//   node legacy.mjs write <folder>            generate creds + keys of every type with Baileys'
//                                              own generators, store them with legacy
//                                              useMultiFileAuthState, print {creds, keys} as the
//                                              exact JSON texts BufferJSON.replacer made.
//   node legacy.mjs read <folder> <expected>   load <folder> with legacy useMultiFileAuthState and
//                                              deep-compare creds and every key listed in the
//                                              <expected> file ({creds, keys}) with its revived
//                                              value; print {ok, mismatches, texts}.
import { randomBytes } from 'crypto'
import { readFileSync } from 'fs'
import { isDeepStrictEqual } from 'util'
import {
  BufferJSON,
  Curve,
  initAuthCreds,
  proto,
  signedKeyPair,
  useMultiFileAuthState
} from '@whiskeysockets/baileys'

const text = (value) => JSON.stringify(value, BufferJSON.replacer)
const revive = (t) => JSON.parse(t, BufferJSON.reviver)

function generateKeys () {
  const identity = Curve.generateKeyPair()
  return {
    'pre-key': {
      1: Curve.generateKeyPair(),
      2: Curve.generateKeyPair(),
      30: signedKeyPair(identity, 30).keyPair
    },
    session: {
      '4915112345678.0': new Uint8Array(randomBytes(420)),
      '4915112345678_1.12': new Uint8Array(randomBytes(96)),
      '123456789012345_1.0': new Uint8Array(randomBytes(64))
    },
    'sender-key': {
      '120363012345678901@g.us::4915112345678::0': Buffer.from(
        JSON.stringify([{ senderKeyId: 7, senderChainKey: { iteration: 3, seed: randomBytes(32).toString('base64') } }]),
        'utf-8'
      )
    },
    'sender-key-memory': {
      '120363012345678901@g.us': { '4915112345678:3@s.whatsapp.net': true, '4915187654321@s.whatsapp.net': true }
    },
    'app-state-sync-key': {
      'AAAAAF/x': proto.Message.AppStateSyncKeyData.fromObject({
        keyData: randomBytes(32),
        fingerprint: { rawId: 1234, currentIndex: 2, deviceIndexes: [0, 2] },
        timestamp: 1700000000
      }),
      AAAAAGPn: proto.Message.AppStateSyncKeyData.fromObject({ keyData: randomBytes(32), timestamp: 1700000001 })
    },
    'app-state-sync-version': {
      regular_high: {
        version: 42,
        hash: randomBytes(128),
        indexValueMap: {
          [randomBytes(32).toString('base64')]: { valueMac: randomBytes(32) },
          [randomBytes(32).toString('base64')]: { valueMac: randomBytes(32) }
        }
      },
      critical_block: { version: 1, hash: Buffer.alloc(128), indexValueMap: {} }
    },
    'lid-mapping': {
      4915112345678: '123456789012345',
      '123456789012345_reverse': '4915112345678'
    },
    'device-list': { 4915112345678: ['0', '1', '12'] },
    tctoken: {
      '4915112345678@s.whatsapp.net': { token: randomBytes(24), timestamp: '1700000000' },
      __index: { token: Buffer.from(JSON.stringify(['4915112345678@s.whatsapp.net'])) }
    },
    'identity-key': {
      '4915112345678.0': new Uint8Array(Buffer.concat([Buffer.from([5]), randomBytes(32)])),
      '4915112345678:1@s.whatsapp.net': new Uint8Array(Buffer.concat([Buffer.from([5]), randomBytes(32)]))
    }
  }
}

async function write (folder) {
  const { state, saveCreds } = await useMultiFileAuthState(folder)
  // A linked account, as Baileys' configureSuccessfulPairing leaves it after a QR scan: `me` and
  // the ADV signed device identity in `account`; `registered` stays false on this path.
  state.creds.me = { id: '4915112345678:3@s.whatsapp.net', lid: '123456789012345:3@lid', name: 'Compat' }
  const details = proto.ADVDeviceIdentity.encode({ rawId: 7, timestamp: 1700000000, keyIndex: 3 }).finish()
  state.creds.account = proto.ADVSignedDeviceIdentity.decode(proto.ADVSignedDeviceIdentity.encode({
    details, accountSignatureKey: randomBytes(32), accountSignature: randomBytes(64), deviceSignature: randomBytes(64)
  }).finish())
  await saveCreds()
  const keys = generateKeys()
  await state.keys.set(keys)
  const texts = {}
  for (const [type, values] of Object.entries(keys)) {
    texts[type] = {}
    for (const [id, value] of Object.entries(values)) texts[type][id] = text(value)
  }
  process.stdout.write(JSON.stringify({ creds: text(state.creds), keys: texts, fresh: text(initAuthCreds()) }))
}

async function read (folder, expectedFile) {
  const expected = JSON.parse(readFileSync(expectedFile, 'utf-8'))
  const { state } = await useMultiFileAuthState(folder)
  const mismatches = []
  if (!isDeepStrictEqual(state.creds, revive(expected.creds))) mismatches.push('creds')
  const texts = {}
  for (const [type, values] of Object.entries(expected.keys)) {
    const ids = Object.keys(values)
    const got = await state.keys.get(type, ids)
    texts[type] = {}
    for (const id of ids) {
      let want = values[id] === null ? null : revive(values[id])
      if (type === 'app-state-sync-key' && want) want = proto.Message.AppStateSyncKeyData.fromObject(want)
      if (!isDeepStrictEqual(got[id], want)) mismatches.push(`${type}/${id}`)
      texts[type][id] = got[id] === null ? null : text(got[id])
    }
  }
  process.stdout.write(JSON.stringify({ ok: mismatches.length === 0, mismatches, creds: text(state.creds), texts }))
}

const [mode, folder, extra] = process.argv.slice(2)
if (mode === 'write') await write(folder)
else if (mode === 'read') await read(folder, extra)
else {
  process.stderr.write('usage: legacy.mjs write <folder> | read <folder> <expected.json>\n')
  process.exit(2)
}
