// The simulated WhatsApp server: WebSocket listener, one Connection per client, login and
// pairing, the init queries Baileys makes, and fault injection. Messages live in messaging.mjs.
import { WebSocketServer } from 'ws'
import { Curve, encodeBinaryNode, decodeBinaryNode, getBinaryNodeChild, getBinaryNodeChildBuffer, jidDecode } from '@whiskeysockets/baileys'
import { randomBytes } from 'node:crypto'
import { NoiseServer, ProtocolViolation, frame } from './noise.mjs'
import { makeCertChain } from './certs.mjs'
import { Accounts } from './accounts.mjs'
import { parseQr, signDeviceIdentity, verifyDeviceSignature, primaryHello, primaryFinish } from './phone.mjs'
import { Messaging } from './messaging.mjs'
import { KeyDirectory } from './keys.mjs'
import { Directory } from './directory.mjs'
import { Presence } from './presence.mjs'
import { MediaHost } from './media.mjs'
import { Groups, isGroupJid } from './groups.mjs'
import { SignalEndpoint } from './signal.mjs'
import { HttpError, log } from './errors.mjs'
import { defaultOptions, TIMEOUTS } from './defaults.mjs'
import { S_WHATSAPP_NET as S, unixNow as now, sleep } from './wire.mjs'

export const FAULT_KINDS = ['drop', 'stall', 'deaf', '515', '401', '403', '440', '503', 'bad_frame', 'slow_handshake', 'bad_cert']

/** One WebSocket client: Noise state, then either a registration (QR / code) or a logged-in device. */
class Connection {
  constructor (sim, ws, id) {
    this.sim = sim; this.ws = ws; this.id = id
    this.noise = new NoiseServer({ staticKeyPair: sim.serverStatic, maxBuffered: sim.opts.maxFrame + 8 })
    this.device = null; this.registration = null; this.stalled = false; this.deaf = false; this.closed = false
    this.queue = Promise.resolve()
    this.handshakeFault = sim.takeHandshakeFault()
    // like the real edge, a client that never finishes the handshake is dropped
    this.handshakeTimer = setTimeout(() => { if (this.noise.stage !== 'transport') { log(`conn ${id} handshake timeout`); this.close() } },
      (this.handshakeFault?.delayMs ?? 0) + sim.opts.handshakeTimeoutMs)
    this.handshakeTimer.unref?.()
    ws.on('message', data => { this.queue = this.queue.then(() => this.onData(data)).catch(e => this.violation(e)) })
    ws.on('close', () => this.onClose())
    ws.on('error', e => log(`conn ${id} ws error`, e.message))
  }

  violation (e) {
    if (this.closed) return
    log(`conn ${this.id} protocol violation, closing:`, e instanceof ProtocolViolation ? e.message : e.stack)
    this.sim.stats.violations++
    this.close()
  }

  close () { if (!this.closed) { if (this.device) this.sim.countClose(this.device); this.closed = true; try { this.ws.terminate() } catch { /* already gone */ } this.onClose() } }

  onClose () {
    if (!this.closed && this.device) this.sim.countClose(this.device)
    this.closed = true
    clearTimeout(this.handshakeTimer)
    if (this.device?.conn === this) this.device.conn = null
    if (this.registration) this.sim.dropRegistration(this)
  }

  /** Send a last stanza (stream:error, failure), then close once the client had time to read it. */
  sendAndClose (node) {
    this.sendNode(node)
    setTimeout(() => this.close(), TIMEOUTS.closeAfterErrorMs)
  }

  sendRaw (bytes) { if (!this.closed && !this.stalled && this.ws.readyState === 1) this.ws.send(bytes) }

  sendNode (node) {
    if (this.closed || this.stalled) return
    if (this.sim.opts.trace) log(`conn ${this.id} >> ${node.tag} ${JSON.stringify(node.attrs)}`)
    this.sendRaw(frame(this.noise.encrypt(encodeBinaryNode(node))))
  }

