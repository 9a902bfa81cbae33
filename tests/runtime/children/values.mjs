// Deterministic Baileys auth values of every kind, shared by the IPC child and the legacy writer,
// so the test can compare the bytes each path leaves on disk.
import { createHash } from 'node:crypto'
import { proto } from '@whiskeysockets/baileys'

const bytes = (label, n = 32) => createHash('sha256').update(label).digest().subarray(0, n)

export function sampleKeys () {
  return {
    'pre-key': {
      1: { public: bytes('pk1pub'), private: bytes('pk1priv') },
      2: { public: bytes('pk2pub'), private: bytes('pk2priv') }
    },
    session: { '15551234567.0': bytes('session', 120), '15551234567:3@s.whatsapp.net': bytes('s2', 40) },
    'sender-key': { '123@g.us::15551234567::0': bytes('sk', 64) },
    'app-state-sync-key': { AAAAAKqr: proto.Message.AppStateSyncKeyData.fromObject({ keyData: bytes('ask'), fingerprint: { rawId: 7, currentIndex: 1, deviceIndexes: [0, 1] }, timestamp: 1700000000 }) },
    'lid-mapping': { '15551234567': '123456789012345@lid' },
    'device-list': { '15551234567': ['0', '3'] }
  }
}
