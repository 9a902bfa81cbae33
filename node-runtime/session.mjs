// One hosted WhatsApp session: its Baileys socket, its IPC auth state, and the events it reports.
// Reconnect decisions belong to Python; the only exception is restartRequired (515), which is
// handled here right after every pending auth write is durable.
import makeWASocket, { Browsers, DisconnectReason, WA_CERT_DETAILS, generateMessageIDV2 } from '@whiskeysockets/baileys'
import { loadIpcAuthState, pipelineWrites } from './auth-state.mjs'
import { IpcError } from './ipc.mjs'
import { ForwardedIds, attachMessages, buildAndRelay, storedMessage } from './messages.mjs'
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS, SEND_ACK_TIMEOUT_MS } from './defaults.mjs'
import { GroupCache, attachGroups } from './groups.mjs'
import { ReceivedMessages } from './received.mjs'

// After a failed auth write, how long a send that already went out waits for the server's ack
// before answering (the socket sends nothing any more but still reads).
const FAULT_ACK_GRACE_MS = 5_000
// proto.WebMessageInfo.Status.SERVER_ACK, as Baileys reports it in messages.update
const SERVER_ACK = 2
// Baileys retries a failed key commit 10 times, 3 s apart. Python answers a write only once it is
// durable or has failed for a reason a retry will not fix (it holds back further writes itself),
// so one attempt: a failure is then reported at once instead of after half a minute.
const TRANSACTION_OPTS = { maxCommitRetries: 1, delayBetweenTriesMs: 0 }

const REASONS = new Map()
for (const [name, code] of Object.entries(DisconnectReason)) {
  if (typeof code === 'number' && !REASONS.has(code)) REASONS.set(code, name)
}

export class Session {
  constructor (id, ipc, log) {
    this.id = id
    this.ipc = ipc
    this.log = log.child({ session: id })
    this.sock = null
    this.auth = null
    this.args = null
    this.generation = 0
    this.chain = Promise.resolve()
    this.writeFault = null
    this.sends = new Set()
    this.ackWaits = new Set()
    this.forwarded = new ForwardedIds()
    this.groupCache = new GroupCache()
  }

  emit (name, data) { this.ipc.event(this.id, name, data) }

  // Events are handled one after another so `open` can never overtake the flush before it.
  serial (fn) {
    this.chain = this.chain.then(fn).catch((err) => this.log.error({ err: String(err?.stack ?? err) }, 'event handler failed'))
    return this.chain
  }

  async start (args, { reloadAuth = true } = {}) {
    await this.closeSocket()
    this.args = args
    if (args.trust_root) WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(args.trust_root, 'hex')
    if (reloadAuth || !this.auth) {
      this.writeFault = null
      this.auth = await loadIpcAuthState(this.ipc, this.id, this.log, { onWriteFault: (err) => this.onWriteFault(err) })
    }
    const generation = ++this.generation
    const groups = this.groupCache = new GroupCache()
    const received = new ReceivedMessages(this, this.auth.state.creds)
    this.log.info({ login: args.login ?? 'qr', phone: args.phone || undefined, url: args.wa_url }, 'starting socket')
    this.baileysLog = this.log.child({ module: 'baileys' }, { level: args.log_level ?? 'warn' })
    const sock = makeWASocket({
      auth: this.auth.state,
      waWebSocketUrl: args.wa_url,
      logger: this.baileysLog,
      browser: Browsers.ubuntu(args.browser || 'baileys-bridge'),
      printQRInTerminal: false,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      connectTimeoutMs: args.connect_timeout_ms ?? CONNECT_TIMEOUT_MS,
      defaultQueryTimeoutMs: args.query_timeout_ms ?? QUERY_TIMEOUT_MS,
      transactionOpts: TRANSACTION_OPTS,
      // A miss is fetched once and kept (then patched by the group events), so the next send to
      // that group asks the server nothing.
      getMessage: (key) => storedMessage(this.ipc, this.id, key, this.log),
      cachedGroupMetadata: async (jid) => groups.get(jid) ?? await sock.groupMetadata(jid).then((meta) => { groups.set(meta); return meta }, () => undefined),
      // a received message is stored by Python before its keys are committed and it is acknowledged
      makeSignalRepository: (auth, logger, pnToLid) => received.makeRepository(auth, logger, pnToLid)
    })
    received.watch(sock)
    this.sock = sock
    const current = () => generation === this.generation
    sock.ev.on('creds.update', (update) => {
      if (!current()) return
      const keys = Object.keys(update ?? {})
      this.emit('creds.update', { count: keys.length, keys })
      this.auth.saveCreds().catch(() => { /* a failed save is reported through onWriteFault and ends the socket */ })
    })
    sock.ev.on('connection.update', (update) => this.serial(() => current() && this.onConnection(update, generation)))
    attachMessages(this, sock, current)
    attachGroups(this, sock, current)
    return {}
  }