  async onData (data) {
    if (this.closed || this.stalled) return
    for (const f of this.noise.feed(data)) {
      if (this.closed || this.stalled) return
      if (this.noise.stage === 'hello') {
        if (this.handshakeFault?.delayMs) await sleep(this.handshakeFault.delayMs)
        const chain = makeCertChain(this.sim.root, this.sim.serverStatic, { issuerSerial: this.handshakeFault?.issuerSerial ?? 0 })
        this.sendRaw(frame(this.noise.onClientHello(f, chain)))
      } else if (this.noise.stage === 'finish') {
        const { clientStatic, payload } = this.noise.onClientFinish(f)
        this.onLogin(clientStatic, payload)
      } else {
        let node
        try { node = await decodeBinaryNode(this.noise.decrypt(f)) } catch (e) { throw new ProtocolViolation(`undecodable frame: ${e.message}`) }
        if (this.sim.opts.trace) log(`conn ${this.id} << ${node.tag} ${JSON.stringify(node.attrs)} ${Array.isArray(node.content) ? node.content.map(c => c.tag).join(',') : ''}`)
        if (!this.deaf) await this.sim.onNode(this, node)
      }
    }
  }

  onLogin (clientStatic, cp) {
    if (cp.devicePairingData) {
      const d = cp.devicePairingData
      this.registration = {
        noisePub: clientStatic,
        identityPub: Buffer.from(d.eIdent),
        registrationId: Buffer.from(d.eRegid).readUInt32BE(0),
        signedPreKey: { keyId: Buffer.from(d.eSkeyId).readUIntBE(0, 3), pub: Buffer.from(d.eSkeyVal), signature: Buffer.from(d.eSkeySig) },
        refs: [],
        pushName: cp.pushName,
      }
      this.sim.startRegistration(this)
      return
    }
    const phone = String(cp.username ?? '')
    const acc = this.sim.accounts.get(phone)
    const device = acc?.devices.get(cp.device ?? 0)
    if (!acc || !device || device.removed || !device.noisePub.equals(clientStatic)) {
      log(`conn ${this.id} login refused for ${phone}:${cp.device} (unknown, removed or wrong noise key)`)
      this.sendAndClose({ tag: 'failure', attrs: { reason: '401', location: 'sim' } })
      return
    }
    if (acc.banned) {
      this.sendAndClose({ tag: 'failure', attrs: { reason: '403', location: 'sim' } })
      return
    }
    const old = device.conn
    if (old && old !== this) {
      old.sendAndClose({ tag: 'stream:error', attrs: {}, content: [{ tag: 'conflict', attrs: { type: 'replaced' } }] })
    }
    device.conn = this; this.device = device
    this.sim.countLogin(device, old && old !== this && !old.closed)
    log(`conn ${this.id} logged in as ${device.jid}`)
    this.sendNode({ tag: 'success', attrs: { t: now(), lid: `${acc.lid}@lid`, location: 'sim', props: '1', abprops: '1', creation: now() } })
    // what the device has not acknowledged yet comes first (same ids), then what was queued while it was away
    const queued = [...this.sim.messaging.unackedFor(device), ...device.offline.splice(0)]
    for (const node of queued) this.sendNode(node)
    this.sendNode({ tag: 'ib', attrs: { from: S }, content: [{ tag: 'offline', attrs: { count: String(queued.length) } }] })
    if (this.sim.opts.historySync && !device.historySent) {
      device.historySent = true
      // after Baileys uploaded its pre-keys on this first login (the phone needs a bundle)
      device.onPreKeys = () => this.sim.messaging.sendHistorySync(device).catch(e => log('history sync failed', e.message))
    }
  }
}

export class Simulator {
  constructor (opts = {}) {
    this.opts = { host: '127.0.0.1', port: 0, ...defaultOptions(), ...opts }
    this.root = opts.root ?? Curve.generateKeyPair()
    this.serverStatic = Curve.generateKeyPair()
    this.accounts = new Accounts()
    this.refs = new Map()          // ref -> { conn, expires }
    this.codeRegs = new Map()      // phone -> { conn, hello, state }
    this.handshakeFaults = []
    this.conns = new Set()
    this.nextConnId = 1
    this.stats = { connections: 0, violations: 0 }
    this.messaging = new Messaging(this)
    this.keys = new KeyDirectory(this)
    this.directory = new Directory(this)
    this.presence = new Presence(this)
    this.media = new MediaHost()
    this.groups = new Groups(this)
  }

