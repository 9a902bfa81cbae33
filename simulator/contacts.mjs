// A simulated WhatsApp user's phone as the tests see it: how it is addressed (phone number, or a
// LID with the number only in `sender_pn`), its profile (push name, picture, status text), its
// presence, and its memory of every chat: what it received and decrypted, what it sent, the
// receipts and chat states sessions sent it. The Signal side is an account endpoint (signal.mjs).
import { HttpError } from './errors.mjs'
import { S_WHATSAPP_NET as S, unixNow } from './wire.mjs'

export const ADDRESSING = ['pn', 'lid']

/** An account's user jid in one addressing mode ('pn' -> phone@s.whatsapp.net, 'lid' -> lid@lid). */
export const userJid = (acc, mode) => (mode === 'lid' ? `${acc.lid}@lid` : `${acc.phone}@${S}`)

export class ContactState {
  constructor (acc) {
    this.acc = acc
    this.addressing = 'pn'
    this.pushName = `Contact ${acc.phone}`
    this.picture = null // { id, url } or null (none set) ; pictureHidden answers 401
    this.pictureHidden = false
    this.status = null // text or null (none set); statusHidden answers 401
    this.statusHidden = false
    this.groupAdd = 'all' // 'nobody': adding it to a group is refused (403), as its privacy setting
    this.presence = { type: 'unavailable', last: Number(unixNow()) }
    this.inbox = [] // decrypted messages from sessions (JSON records, oldest first)
    this.outbox = [] // what the contact sent (JSON records)
    this.receipts = [] // receipts sessions sent for the contact's messages
    this.chatstates = [] // chat states (composing, recording, paused) sessions sent the contact
    this.errors = [] // messages the contact could not decrypt
    this.retries = [] // retry receipts sessions sent for the contact's messages ({ id, count, from, keys })
    this.messages = new Map() // id -> { id, fromMe, author, peer, message }: what a reply/reaction/vote can refer to
    this.subscribers = new Map() // Device -> the jid it subscribed to (presence)
  }

  get jid () { return userJid(this.acc, this.addressing) }

  /** Apply a control-API body: addressing, push_name, picture_url, picture_hidden, status, status_hidden, group_add. */
  configure (body) {
    if (body.addressing !== undefined) {
      if (!ADDRESSING.includes(body.addressing)) throw new HttpError(400, `"addressing" is one of ${ADDRESSING.join(', ')}`)
      this.addressing = body.addressing
    }
    if (body.push_name !== undefined) this.pushName = String(body.push_name)
    if (body.picture_url !== undefined) {
      if (body.picture_url && !URL.canParse(String(body.picture_url))) throw new HttpError(400, '"picture_url" is not a URL')
      this.picture = body.picture_url ? { id: String(Date.now()), url: String(body.picture_url) } : null
    }
    if (body.picture_hidden !== undefined) this.pictureHidden = !!body.picture_hidden
    if (body.status !== undefined) this.status = body.status === null ? null : String(body.status)
    if (body.status_hidden !== undefined) this.statusHidden = !!body.status_hidden
    if (body.group_add !== undefined) {
      if (!['all', 'nobody'].includes(body.group_add)) throw new HttpError(400, '"group_add" is all or nobody')
      this.groupAdd = body.group_add
    }
    return this
  }

  remember (entry) { this.messages.set(entry.id, entry) }

  toJSON () {
    const a = this.acc
    return {
      phone: a.phone,
      jid: `${a.phone}@${S}`,
      lid: `${a.lid}@lid`,
      addressing: this.addressing,
      push_name: this.pushName,
      picture_url: this.picture?.url ?? null,
      status: this.status,
      presence: this.presence.type,
      received: this.inbox.length,
      sent: this.outbox.length,
      retries: this.retries.length
    }
  }
}
