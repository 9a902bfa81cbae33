// Small pieces of WhatsApp's wire vocabulary shared by every simulator module.
import { randomBytes } from 'node:crypto'

/** The user server (phone-number jids) and the LID server. */
export const S_WHATSAPP_NET = 's.whatsapp.net'
export const LID = 'lid'

/** A stanza timestamp: Unix seconds as a string. */
export const unixNow = () => String(Math.floor(Date.now() / 1000))

/** A message id in the shape WhatsApp Web uses (`3EB0` + 18 hex digits). */
export const messageId = () => `3EB0${randomBytes(9).toString('hex').toUpperCase()}`

/** A big-endian unsigned integer from a node's bytes (undefined when absent). */
export const uint = buf => (buf ? Buffer.from(buf).readUIntBE(0, buf.length) : undefined)

/** A resolved promise after `ms` milliseconds. */
export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