  /** jid (pn or lid, with or without device) -> { acc, device } or null. */
  resolve (jid) {
    const d = jid && jidDecode(jid)
    if (!d?.user) return null
    const acc = this.accounts.byUser(d.user, d.server === 'lid' ? 'lid' : 'pn')
    return acc ? { acc, device: d.device ?? 0 } : null
  }

  /** The simulated phone of an account (its Signal identity is the account key, as on WhatsApp). */
  endpoint (acc) { return (acc.endpoint ??= new SignalEndpoint(acc.identity)) }

  async listen () {
    this.wss = new WebSocketServer({ host: this.opts.host, port: this.opts.port, maxPayload: this.opts.maxFrame })
    this.wss.on('connection', ws => {
      const conn = new Connection(this, ws, this.nextConnId++)
      this.conns.add(conn); this.stats.connections++
      ws.on('close', () => this.conns.delete(conn))
    })
    await new Promise((resolve, reject) => { this.wss.once('listening', resolve); this.wss.once('error', reject) })
    return this.wss.address().port
  }

  async close () {
    for (const c of this.conns) c.close()
    this.media.close()
    await new Promise(resolve => this.wss.close(() => resolve()))
  }

  /** Per device: logged-in connections whose socket is still open (`live`, its maximum ever), logins, and
   * logins that replaced a connection still open ("conflict: replaced"). GET /connections shows them. */
  countLogin (device, replaced) {
    const c = (this.connCounts ??= new Map())
    const n = c.get(device.jid) ?? { jid: device.jid, live: 0, max_live: 0, logins: 0, replaced: 0 }
    n.live++; n.logins++; if (replaced) n.replaced++
    n.max_live = Math.max(n.max_live, n.live)
    c.set(device.jid, n)
  }

  countClose (device) { const n = this.connCounts?.get(device.jid); if (n) n.live = Math.max(0, n.live - 1) }

  takeHandshakeFault () { const f = this.handshakeFaults[0]; if (f && --f.remaining <= 0) this.handshakeFaults.shift(); return f }

  // ---- registration (QR and pairing code) ----
  startRegistration (conn) {
    const refs = Array.from({ length: this.opts.refCount }, () => `2@${randomBytes(18).toString('base64')}`)
    const issued = Date.now()
    refs.forEach(ref => this.refs.set(ref, { conn, expires: issued + this.opts.refTtlMs }))
    conn.registration.refs = refs
    conn.sendNode({
      tag: 'iq',
      attrs: { from: S, type: 'set', id: this.tag(), xmlns: 'md' },
      content: [{ tag: 'pair-device', attrs: {}, content: refs.map(r => ({ tag: 'ref', attrs: {}, content: Buffer.from(r) })) }]
    })
    // like the real server, refs run out: when they have all expired, the server closes the socket
    conn.refTimer = setTimeout(() => { if (conn.registration && !conn.registration.pairing) { log(`conn ${conn.id} QR refs expired`); conn.close() } }, this.opts.refTtlMs)
    conn.refTimer.unref?.()
  }

  dropRegistration (conn) {
    clearTimeout(conn.refTimer)
    for (const ref of conn.registration?.refs ?? []) this.refs.delete(ref)
    for (const [phone, r] of this.codeRegs) if (r.conn === conn) this.codeRegs.delete(phone)
  }

  /** Control: the phone `phone` (new account if omitted) scans `qr`. Resolves when the companion signed. */
  async scan (qr, phone) {
    const parsed = parseQr(qr)
    const entry = this.refs.get(parsed.ref)
    if (!entry || entry.expires < Date.now() || entry.conn.closed) throw new HttpError(404, 'QR ref unknown or expired (the client must be showing this QR on an open connection)')
    const conn = entry.conn
    if (!conn.registration.identityPub.equals(parsed.identityPub) || !conn.registration.noisePub.equals(parsed.noisePub)) throw new HttpError(400, 'QR keys do not match the connection that holds this ref')
    const account = this.accounts.ensure(phone)
    if (account.banned) throw new HttpError(403, 'account is banned')
    return this.pairSuccess(conn, account, parsed.advSecret)
  }

