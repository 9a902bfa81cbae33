// Message routing between companion devices (real Baileys clients) and simulated primary devices
// (contacts and accounts' phones): fan-out of a companion's `<message>`, server acks, delivery
// receipts, what contacts decrypt, what contacts send (every kind in content.mjs) and the
// receipts they send back (delivered, read, played).
//
// Like WhatsApp's server, a `<message>` for a companion device stays queued until that device
// acknowledges it (its delivery receipt, or an `<ack class="message">`): a connection that ends
// before that gets it again, same id, at its next login (`offline="1"`). A `receipt type="retry"`
// makes the contact re-encrypt the message and send it again, as phones do.
import { extractE2ESessionFromRetryReceipt, getBinaryNodeChild, getBinaryNodeChildren, jidDecode, proto } from '@whiskeysockets/baileys'
import { deflateSync } from 'node:zlib'
import { ContactState, userJid } from './contacts.mjs'
import { buildMessage, decryptPollVote, describeMessage, optionHash, pollOf, stanzaAttrs } from './content.mjs'
import { HttpError, log } from './errors.mjs'
import { S_WHATSAPP_NET as S, unixNow as now, messageId } from './wire.mjs'

export const RECEIPT_TYPES = ['delivery', 'read', 'played']

const unackedOf = dev => (dev.unacked ??= new Map()) // message id -> { node, resent }: sent, not yet acknowledged
const modeOf = jid => (jidDecode(jid ?? '')?.server === 'lid' ? 'lid' : 'pn')
const MAX_RECEIPT_IDS = 100

/** `from` plus the other-address attribute WhatsApp adds: `sender_lid` on pn stanzas, `sender_pn` on lid ones. */
function addressedFrom (acc, mode, device) {
  const dev = device ? `:${device}` : ''
  return mode === 'lid'
    ? { from: `${acc.lid}${dev}@lid`, sender_pn: `${acc.phone}@${S}` }
    : { from: `${acc.phone}${dev}@${S}`, sender_lid: `${acc.lid}@lid` }
}

export class Messaging {
  constructor (sim) { this.sim = sim }

  /** A contact: an account with no companions whose phone records what it decrypts. */
  contact (phone) {
    const acc = this.sim.accounts.ensure(phone)
    acc.contact ??= new ContactState(acc)
    this.sim.endpoint(acc)
    return acc
  }

  contacts () { return this.sim.accounts.all().filter(a => a.contact) }

