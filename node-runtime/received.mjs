// A received message is stored by Python before Baileys may commit its Signal keys or acknowledge it.
//
// Why: Baileys decrypts a message inside a key transaction, commits the new Signal state, then sends
// the delivery receipt (which is WhatsApp's acknowledgement: the server forgets the message) and only
// then emits messages.upsert. A bridge killed between the commit and Python storing the event loses
// the message for good: WhatsApp, if it still has it, delivers it again, but the used message key
// makes Baileys drop that copy ("Key used already", nack 487). So each decryption of a message stanza
// runs inside an outer key transaction (Baileys' own transaction joins it) that, once the plaintext
// is known, forwards the message to Python (`messages.upsert`) and waits for `message.durable`; the
// keys are committed and the receipt sent only after that. A kill at any moment leaves either keys
// uncommitted (the copy WhatsApp delivers again decrypts and Python, knowing the id, publishes no
// second event) or the message stored. A copy whose keys were already used is answered from Python's
// message store instead of failing (no "failed to decrypt", no retry receipt).
import { DEFAULT_CONNECTION_CONFIG, cleanMessage, decodeMessageNode, proto, unpadRandomMax16, writeRandomPadMax16 } from '@whiskeysockets/baileys'

const COUNTER_ERROR = 'MessageCounterError' // libsignal: this message key was used already

export class ReceivedMessages {
  // `session` gives emit(), ipc, id, log and onWriteFault(); `creds` is the socket's auth creds.
  constructor (session, creds) {
    this.session = session
    this.creds = creds
    this.stanzas = new WeakMap() // an enc node's ciphertext -> its message stanza
  }

  // Baileys' makeSignalRepository with the two decrypt functions wrapped (config.makeSignalRepository).
  makeRepository (auth, logger, pnToLid) {
    const repo = DEFAULT_CONNECTION_CONFIG.makeSignalRepository(auth, logger, pnToLid)
    const decryptMessage = repo.decryptMessage.bind(repo)
    const decryptGroupMessage = repo.decryptGroupMessage.bind(repo)
    repo.decryptMessage = (opts) => this.decrypt(auth.keys, opts.ciphertext, opts.jid, () => decryptMessage(opts))
    repo.decryptGroupMessage = (opts) => this.decrypt(auth.keys, opts.msg, opts.group, () => decryptGroupMessage(opts))
    return repo
  }

  // Remember which stanza each ciphertext came in (Baileys emits `frame` before it handles the stanza).
  watch (sock) {
    sock.ws.on('frame', (node) => {
      if (node?.tag !== 'message' || !Array.isArray(node.content)) return
      for (const child of node.content) {
        if (child?.tag === 'enc' && child.content && typeof child.content === 'object') this.stanzas.set(child.content, node)
      }
    })
  }

  async decrypt (keys, ciphertext, txKey, inner) {
    const stanza = this.stanzas.get(ciphertext)
    if (!stanza) return inner()
    return keys.transaction(async () => {
      let plain
      try {
        plain = await inner()
      } catch (err) {
        const stored = err?.name === COUNTER_ERROR && stanza.attrs.offline ? await this.stored(stanza) : null
        if (!stored) throw err
        return writeRandomPadMax16(proto.Message.encode(stored).finish())
      }
      await this.persist(stanza, plain)
      return plain
    }, txKey)
  }

  // The WAMessage Baileys is about to build (decodeMessageNode + the decrypted content, cleaned the
  // way handleMessage cleans it), forwarded and made durable.
  async persist (stanza, plain) {
    const me = this.creds.me
    if (!me?.id) return
    const { fullMessage } = decodeMessageNode(stanza, me.id, me.lid || '')
    const content = proto.Message.decode(unpadRandomMax16(plain))
    fullMessage.message = content.deviceSentMessage?.message || content
    cleanMessage(fullMessage, me.id, me.lid)
    if (!fullMessage.key?.id) return
    const { session } = this
    session.emit('messages.upsert', { type: stanza.attrs.offline ? 'append' : 'notify', messages: [fullMessage] })
    try {
      await session.ipc.request(session.id, 'message.durable', { id: fullMessage.key.id })
    } catch (err) {
      // Python cannot say it has the message: end the socket before anything is acknowledged
      session.onWriteFault(err)
      throw err
    }
  }

  // The stored content of a message this session received (a copy WhatsApp delivered again), or null.
  async stored (stanza) {
    const key = { remoteJid: stanza.attrs.from ?? '', id: stanza.attrs.id, fromMe: false, participant: stanza.attrs.participant ?? null }
    try {
      const json = await this.session.ipc.request(this.session.id, 'message.get', { key })
      return json ? proto.Message.fromObject(json) : null
    } catch (err) {
      this.session.log.warn({ id: key.id, err: String(err?.message ?? err) }, 'no stored copy of a message delivered again')
      return null
    }
  }
}
