// Pre-key storage, usync device lists, pre-key bundles, and message routing between companion
// devices (real Baileys clients) and simulated primary devices (contacts and accounts' phones).
import { getBinaryNodeChild, getBinaryNodeChildren, getBinaryNodeChildBuffer, encodeBigEndian, jidDecode, proto } from '@whiskeysockets/baileys'
import { deflateSync } from 'node:zlib'
import { SignalEndpoint } from './contacts.mjs'
import { HttpError, log } from './errors.mjs'
import { S_WHATSAPP_NET as S, unixNow as now, messageId, uint } from './wire.mjs'

const textOf = m => m?.conversation ?? m?.extendedTextMessage?.text ?? null

export class Messaging {
  constructor (sim) { this.sim = sim }

  /** The simulated phone of an account (its Signal identity is the account key, as on WhatsApp). */
  endpoint (acc) { return (acc.endpoint ??= new SignalEndpoint(acc.identity)) }

  /** A contact: an account with no companions whose phone records what it decrypts. */
  contact (phone) {
    const acc = this.sim.accounts.ensure(phone)
    if (!acc.inbox) {
      acc.inbox = []; acc.receipts = []; acc.errors = []
    }
    this.endpoint(acc)
    return acc
  }

  contacts () { return this.sim.accounts.all().filter(a => a.inbox) }

  /** jid (pn or lid, with or without device) -> { acc, device } or null. */
  resolve (jid) {
    const d = jid && jidDecode(jid)
    if (!d?.user) return null
    const acc = this.sim.accounts.byUser(d.user, d.server === 'lid' ? 'lid' : 'pn')
    return acc ? { acc, device: d.device ?? 0 } : null
  }

  onIq (conn, node, child) {
    const sim = this.sim; const d = conn.device
    if (node.attrs.xmlns === 'usync') return sim.result(conn, node, [this.usync(child)])
    if (child?.tag === 'count') return sim.result(conn, node, [{ tag: 'count', attrs: { value: String(d.preKeys.size) } }])
    if (child?.tag === 'digest') return sim.result(conn, node, [{ tag: 'digest', attrs: {}, content: [] }])
    if (child?.tag === 'rotate') { this.storeSignedPreKey(d, getBinaryNodeChild(child, 'skey')); return sim.result(conn, node) }
    if (child?.tag === 'key') return sim.result(conn, node, [{ tag: 'list', attrs: {}, content: getBinaryNodeChildren(child, 'user').map(u => this.bundleNode(u.attrs.jid)) }])
    if (node.attrs.type === 'set' && getBinaryNodeChild(node, 'list')) {
      this.storeUpload(d, node); sim.result(conn, node)
      const after = d.onPreKeys; d.onPreKeys = null; after?.()
      return undefined
    }
    return sim.result(conn, node)
  }

  storeSignedPreKey (d, skey) {
    if (!skey) return
    d.signedPreKey = { keyId: uint(getBinaryNodeChildBuffer(skey, 'id')), pub: Buffer.from(getBinaryNodeChildBuffer(skey, 'value')), signature: Buffer.from(getBinaryNodeChildBuffer(skey, 'signature')) }
  }

  /** `<iq xmlns=encrypt type=set><registration/><type/><identity/><list><key/>..</list><skey/></iq>` */
  storeUpload (d, node) {
    const identity = getBinaryNodeChildBuffer(node, 'identity')
    if (identity && !Buffer.from(identity).equals(d.identityPub)) log('pre-key upload with a different identity for', d.jid)
    const reg = getBinaryNodeChildBuffer(node, 'registration')
    if (reg) d.registrationId = uint(reg)
    for (const key of getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key')) {
      d.preKeys.set(uint(getBinaryNodeChildBuffer(key, 'id')), Buffer.from(getBinaryNodeChildBuffer(key, 'value')))
    }
    this.storeSignedPreKey(d, getBinaryNodeChild(node, 'skey'))
  }

  /** A companion's bundle from what it uploaded, consuming its lowest one-time pre-key. */
  companionBundle (dev) {
    const [keyId] = [...dev.preKeys.keys()].sort((a, b) => a - b)
    const preKey = keyId === undefined ? undefined : { keyId, pub: dev.preKeys.get(keyId) }
    if (keyId !== undefined) dev.preKeys.delete(keyId)
    return { registrationId: dev.registrationId, identityPub: dev.identityPub, signedPreKey: dev.signedPreKey, preKey }
  }