  // ---- messages from a companion ----
  async onMessage (conn, node) {
    const sender = conn.device
    const { id } = node.attrs
    conn.sendNode({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: now() } })
    const targets = []
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      if (enc) targets.push({ jid: to.attrs.jid, enc })
    }
    const direct = getBinaryNodeChild(node, 'enc')
    if (direct) targets.push({ jid: node.attrs.to, enc: direct })
    const deviceIdentity = getBinaryNodeChild(node, 'device-identity')
    const mode = modeOf(node.attrs.to)
    const delivered = new Set()
    for (const { jid, enc } of targets) {
      const r = this.sim.resolve(jid)
      if (!r) {
        log(`message ${id} for unknown ${jid}`)
        continue
      }
      if (r.device === 0) {
        const ok = await this.toPhone(sender, r.acc, node, enc)
        if (ok && r.acc !== sender.account && !delivered.has(r.acc)) {
          delivered.add(r.acc)
          // a real phone's receipt comes a network round trip later; it may still reach Baileys
          // while it holds the sender's own `append` upsert, which then absorbs it (the runtime
          // takes it out again, node-runtime/messages.mjs `foldedInto`)
          const receipt = { tag: 'receipt', attrs: { from: userJid(r.acc, mode), id, t: now() } }
          setTimeout(() => conn.sendNode(receipt), this.sim.opts.receiptDelayMs).unref?.()
        }
      } else {
        const dev = r.acc.devices.get(r.device)
        if (!dev || dev.removed) continue
        const own = r.acc === sender.account
        this.deliver(dev, {
          tag: 'message',
          attrs: { ...addressedFrom(sender.account, mode, sender.id), id, t: now(), type: node.attrs.type ?? 'text', ...(node.attrs.edit ? { edit: node.attrs.edit } : {}), ...(own ? { recipient: node.attrs.to } : { notify: sender.account.pushName }) },
          content: [{ tag: 'enc', attrs: { ...enc.attrs }, content: enc.content }, ...(deviceIdentity ? [deviceIdentity] : [])]
        })
      }
    }
  }

  /** A simulated phone decrypts what a companion sent it. Returns true when it decrypted. */
  async toPhone (sender, acc, node, enc) {
    const ep = this.sim.endpoint(acc)
    const { id } = node.attrs
    let msg
    try {
      msg = await ep.decrypt(ep.address(sender.account.phone, sender.id), enc.attrs.type, Buffer.from(enc.content))
    } catch (e) {
      log(`phone ${acc.phone} could not decrypt ${id} from ${sender.jid}: ${e.message}`)
      const errors = acc.contact?.errors ?? (acc.phoneErrors ??= [])
      errors.push({ id, from: sender.jid, error: e.message })
      return false
    }
    const inner = msg.deviceSentMessage?.message ?? msg
    const mode = modeOf(node.attrs.to)
    const c = acc.contact
    const entry = {
      id,
      from: `${sender.account.phone}@${S}`,
      from_lid: `${sender.account.lid}@lid`,
      from_device: sender.jid,
      to: node.attrs.to,
      type: enc.attrs.type,
      stanza_type: node.attrs.type ?? null,
      edit_attr: node.attrs.edit ?? null,
      t: Number(now()),
      ...describeMessage(inner, { pollVote: c ? u => this.readVote(c, sender.account, u) : undefined })
    }
    ;(acc.phoneLog ??= []).push(entry)
    if (c && !msg.deviceSentMessage) {
      c.inbox.push(entry)
      c.remember({ id, fromMe: false, author: userJid(sender.account, mode), peer: sender.account.phone, mode, message: inner })
    }
    return true
  }

  /** The option names of a vote on a poll this contact knows, or null when it cannot decrypt it. */
  readVote (c, voter, update) {
    const poll = c.messages.get(update.pollCreationMessageKey?.id ?? '')
    const secret = poll?.message?.messageContextInfo?.messageSecret
    if (!poll || !secret || !update.vote) return null
    const names = new Map((pollOf(poll.message)?.options ?? []).map(o => [optionHash(o.optionName ?? '').toString('hex'), o.optionName]))
    for (const voterJid of [userJid(voter, poll.mode), userJid(voter, poll.mode === 'lid' ? 'pn' : 'lid')]) {
      try {
        const hashes = decryptPollVote(update.vote, { pollMsgId: poll.id, pollCreatorJid: poll.author, voterJid, pollEncKey: Buffer.from(secret) })
        return hashes.map(h => names.get(h.toString('hex')) ?? `unknown:${h.toString('hex')}`)
      } catch {
        // wrong voter addressing: try the other one
      }
    }
    return null
  }

  /** Hand `node` to `dev`: now if it is connected, else at its next login. A message stays queued
   * until the device acknowledges it (`settle`); other stanzas are sent once. */
  deliver (dev, node) {
    if (node.tag === 'message' && node.attrs.id) {
      unackedOf(dev).set(node.attrs.id, { node, resent: false })
      if (dev.conn && !dev.conn.closed) dev.conn.sendNode(node)
      return
    }
    if (dev.conn && !dev.conn.closed) dev.conn.sendNode(node)
    else dev.offline.push({ ...node, attrs: { ...node.attrs, offline: '1' } })
  }

  /** What a login of `dev` gets first: every message it has not acknowledged, oldest first, as offline messages. */
  unackedFor (dev) {
    return [...unackedOf(dev).values()].map(({ node }) => ({ ...node, attrs: { ...node.attrs, offline: '1' } }))
  }

  /** `dev` acknowledged messages `ids` (a receipt, or an ack): the server forgets them. A negative ack
   * (`error`) right after a retry receipt leaves the re-encrypted copy queued (Baileys nacks the copy it
   * could not decrypt after asking for a new one). */
  settle (dev, ids, { negative = false } = {}) {
    const unacked = unackedOf(dev)
    for (const id of ids) {
      const entry = unacked.get(id)
      if (negative && entry?.resent) entry.resent = false
      else unacked.delete(id)
    }
  }

  onAck (conn, node) {
    if (node.attrs.class === 'message' && node.attrs.id) this.settle(conn.device, [node.attrs.id], { negative: !!node.attrs.error })
  }

  async onReceipt (conn, node) {
    conn.sendNode({ tag: 'ack', attrs: { class: 'receipt', id: node.attrs.id, from: node.attrs.to ?? S, ...(node.attrs.type ? { type: node.attrs.type } : {}) } })
    if (node.attrs.type === 'retry') return this.onRetry(conn, node)
    const ids = [node.attrs.id, ...getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'item').map(i => i.attrs.id)]
    this.settle(conn.device, ids)
    const c = this.sim.resolve(node.attrs.to)?.acc.contact
    if (!c) return undefined
    for (const id of ids) c.receipts.push({ id, type: node.attrs.type ?? 'delivery', from: conn.device.jid })
    return undefined
  }

  /**
   * `<receipt type="retry" id to>`: the device could not decrypt a contact's message. Like a phone
   * (Baileys' sendMessagesAgain), the contact starts a fresh session from the key bundle in `<keys>`
   * when there is one (Baileys sends it from the second retry on), re-encrypts the same content and
   * sends it again to that device only, with the same id and `count` on the `enc`.
   */
  async onRetry (conn, node) {
    const dev = conn.device
    const { id } = node.attrs
    const contact = this.sim.resolve(node.attrs.to)?.acc
    const c = contact?.contact
    const sent = c?.messages.get(id)
    const count = Number(getBinaryNodeChild(node, 'retry')?.attrs.count ?? 1)
    const bundle = extractE2ESessionFromRetryReceipt(node)
    if (!c || !sent?.fromMe) {
      log(`retry receipt from ${dev.jid} for ${id}: no contact sent it, nothing to resend`)
      return
    }
    c.retries.push({ id, count, from: dev.jid, keys: !!bundle })
    const ep = this.sim.endpoint(contact)
    const addr = ep.address(dev.account.phone, dev.id)
    if (bundle) {
      const key = k => ({ keyId: k.keyId, pub: Buffer.from(k.publicKey) })
      await ep.initSession(addr, { registrationId: bundle.registrationId, identityPub: Buffer.from(bundle.identityKey), signedPreKey: { ...key(bundle.signedPreKey), signature: Buffer.from(bundle.signedPreKey.signature) }, preKey: bundle.preKey ? key(bundle.preKey) : undefined })
    } else if (!ep.hasSession(addr)) {
      await ep.initSession(addr, this.sim.keys.companionBundle(dev))
    }
    const { type, ciphertext } = await ep.encrypt(addr, sent.message)
    const before = unackedOf(dev).get(id)?.node
    const { attrs, enc } = stanzaAttrs(sent.message)
    const stanza = before?.attrs ?? { ...addressedFrom(contact, sent.mode), id, t: now(), ...attrs, notify: c.pushName }
    const encAttrs = (before && getBinaryNodeChild(before, 'enc')?.attrs) ?? { v: '2', ...enc }
    this.deliver(dev, { tag: 'message', attrs: stanza, content: [{ tag: 'enc', attrs: { ...encAttrs, type, count: String(count) }, content: ciphertext }] })
    unackedOf(dev).get(id).resent = true
  }

  /**
   * What the real phone does right after a companion links: an INITIAL_BOOTSTRAP history-sync
   * notification with the (here empty) history inlined, encrypted from the phone (device 0) like any
   * message, so Baileys leaves AwaitingInitialSync at once instead of after its 20 s timeout. Its
   * `notify` carries the account's push name, which is how Baileys learns `me.name`.
   */
  async sendHistorySync (dev) {
    const acc = dev.account
    const ep = this.sim.endpoint(acc)
    const addr = ep.address(acc.phone, dev.id)
    if (!ep.hasSession(addr)) {
      if (!dev.signedPreKey) return
      await ep.initSession(addr, this.sim.keys.companionBundle(dev))
    }
    const History = proto.HistorySync.HistorySyncType
    const inline = deflateSync(Buffer.from(proto.HistorySync.encode({ syncType: History.INITIAL_BOOTSTRAP, conversations: [], pushnames: [] }).finish()))
    const { type, ciphertext } = await ep.encrypt(addr, {
      protocolMessage: {
        type: proto.Message.ProtocolMessage.Type.HISTORY_SYNC_NOTIFICATION,
        historySyncNotification: { syncType: History.INITIAL_BOOTSTRAP, chunkOrder: 0, progress: 100, initialHistBootstrapInlinePayload: inline }
      }
    })
    this.deliver(dev, {
      tag: 'message',
      attrs: { from: `${acc.phone}@${S}`, id: messageId(), t: now(), type: 'text', category: 'peer', notify: acc.pushName },
      content: [{ tag: 'enc', attrs: { v: '2', type }, content: ciphertext }]
    })
  }

  /** App-state sync: every requested collection is empty and complete at the version asked. */
  appStateSync (syncNode) {
    return { tag: 'sync', attrs: {}, content: getBinaryNodeChildren(syncNode, 'collection').map(c => ({ tag: 'collection', attrs: { name: c.attrs.name, version: c.attrs.version ?? '0' } })) }
  }

  /** The account `to` names (a phone number, `+number` or a user jid). */
  target (to) {
    const user = String(to ?? '').replace(/^\+/, '').split('@')[0].split(':')[0]
    const acc = this.sim.accounts.byPhone.get(user) ?? this.sim.accounts.byLid.get(user)
    if (!acc) throw new HttpError(404, `no account ${to}`)
    return acc
  }

  // ---- a contact sends ----
  /** Contact `phone` sends a message of `kind` (content.mjs, or `prebuilt`: e.g. media the media host
   * encrypted) to every linked device of account `to`. */
  async sendFromContact (phone, to, kind, body, prebuilt = null) {
    const contact = this.contact(phone)
    const c = contact.contact
    const target = this.target(to)
    const devices = target.liveDevices()
    if (!devices.length) throw new HttpError(409, `account ${to} has no linked device`)
    const chat = [...c.messages.values()].filter(m => m.peer === target.phone)
    const message = prebuilt ?? buildMessage(kind, body, {
      find: id => chat.find(m => m.id === id) ?? null,
      chatJid: userJid(target, c.addressing),
      meJid: mode => userJid(contact, mode)
    })
    const ep = this.sim.endpoint(contact)
    const id = messageId()
    const { attrs, enc } = stanzaAttrs(message)
    let queued = 0
    for (const dev of devices) {
      const addr = ep.address(target.phone, dev.id)
      if (!ep.hasSession(addr)) {
        if (!dev.signedPreKey) throw new HttpError(409, `${dev.jid} has not uploaded keys yet`)
        await ep.initSession(addr, this.sim.keys.companionBundle(dev))
      }
      const { type, ciphertext } = await ep.encrypt(addr, message)
      if (!dev.conn || dev.conn.closed) queued++
      this.deliver(dev, {
        tag: 'message',
        attrs: { ...addressedFrom(contact, c.addressing), id, t: now(), ...attrs, notify: c.pushName },
        content: [{ tag: 'enc', attrs: { v: '2', type, ...enc }, content: ciphertext }]
      })
    }
    c.remember({ id, fromMe: true, author: c.jid, peer: target.phone, mode: c.addressing, message })
    c.outbox.push({ id, to: `${target.phone}@${S}`, t: Number(now()), ...describeMessage(message) })
    return { id, to: `${target.phone}@${S}`, devices: devices.length, queued, kind }
  }

  /** Contact `phone` sends a delivery/read/played receipt to account `to` for messages it received. */
  sendReceipt (phone, { to, ids, type = 'delivery' }) {
    const c = this.contact(phone).contact
    const target = this.target(to)
    if (!RECEIPT_TYPES.includes(type)) throw new HttpError(400, `"type" is one of ${RECEIPT_TYPES.join(', ')}`)
    if (!Array.isArray(ids) || !ids.length || ids.length > MAX_RECEIPT_IDS) throw new HttpError(400, `"ids" must list 1 to ${MAX_RECEIPT_IDS} message ids`)
    for (const id of ids) {
      const m = c.messages.get(String(id))
      if (!m || m.fromMe || m.peer !== target.phone) throw new HttpError(404, `the contact received no message ${id} from ${target.phone}`)
    }
    const [first, ...rest] = ids.map(String)
    const node = {
      tag: 'receipt',
      attrs: { from: c.jid, id: first, t: now(), ...(type === 'delivery' ? {} : { type }) },
      ...(rest.length ? { content: [{ tag: 'list', attrs: {}, content: rest.map(id => ({ tag: 'item', attrs: { id } })) }] } : {})
    }
    const devices = target.liveDevices()
    for (const dev of devices) this.deliver(dev, node)
    return { ids: [first, ...rest], type, devices: devices.length }
  }
}