  /** Sends pair-success and waits for the companion's pair-device-sign. */
  pairSuccess (conn, account, advSecret) {
    const reg = conn.registration
    if (reg.pairing) throw new HttpError(409, 'this connection is already pairing')
    const deviceId = account.nextDeviceId++
    const id = this.tag()
    reg.pairing = { account, deviceId, id }
    for (const ref of reg.refs) this.refs.delete(ref)
    conn.sendNode({
      tag: 'iq',
      attrs: { from: S, type: 'set', id, xmlns: 'md', t: now() },
      content: [{
        tag: 'pair-success',
        attrs: {},
        content: [
          { tag: 'device-identity', attrs: {}, content: signDeviceIdentity(account, deviceId, reg.identityPub, advSecret) },
          { tag: 'platform', attrs: { name: 'smba' } },
          { tag: 'device', attrs: { jid: `${account.phone}:${deviceId}@${S}`, lid: `${account.lid}:${deviceId}@lid` } },
        ]
      }]
    })
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { reg.pairing = null; reject(new HttpError(504, 'companion did not answer pair-success with pair-device-sign')) }, TIMEOUTS.pairSignMs)
      reg.pairing.done = device => { clearTimeout(timer); resolve(device) }
      reg.pairing.fail = msg => { clearTimeout(timer); reject(new HttpError(502, msg)) }
    })
  }

  onPairDeviceSign (conn, node) {
    const reg = conn.registration; const p = reg?.pairing
    if (!p || node.attrs.id !== p.id) return false
    const sign = getBinaryNodeChild(node, 'pair-device-sign')
    const idNode = getBinaryNodeChild(sign, 'device-identity')
    if (!idNode || !verifyDeviceSignature(p.account, reg.identityPub, Buffer.from(idNode.content))) {
      p.fail?.('companion device signature invalid')
      conn.sendAndClose({ tag: 'stream:error', attrs: { code: '401' } })
      return true
    }
    const device = this.accounts.addDevice(p.account, p.deviceId, { identityPub: reg.identityPub, registrationId: reg.registrationId, signedPreKey: reg.signedPreKey, noisePub: reg.noisePub, platform: 'smba' })
    log(`paired ${device.jid} (lid ${device.lidJid})`)
    this.dropRegistration(conn); conn.registration = null
    conn.sendAndClose({ tag: 'stream:error', attrs: { code: '515' } })
    p.done?.(device)
    return true
  }

  /** Control: the phone `phone` types `code` into "link with phone number". */
  async enterPairCode (phone, code) {
    const reg = this.codeRegs.get(String(phone).replace(/^\+/, ''))
    if (!reg || reg.conn.closed) throw new HttpError(404, `no client is waiting for a pairing code for ${phone}`)
    const account = this.accounts.ensure(phone)
    if (account.banned) throw new HttpError(403, 'account is banned')
    let state
    try { state = await primaryHello(account, reg.hello, String(code).replace(/-/g, '').toUpperCase()) } catch (e) { throw new HttpError(400, `wrong pairing code: ${e.message}`) }
    reg.state = state; reg.account = account
    const done = new Promise((resolve, reject) => { reg.resolve = resolve; reg.reject = reject })
    const timer = setTimeout(() => reg.reject(new HttpError(504, 'companion did not finish pairing-code linking')), TIMEOUTS.pairCodeFinishMs)
    reg.conn.sendNode({
      tag: 'notification',
      attrs: { from: S, type: 'link_code_companion_reg', id: this.tag(), t: now() },
      content: [{
        tag: 'link_code_companion_reg',
        attrs: {},
        content: [
          { tag: 'link_code_pairing_ref', attrs: {}, content: reg.ref },
          { tag: 'primary_identity_pub', attrs: {}, content: Buffer.from(account.identity.public) },
          { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: state.wrappedPrimaryEph },
        ]
      }]
    })
    try { return await done } finally { clearTimeout(timer) }
  }

  onLinkCode (conn, node, child) {
    const stage = child.attrs.stage
    const phone = jidDecode(child.attrs.jid)?.user
    if (stage === 'companion_hello') {
      if (!conn.registration || !phone) return this.iqError(conn, node, 400, 'bad-request')
      const ref = Buffer.from(randomBytes(16).toString('base64url'))
      this.codeRegs.set(phone, { conn, ref, hello: { wrappedCompanionEph: Buffer.from(getBinaryNodeChildBuffer(child, 'link_code_pairing_wrapped_companion_ephemeral_pub')), noisePub: getBinaryNodeChildBuffer(child, 'companion_server_auth_key_pub') } })
      log(`conn ${conn.id} waits for pairing code of ${phone}`)
      return conn.sendNode({ tag: 'iq', attrs: { from: S, type: 'result', id: node.attrs.id }, content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: ref }] }] })
    }
    if (stage === 'companion_finish') {
      const reg = this.codeRegs.get(phone)
      if (!reg?.state || reg.conn !== conn) return this.iqError(conn, node, 404, 'item-not-found')
      let fin
      try { fin = primaryFinish(reg.account, reg.state, Buffer.from(getBinaryNodeChildBuffer(child, 'link_code_pairing_wrapped_key_bundle'))) } catch (e) {
        // AES-CTR cannot tell a wrong code at the hello step; it shows here. The client may retry.
        reg.state = null; reg.reject(new HttpError(400, `wrong pairing code (key bundle did not decrypt: ${e.message})`))
        return this.iqError(conn, node, 400, 'bad-request')
      }
      if (!fin.companionIdentityPub.equals(conn.registration.identityPub)) { reg.reject(new HttpError(502, 'companion identity mismatch')); return this.iqError(conn, node, 400, 'bad-request') }
      conn.sendNode({ tag: 'iq', attrs: { from: S, type: 'result', id: node.attrs.id } })
      this.codeRegs.delete(phone)
      this.pairSuccess(conn, reg.account, fin.advSecret).then(reg.resolve, reg.reject)
      return undefined
    }
    return this.iqError(conn, node, 400, 'bad-request')
  }

  // ---- stanzas from logged-in or registering clients ----
  tag () { return `sim-${(this._tag = (this._tag ?? 0) + 1)}` }
  result (conn, node, content) { conn.sendNode({ tag: 'iq', attrs: { from: S, type: 'result', id: node.attrs.id }, content }) }
  iqError (conn, node, code, text) { conn.sendNode({ tag: 'iq', attrs: { from: S, type: 'error', id: node.attrs.id }, content: [{ tag: 'error', attrs: { code: String(code), text } }] }) }

  async onNode (conn, node) {
    if (node.tag === 'iq') return this.onIq(conn, node)
    if (!conn.device) return undefined // registering clients only send iqs
    if (node.tag === 'message') return isGroupJid(node.attrs.to) ? this.groups.onMessage(conn, node) : this.messaging.onMessage(conn, node)
    if (node.tag === 'receipt' && node.attrs.type === 'server-error') return this.media.onRetryReceipt(conn, node, (jid, id) => { const m = this.resolve(jid)?.acc.contact?.messages.get(id); return m?.fromMe ? m.message : null })
    if (node.tag === 'receipt') return this.messaging.onReceipt(conn, node)
    if (node.tag === 'presence') return this.presence.onPresence(conn, node)
    if (node.tag === 'chatstate') return this.presence.onChatstate(conn, node)
    if (node.tag === 'ack') return this.messaging.onAck(conn, node)
    return undefined // ib: accepted and ignored
  }

  async onIq (conn, node) {
    const { type, xmlns } = node.attrs
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    if (type === 'result' || type === 'error') {
      if (child?.tag === 'pair-device-sign' || conn.registration?.pairing?.id === node.attrs.id) this.onPairDeviceSign(conn, node)
      return undefined
    }
    if (xmlns === 'md' && child?.tag === 'link_code_companion_reg') return this.onLinkCode(conn, node, child)
    if (!conn.device) return this.result(conn, node) // e.g. unified_session before login
    const d = conn.device
    if (xmlns === 'md' && child?.tag === 'remove-companion-device') {
      d.removed = true; this.result(conn, node)
      conn.sendAndClose({ tag: 'stream:error', attrs: { code: '401' }, content: [{ tag: 'conflict', attrs: { type: 'device_removed' } }] })
      return undefined
    }
    if (xmlns === 'encrypt') return this.keys.onIq(conn, node, child)
    if (xmlns === 'usync') return this.directory.usync(conn, node)
    if (xmlns === 'w:m' && child?.tag === 'media_conn') return this.result(conn, node, [await this.media.mediaConn()])
    if (xmlns === 'w:profile:picture') return this.directory.profilePicture(conn, node)
    if (xmlns === 'w:g2') return this.groups.onIq(conn, node)
    if (xmlns === 'w:sync:app:state' && child?.tag === 'sync') return this.result(conn, node, [this.messaging.appStateSync(child)])
    if (xmlns === 'abt' && child?.tag === 'props') return this.result(conn, node, [{ tag: 'props', attrs: { protocol: '1', hash: 'sim' }, content: [] }])
    if (xmlns === 'w' && child?.tag === 'props') return this.result(conn, node, [{ tag: 'props', attrs: { protocol: '2', hash: 'sim' }, content: [] }])
    if (xmlns === 'blocklist') return this.result(conn, node, type === 'get' ? [{ tag: 'list', attrs: {} }] : undefined)
    if (xmlns === 'privacy' && type === 'get' && child?.tag === 'privacy') {
      const cat = (name, value) => ({ tag: 'category', attrs: { name, value } })
      return this.result(conn, node, [{ tag: 'privacy', attrs: {}, content: [cat('last', 'all'), cat('online', 'all'), cat('profile', 'all'), cat('status', 'all'), cat('readreceipts', 'all'), cat('groupadd', 'all'), cat('calladd', 'all')] }])
    }
    return this.result(conn, node) // passive, w:p ping, w:stats, dirty, presence-related sets...
  }

  // ---- faults ----
  /** Apply a fault to every connected device of an account (or one device jid). Returns count. */
  fault ({ jid, phone, kind, delay_ms: delayMs, count }) {
    if (!FAULT_KINDS.includes(kind)) throw new HttpError(400, `unknown fault kind ${kind}; one of ${FAULT_KINDS.join(', ')}`)
    if (kind === 'slow_handshake' || kind === 'bad_cert') {
      this.handshakeFaults.push({ remaining: count ?? 1, delayMs: kind === 'slow_handshake' ? (delayMs ?? TIMEOUTS.slowHandshakeMs) : 0, issuerSerial: kind === 'bad_cert' ? 7 : 0 })
      return { applied: 0, pending_handshakes: count ?? 1 }
    }
    let devices
    if (jid) {
      const dec = jidDecode(jid)
      const acc = dec && this.accounts.byUser(dec.user, dec.server)
      devices = acc ? [...acc.devices.values()].filter(d => dec.device === undefined || d.id === dec.device) : []
    } else if (phone) {
      devices = [...(this.accounts.get(phone)?.devices.values() ?? [])]
    } else throw new HttpError(400, 'give "jid" or "phone"')
    if (kind === '403') { const acc = devices[0]?.account; if (acc) acc.banned = true }
    const conns = devices.map(d => d.conn).filter(Boolean)
    for (const c of conns) this.applyFault(c, kind)
    if (kind === '401') devices.forEach(d => { d.removed = true })
    return { applied: conns.length }
  }

  applyFault (c, kind) {
    const streamError = (code, content) => c.sendAndClose({ tag: 'stream:error', attrs: code ? { code } : {}, content })
    switch (kind) {
      case 'drop': return c.close()
      case 'stall': c.stalled = true; return undefined // socket stays open, nothing flows either way
      case 'deaf': c.deaf = true; return undefined // the server still sends but ignores everything the client sends (acks, receipts, pings)
      case '515': return streamError('515')
      case '503': return streamError('503')
      case '401': return streamError('401', [{ tag: 'conflict', attrs: { type: 'device_removed' } }])
      case '440': return streamError(undefined, [{ tag: 'conflict', attrs: { type: 'replaced' } }])
      case '403': return c.sendAndClose({ tag: 'failure', attrs: { reason: '403', location: 'sim' } })
      case 'bad_frame': return c.sendRaw(frame(randomBytes(64)))
      default: throw new HttpError(400, `unknown fault kind ${kind}`)
    }
  }

  /** Control: lift a ban so the account can log in again. */
  unban (phone) { const acc = this.accounts.get(phone); if (!acc) throw new HttpError(404, 'no such account'); acc.banned = false; return acc.toJSON() }
}