  bundleNode (jid) {
    const r = this.resolve(jid)
    const dev = r && r.device !== 0 ? r.acc.devices.get(r.device) : null
    if (!r || (r.device !== 0 && (!dev || dev.removed))) return { tag: 'user', attrs: { jid }, content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }] }
    const b = r.device === 0 ? this.endpoint(r.acc).takeBundle() : this.companionBundle(dev)
    const key = k => ({ tag: 'key', attrs: {}, content: [{ tag: 'id', attrs: {}, content: Buffer.from(encodeBigEndian(k.keyId, 3)) }, { tag: 'value', attrs: {}, content: Buffer.from(k.pub) }] })
    return {
      tag: 'user',
      attrs: { jid },
      content: [
        { tag: 'registration', attrs: {}, content: Buffer.from(encodeBigEndian(b.registrationId, 4)) },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: Buffer.from(b.identityPub) },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: Buffer.from(encodeBigEndian(b.signedPreKey.keyId, 3)) },
            { tag: 'value', attrs: {}, content: Buffer.from(b.signedPreKey.pub) },
            { tag: 'signature', attrs: {}, content: Buffer.from(b.signedPreKey.signature) },
          ]
        },
        ...(b.preKey ? [key(b.preKey)] : []),
      ]
    }
  }

  /** usync: devices, lid and contact protocols; every phone number "is on WhatsApp" (a contact). */
  usync (usyncNode) {
    const protocols = new Set((getBinaryNodeChild(usyncNode, 'query')?.content ?? []).map(p => p.tag))
    const users = getBinaryNodeChildren(getBinaryNodeChild(usyncNode, 'list'), 'user').map(u => {
      let jid = u.attrs.jid
      const phoneNode = getBinaryNodeChild(u, 'contact')
      if (!jid && phoneNode?.content) jid = `${Buffer.from(phoneNode.content).toString().replace(/^\+/, '')}@${S}`
      let r = this.resolve(jid)
      if (!r && jid && jidDecode(jid)?.server === S && /^[1-9][0-9]{5,14}$/.test(jidDecode(jid).user)) r = { acc: this.contact(jidDecode(jid).user), device: 0 }
      const content = []
      if (r && protocols.has('devices')) {
        content.push({
          tag: 'devices',
          attrs: {},
          content: [{
            tag: 'device-list',
            attrs: {},
            content: [
              { tag: 'device', attrs: { id: '0' } },
              ...r.acc.liveDevices().map(d => ({ tag: 'device', attrs: { id: String(d.id), 'key-index': String(d.id) } })),
            ]
          }]
        })
      }
      if (r && protocols.has('lid') && jidDecode(jid).server !== 'lid') content.push({ tag: 'lid', attrs: { val: `${r.acc.lid}@lid` } })
      if (protocols.has('contact')) content.push({ tag: 'contact', attrs: { type: r ? 'in' : 'out' } })
      return { tag: 'user', attrs: { jid }, content }
    })
    return { tag: 'usync', attrs: { ...usyncNode.attrs }, content: [{ tag: 'result', attrs: {} }, { tag: 'list', attrs: {}, content: users }] }
  }

  // ---- messages from a companion ----
  async onMessage (conn, node) {
    const sender = conn.device
    const { id } = node.attrs
    conn.sendNode({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: now() } })
    const targets = []
    const participants = getBinaryNodeChild(node, 'participants')
    for (const to of getBinaryNodeChildren(participants, 'to')) {
      const enc = getBinaryNodeChild(to, 'enc'); if (enc) targets.push({ jid: to.attrs.jid, enc })
    }
    const direct = getBinaryNodeChild(node, 'enc')
    if (direct) targets.push({ jid: node.attrs.to, enc: direct })
    const deviceIdentity = getBinaryNodeChild(node, 'device-identity')
    const delivered = new Set()
    for (const { jid, enc } of targets) {
      const r = this.resolve(jid)
      if (!r) { log(`message ${id} for unknown ${jid}`); continue }
      if (r.device === 0) {
        const ok = await this.toPhone(sender, r.acc, id, enc)
        if (ok && r.acc !== sender.account && !delivered.has(r.acc)) {
          delivered.add(r.acc)
          // a real phone's receipt comes a network round trip later; sent at once it lands in the
          // same Baileys event buffer as the sender's own upsert and is merged into it
          const receipt = { tag: 'receipt', attrs: { from: `${r.acc.phone}@${S}`, id, t: now() } }
          setTimeout(() => conn.sendNode(receipt), this.sim.opts.receiptDelayMs).unref?.()
        }
      } else {
        const dev = r.acc.devices.get(r.device)
        if (!dev || dev.removed) continue
        const own = r.acc === sender.account
        this.deliver(dev, {
          tag: 'message',
          attrs: { from: sender.jid, id, t: now(), type: node.attrs.type ?? 'text', ...(own ? { recipient: node.attrs.to } : {}) },
          content: [{ tag: 'enc', attrs: { ...enc.attrs }, content: enc.content }, ...(deviceIdentity ? [deviceIdentity] : [])]
        })
      }
    }
  }

  /** A simulated phone decrypts what a companion sent it. Returns true when it decrypted. */
  async toPhone (sender, acc, id, enc) {
    const ep = this.endpoint(acc)
    try {
      const msg = await ep.decrypt(ep.address(sender.account.phone, sender.id), enc.attrs.type, Buffer.from(enc.content))
      const inner = msg.deviceSentMessage?.message ?? msg
      const entry = { id, from: `${sender.account.phone}@${S}`, from_device: sender.jid, text: textOf(inner), type: enc.attrs.type, t: Number(now()) };
      (acc.phoneLog ??= []).push(entry)
      if (acc.inbox && !msg.deviceSentMessage) acc.inbox.push(entry)
      return true
    } catch (e) {
      log(`phone ${acc.phone} could not decrypt ${id} from ${sender.jid}: ${e.message}`);
      (acc.errors ??= []).push({ id, from: sender.jid, error: e.message })
      return false
    }
  }

  deliver (dev, node) { if (dev.conn && !dev.conn.closed) dev.conn.sendNode(node); else dev.offline.push({ ...node, attrs: { ...node.attrs, offline: '1' } }) }

  async onReceipt (conn, node) {
    conn.sendNode({ tag: 'ack', attrs: { class: 'receipt', id: node.attrs.id, from: node.attrs.to ?? S, ...(node.attrs.type ? { type: node.attrs.type } : {}) } })
    const r = this.resolve(node.attrs.to)
    if (r?.acc.receipts) r.acc.receipts.push({ id: node.attrs.id, type: node.attrs.type ?? 'delivery', from: conn.device.jid })
  }

  /**
   * What the real phone does right after a companion links: an INITIAL_BOOTSTRAP history-sync
   * notification with the (here empty) history inlined, encrypted from the phone (device 0) like any
   * message, so Baileys leaves AwaitingInitialSync at once instead of after its 20 s timeout.
   */
  async sendHistorySync (dev) {
    const acc = dev.account; const ep = this.endpoint(acc)
    const addr = ep.address(acc.phone, dev.id)
    if (!ep.hasSession(addr)) {
      if (!dev.signedPreKey) return
      await ep.initSession(addr, this.companionBundle(dev))
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
      attrs: { from: `${acc.phone}@${S}`, id: messageId(), t: now(), type: 'text', category: 'peer' },
      content: [{ tag: 'enc', attrs: { v: '2', type }, content: ciphertext }]
    })
  }

  /** App-state sync: every requested collection is empty and complete at the version asked. */
  appStateSync (syncNode) {
    return { tag: 'sync', attrs: {}, content: getBinaryNodeChildren(syncNode, 'collection').map(c => ({ tag: 'collection', attrs: { name: c.attrs.name, version: c.attrs.version ?? '0' } })) }
  }

  // ---- a contact sends ----
  async sendFromContact (phone, to, text) {
    const contact = this.contact(phone)
    const target = this.sim.accounts.get(to)
    if (!target) throw new HttpError(404, `no account ${to}`)
    const devices = target.liveDevices()
    if (!devices.length) throw new HttpError(409, `account ${to} has no linked device`)
    const ep = this.endpoint(contact)
    const id = messageId()
    let queued = 0
    for (const dev of devices) {
      const addr = ep.address(target.phone, dev.id)
      if (!ep.hasSession(addr)) {
        if (!dev.signedPreKey) throw new HttpError(409, `${dev.jid} has not uploaded keys yet`)
        await ep.initSession(addr, this.companionBundle(dev))
      }
      const { type, ciphertext } = await ep.encrypt(addr, { conversation: text })
      if (!dev.conn || dev.conn.closed) queued++
      this.deliver(dev, {
        tag: 'message',
        attrs: { from: `${contact.phone}@${S}`, id, t: now(), type: 'text', notify: `Contact ${contact.phone}` },
        content: [{ tag: 'enc', attrs: { v: '2', type }, content: ciphertext }]
      })
    }
    return { id, to: `${target.phone}@${S}`, devices: devices.length, queued }
  }
}
export { proto }