  async onConnection (update, generation) {
    const { connection, qr, isNewLogin, receivedPendingNotifications, lastDisconnect } = update
    const data = {}
    if (connection) data.connection = connection
    if (qr) data.qr = qr
    if (isNewLogin !== undefined) data.is_new_login = Boolean(isNewLogin)
    if (receivedPendingNotifications !== undefined) data.receivedPendingNotifications = Boolean(receivedPendingNotifications)
    if (connection === 'open') {
      try {
        await this.auth.flush()
      } catch (err) {
        // Never report `open` on creds Python did not make durable: close and let Python decide.
        this.emit('connection.update', { connection: 'close', disconnect: { status_code: null, reason: null, message: `creds not durable: ${err.message}`.slice(0, 500), handled_by_runtime: false } })
        await this.closeSocket()
        return
      }
      const me = this.sock?.user
      if (me?.id) data.me = { id: me.id, name: me.name ?? null, lid: me.lid ?? null }
    }
    if (connection === 'close') {
      const err = lastDisconnect?.error
      const status = err?.output?.statusCode ?? null
      const disconnect = { status_code: status, reason: REASONS.get(status) ?? null, message: String(err?.message ?? 'connection closed').slice(0, 500), handled_by_runtime: false }
      data.disconnect = disconnect
      if (generation === this.generation) this.sock = null
      if (status === DisconnectReason.restartRequired && this.args) {
        try {
          await this.auth.flush()
          disconnect.handled_by_runtime = true
        } catch (e) {
          disconnect.message = `restart required but creds are not durable (${e.message}); waiting for start`
        }
        this.emit('connection.update', data)
        if (disconnect.handled_by_runtime && generation === this.generation) {
          await this.start(this.args, { reloadAuth: false })
        }
        return
      }
    }
    this.emit('connection.update', data)
    if (qr) this.emit('qr', { qr })
  }

  // A key or creds write failed: from this moment the socket sends nothing (Baileys checks
  // `ws.isOpen` before every frame), so nothing further can build on the state Python could not
  // store. It keeps reading until the sends already out have their ack (bounded), then ends
  // without logging out; Python suspends the session and restarts it from disk later.
  onWriteFault (err) {
    if (this.writeFault) return
    this.writeFault = err
    const sock = this.sock
    this.log.error({ err: String(err?.message ?? err) }, 'auth write failed: the socket sends nothing more')
    if (!sock) return
    Object.defineProperty(sock.ws, 'isOpen', { configurable: true, get: () => false })
    const settled = Promise.allSettled([...this.sends])
    const grace = new Promise((resolve) => setTimeout(resolve, FAULT_ACK_GRACE_MS).unref())
    const message = `auth write failed (${String(err?.message ?? err)}); socket closed without logging out`.slice(0, 500)
    Promise.race([settled, grace])
      .then(async () => {
        if (this.sock !== sock) return // stopped or restarted meanwhile
        await this.closeSocket()
        this.emit('connection.update', { connection: 'close', disconnect: { status_code: null, reason: null, message, handled_by_runtime: false } })
      })
      .catch((e) => this.log.error({ err: String(e?.message ?? e) }, 'closing the socket after a write fault failed'))
  }

  requireSocket () {
    if (this.writeFault) {
      const code = typeof this.writeFault.code === 'string' ? this.writeFault.code : 'storage_fault'
      throw new IpcError(code, `session ${this.id} stopped using its socket: an auth write failed (${this.writeFault.message})`)
    }
    if (!this.sock) throw new IpcError('session_state', `session ${this.id} has no socket; send start first`)
    return this.sock
  }

  async requestPairingCode (phone) {
    const sock = this.requireSocket()
    if (sock.authState.creds.registered) throw new IpcError('session_state', 'session is already registered')
    const code = await sock.requestPairingCode(phone)
    this.emit('pairing_code', { code })
    return { code }
  }

  // Answered only once the server acknowledged the message (`<ack class="message" id=...>`):
  // "sent" must mean WhatsApp has it, not that bytes reached our socket buffer. The waiter is
  // registered before the send, with our own message id, so a fast ack cannot be missed.
  //
  // The moment the ack arrives, the message (the WAMessage Baileys built) and its server ack are
  // forwarded in one write (`messages.upsert` append + `messages.update` status 2): the ack usually
  // comes while Baileys still commits the message's Signal keys (an `auth.set` round trip), so
  // Python stores the message and its `sent` status meanwhile instead of after the answer. The
  // answer itself still waits for that commit; it carries `message` only when it was not forwarded
  // (the socket was replaced meanwhile), and Baileys' own later `append` upsert of a forwarded
  // message is not forwarded again (`forwarded`).
  //
  // If the key commit after the send fails (Python could not store them), the message still went
  // out: Baileys' relayMessage runs sendNode inside keys.transaction and commits after it (while
  // other sends are in flight the commit is pipelined: the next send may go out before it is
  // durable, auth-state.mjs `pipelineWrites`). Then
  // the answer is `persisted: false` (never "retry": the contact may have it) with `server_ack`
  // telling whether the ack came within a short grace.
  async send (to, content, options = {}, ackTimeoutMs = this.args?.send_ack_timeout_ms ?? SEND_ACK_TIMEOUT_MS) {
    const sock = this.requireSocket()
    const messageId = generateMessageIDV2(sock.user?.id)
    const work = this.sendOnce(sock, to, content, options, messageId, ackTimeoutMs)
    this.sends.add(work)
    try {
      return await work
    } finally {
      this.sends.delete(work)
    }
  }

