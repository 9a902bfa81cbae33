// Plain Node, no permission flags: write the same sample keys with Baileys' own
// useMultiFileAuthState into argv[2], to compare bytes with what the bridge wrote.
import { useMultiFileAuthState } from '@whiskeysockets/baileys'
import { sampleKeys } from './values.mjs'

const { state } = await useMultiFileAuthState(process.argv[2])
await state.keys.set(sampleKeys())
await state.keys.set({ 'pre-key': { 2: null } })
