// Presence and chat states, both ways. Sessions: `<presence type="available|unavailable" name>`
// (the account's own presence), `<presence type="subscribe" to>` (answered at once with the
// target's current presence, then every change), `<chatstate to><composing|paused/></chatstate>`
// (relayed to the target: recorded by a contact, forwarded to another account's devices).
// Contacts (control API): change presence (sent to subscribers) or send a chat state to an account.
import { HttpError } from './errors.mjs'
import { userJid } from './contacts.mjs'
import { unixNow } from './wire.mjs'

export const PRESENCE_TYPES = ['available', 'unavailable']
export const CHATSTATE_TYPES = ['composing', 'recording', 'paused']

const presenceNode = (from, presence) => ({ tag: 'presence', attrs: { from, type: presence.type, ...(presence.type === 'unavailable' ? { last: String(presence.last) } : {}) } })
const chatstateChild = type => (type === 'recording' ? { tag: 'composing', attrs: { media: 'audio' } } : { tag: type, attrs: {} })

export class Presence {
  constructor (sim) { this.sim = sim }

  onPresence (conn, node) {
    const { type, to } = node.attrs
    const acc = conn.device.account
    if (type === 'subscribe' && to) {
      const target = this.sim.resolve(to)?.acc
      if (!target) return
      const c = target.contact
      c?.subscribers.set(conn.device, to)
      const state = c ? c.presence : target.presence
      conn.sendNode(presenceNode(to, state))
      return
    }
    if (PRESENCE_TYPES.includes(type)) {
      acc.presence = { type, last: Number(unixNow()) }
      if (node.attrs.name) acc.pushName = node.attrs.name
    }
  }

  onChatstate (conn, node) {
    const target = this.sim.resolve(node.attrs.to)?.acc
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    if (!target || !child) return
    const type = child.tag === 'composing' && child.attrs?.media === 'audio' ? 'recording' : child.tag
    const from = conn.device.account
    if (target.contact) target.contact.chatstates.push({ from: conn.device.jid, to: node.attrs.to, type, t: Number(unixNow()) })
    const lid = node.attrs.to.endsWith('@lid')
    for (const d of target.liveDevices()) {
      d.conn?.sendNode({ tag: 'chatstate', attrs: { from: userJid(from, lid ? 'lid' : 'pn') }, content: [chatstateChild(type)] })
    }
  }

  /** Control: contact `phone` goes available/unavailable, or sends a chat state to account `to`. */
  fromContact (phone, { type, to }) {
    const c = this.sim.messaging.contact(phone).contact
    if (PRESENCE_TYPES.includes(type)) {
      c.presence = { type, last: Number(unixNow()) }
      let sent = 0
      for (const [device, jid] of c.subscribers) {
        if (device.removed || !device.conn) continue
        device.conn.sendNode(presenceNode(jid, c.presence))
        sent++
      }
      return { type, sent }
    }
    if (!CHATSTATE_TYPES.includes(type)) throw new HttpError(400, `"type" is one of ${[...PRESENCE_TYPES, ...CHATSTATE_TYPES].join(', ')}`)
    const target = this.sim.accounts.get(to ?? '')
    if (!target) throw new HttpError(404, `no account ${to}`)
    let sent = 0
    for (const d of target.liveDevices()) {
      if (!d.conn) continue // chat states are not queued for offline devices
      d.conn.sendNode({ tag: 'chatstate', attrs: { from: c.jid }, content: [chatstateChild(type)] })
      sent++
    }
    return { type, sent }
  }

  /** Control: what the contact knows about presence (its own, who subscribed, chat states received). */
  state (phone) {
    const c = this.sim.messaging.contact(phone).contact
    return { presence: c.presence.type, subscribers: [...c.subscribers.keys()].filter(d => !d.removed).map(d => d.jid), chatstates: c.chatstates }
  }
}