  async sendOnce (sock, to, content, options, messageId, ackTimeoutMs) {
    let onAck
    let ackSeen = false
    let endWait
    let built = null
    let forwarded = false
    const acked = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new IpcError('no_server_ack', `no server ack for message ${messageId} within ${ackTimeoutMs} ms`))
      }, ackTimeoutMs)
      onAck = (node) => {
        if (node?.attrs?.id !== messageId) return
        clearTimeout(timer)
        if (node.attrs.error) reject(new IpcError('server_nack', `server refused message ${messageId} (error ${node.attrs.error})`))
        else {
          ackSeen = true
          if (built && this.sock === sock) {
            try {
              this.ipc.events(this.id, [
                ['messages.upsert', { type: 'append', messages: [built] }],
                ['messages.update', { updates: [{ key: built.key, status: SERVER_ACK }] }]
              ])
              forwarded = true
              this.forwarded.add(built.key.id)
            } catch (err) {
              // the answer carries the message instead; the ack itself must still end the wait
              this.log.warn({ messageId, err: String(err?.message ?? err) }, 'could not forward a sent message at its ack')
            }
          }
          resolve()
        }
      }
      endWait = () => {
        clearTimeout(timer)
        reject(new IpcError('no_server_ack', `the socket closed before the server acknowledged message ${messageId}`))
      }
      sock.ws.on('CB:ack,class:message', onAck)
      this.ackWaits.add(endWait)
    })
    acked.catch(() => { /* awaited below; this only marks the rejection handled */ })
    try {
      // while other sends of the account are in flight, the key transaction ends once its commit is
      // sent to Python; this send waits for it to be durable either way
      const sending = pipelineWrites(() => buildAndRelay(sock, to, content, { ...options, messageId }, this.baileysLog, (message) => { built = message }), () => this.sends.size > 1)
        .then(({ result, durable }) => durable.then(() => result))
      sending.catch(() => { /* awaited below through Promise.race */ })
      let sent
      try {
        // the relay resolves after the key commit, which may come after the ack; a missing ack
        // (timeout, nack) ends the wait for both.
        sent = await Promise.race([sending, acked.then(() => sending)])
      } catch (err) {
        if (!err?.authWrite) throw err
        const grace = new Promise((resolve) => setTimeout(resolve, FAULT_ACK_GRACE_MS).unref())
        await Promise.race([acked.catch(() => { /* no ack within the grace: server_ack stays false */ }), grace])
        this.log.error({ messageId, serverAck: ackSeen }, 'message went out but its keys were not stored')
        return { id: messageId, persisted: false, server_ack: ackSeen }
      }
      await acked
      return { id: sent?.key?.id ?? messageId, persisted: true, server_ack: true, ...(forwarded ? {} : { message: sent }) }
    } finally {
      sock.ws.off('CB:ack,class:message', onAck)
      this.ackWaits.delete(endWait)
    }
  }

  async logout () {
    await this.requireSocket().logout()
    await this.auth?.flush().catch(() => { /* a failed write was already reported through onWriteFault */ })
    return {}
  }

  async closeSocket () {
    const sock = this.sock
    this.sock = null
    this.generation++
    if (sock) {
      try { sock.end(undefined) } catch { /* already closed: nothing left to end */ }
    }
    for (const endWait of [...this.ackWaits]) endWait() // no ack can come on a closed socket
    if (this.auth) await this.auth.flush().catch(() => { /* a failed write was already reported through onWriteFault */ })
  }

  // Sends in flight answer before `stop` does (bounded by the ack grace): the process may exit
  // right after `stop`, and a send left unanswered would read as "retry" for a message that went
  // out. Meanwhile the socket only reads their acks (after a write fault it sends nothing).
  async stop () {
    const sends = [...this.sends]
    if (sends.length) {
      const grace = new Promise((resolve) => setTimeout(resolve, FAULT_ACK_GRACE_MS).unref())
      await Promise.race([Promise.allSettled(sends), grace])
    }
    await this.closeSocket()
    return {}
  }
}
