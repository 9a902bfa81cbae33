// Messaging: typed IPC content to Baileys' sendMessage content, Baileys' message, receipt and
// presence events to IPC events, and the chat-action commands. Translation only: Python has
// already validated everything (recipients, WhatsApp's limits, which message a reaction or an
// edit points at) and resolved references to earlier messages from its store, and it normalises
// what Node forwards. Nothing here formats text or decides anything; the only state is which sent
// messages were forwarded already (`ForwardedIds`).
import { decryptPollVote, generateWAMessage, isJidGroup, jidNormalizedUser, proto } from '@whiskeysockets/baileys'
import { IpcError } from './ipc.mjs'
import { mediaRetry, mediaSend } from './media.mjs'

const STATUS_UPDATE_EVENT = 'messages.update'

// A WAMessage that came back from Python as proto JSON (base64 bytes, enum names) as Baileys' object.
const waMessage = (json) => proto.WebMessageInfo.fromObject(json)

// Python fetched the page (with its SSRF guard); Baileys only puts these fields into the message.
const linkPreview = (p) => ({
  'matched-text': p.matched_text,
  title: p.title,
  ...(p.description ? { description: p.description } : {}),
  ...(p.jpeg_thumbnail ? { jpegThumbnail: Buffer.from(p.jpeg_thumbnail, 'base64') } : {})
})

const CONTENT = {
  text: (c) => ({
    text: c.text,
    ...(c.mentions?.length ? { mentions: c.mentions } : {}),
    linkPreview: c.preview ? linkPreview(c.preview) : null
  }),
  reaction: (c) => ({ react: { text: c.emoji, key: c.key } }),
  edit: (c) => ({ text: c.text, edit: c.key, linkPreview: null }),
  revoke: (c) => ({ delete: c.key }),
  location: (c) => ({
    location: {
      degreesLatitude: c.lat,
      degreesLongitude: c.long,
      ...(c.name ? { name: c.name } : {}),
      ...(c.address ? { address: c.address } : {})
    }
  }),
  contact: (c) => ({
    contacts: {
      displayName: c.display_name ?? undefined,
      contacts: c.contacts.map((card) => ({ displayName: card.display_name, vcard: card.vcard }))
    }
  }),
  poll: (c) => ({ poll: { name: c.name, values: c.options, selectableCount: c.selectable_count } }),
  forward: (c) => ({ forward: waMessage(c.message) })
}

// Baileys' getMessage: a contact's retry receipt (or a poll vote) needs a message's content; Python
// answers from its message store (proto JSON, or null). Failing to ask is "not found", never a crash.
export async function storedMessage (ipc, session, key, log) {
  if (typeof key?.id !== 'string' || !key.id) return undefined
  try {
    const asked = { remoteJid: key?.remoteJid ?? '', id: key?.id, fromMe: Boolean(key?.fromMe), participant: key?.participant ?? null }
    const json = await ipc.request(session, 'message.get', { key: asked })
    return json ? proto.Message.fromObject(json) : undefined
  } catch (err) {
    log.warn({ id: key?.id, err: String(err?.message ?? err) }, 'getMessage: no answer from the message store')
    return undefined
  }
}

// A received poll vote: Python found the poll and its secret in its store; which addresses the
// voter's phone used for creator and voter is not on the wire, so each pair is tried (GCM fails
// on a wrong one).
function pollVote (sock, a) {
  const own = a.creator_is_me ? [sock.user?.id, sock.user?.lid].filter(Boolean).map(jidNormalizedUser) : []
  const vote = { encPayload: Buffer.from(a.enc_payload, 'base64'), encIv: Buffer.from(a.enc_iv, 'base64') }
  const pollEncKey = Buffer.from(a.poll_enc_key, 'base64')
  for (const pollCreatorJid of [...own, ...a.creators]) {
    for (const voterJid of a.voters) {
      try {
        const { selectedOptions } = decryptPollVote(vote, { pollMsgId: a.poll_id, pollCreatorJid, voterJid, pollEncKey })
        return { selected: (selectedOptions ?? []).map((h) => Buffer.from(h).toString('hex')) }
      } catch {
        // another address pair
      }
    }
  }
  throw new IpcError('poll_vote_undecryptable', 'the vote does not decrypt with the poll\'s secret for any known address of creator and voter')
}

export function toBaileysContent (content) {
  const make = Object.hasOwn(CONTENT, content?.kind) ? CONTENT[content.kind] : null
  if (!make) throw new IpcError('bad_args', `unknown content kind ${String(content?.kind).slice(0, 32)}`)
  return make(content)
}

// Baileys' sendMessage (7.0.0-rc14, lib/Socket/messages-send.js; the branch every content here takes)
// in its two steps, so the caller holds the WAMessage before it is relayed: once the server acked
// it, Python can store it while Baileys' key commit is still running (session.mjs `sendOnce`).
// What sendMessage adds around them, repeated here: the `edit` attribute of a revoke (8 when an
// admin deletes someone else's group message, else 7) or an edit (1), the `meta` node of a poll,
// and the `append` upsert it emits (emitOwnEvents) after the relay.
export async function buildAndRelay (sock, jid, content, options, logger, onBuilt) {
  const message = await generateWAMessage(jid, content, {
    logger,
    userJid: sock.authState.creds.me.id,
    upload: sock.waUploadToServer,
    ...options
  })
  onBuilt(message)
  const additionalAttributes = {}
  const additionalNodes = []
  if (content.delete) additionalAttributes.edit = isJidGroup(content.delete.remoteJid) && !content.delete.fromMe ? '8' : '7'
  else if (content.edit) additionalAttributes.edit = '1'
  else if (content.poll) additionalNodes.push({ tag: 'meta', attrs: { polltype: 'creation' } })
  await sock.relayMessage(jid, message.message, { messageId: message.key.id, additionalAttributes, additionalNodes })
  process.nextTick(() => sock.messageMutex.mutex(() => sock.upsertMessage(message, 'append')).catch(() => { /* Baileys logs its own */ }))
  return message
}

export function sendOptions (args) {
  return args.quoted ? { quoted: waMessage(args.quoted) } : {}
}

// The ids of messages this session sent and already forwarded at their server ack (session.mjs
// `sendOnce`), so Baileys' own `append` upsert of each, which follows, is not forwarded a second
// time (only what Baileys merged into it is, see `foldedInto`). Bounded: an id whose upsert never
// comes (the socket closed first) is dropped after MAX.
export class ForwardedIds {
  static MAX = 1000

  constructor () { this.ids = new Set() }

  add (id) {
    this.ids.add(id)
    if (this.ids.size > ForwardedIds.MAX) this.ids.delete(this.ids.values().next().value)
  }

  // Whether `id` was forwarded already (and forget it: Baileys upserts a sent message once).
  take (id) { return this.ids.delete(id) }
}

// What Baileys folded into its own `append` upsert of sent message `m`, which is not forwarded
// (the message went with its server ack), added to `merged`. Baileys' event buffer merges a
// `messages.update` or `message-receipt.update` of a message whose upsert it still holds into that
// message instead of emitting it (lib/Utils/event-buffer.js; the upsert is held until the next
// flush: 100 ms, or the end of a receipt handled meanwhile). A contact's delivery receipt that
// comes in that window (after a key commit slowed by a loaded machine, say) is nowhere else.
// The status the message was built with (PENDING) is not news.
function foldedInto (m, merged) {
  if (m.status !== undefined && m.status !== null && m.status !== proto.WebMessageInfo.Status.PENDING) {
    const error = m.messageStubParameters?.[0]
    merged.updates.push({ key: m.key, status: m.status, ...(error ? { error: String(error) } : {}) })
  }
  for (const receipt of m.userReceipt ?? []) {
    if (receipt?.userJid) merged.receipts.push({ key: m.key, receipt })
  }
}

// Baileys events of one socket, forwarded as they are (its objects, proto JSON on the wire).
// `isCurrent` is false once the session replaced or closed this socket.
export function attachMessages (session, sock, isCurrent) {
  const emit = (name, data) => { if (isCurrent()) session.emit(name, data) }
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    if (type !== 'notify' && type !== 'append') return
    const list = []
    const merged = { updates: [], receipts: [] }
    for (const m of messages ?? []) {
      if (!m?.key?.id) continue
      if (type === 'append' && session.forwarded.take(m.key.id)) foldedInto(m, merged)
      else list.push(m)
    }
    if (list.length) emit('messages.upsert', { type, messages: list })
    if (merged.updates.length) emit(STATUS_UPDATE_EVENT, { updates: merged.updates })
    if (merged.receipts.length) emit('message-receipt.update', { receipts: merged.receipts })
  })
  sock.ev.on(STATUS_UPDATE_EVENT, (updates) => {
    const list = []
    for (const { key, update } of updates ?? []) {
      if (update?.status === undefined || update.status === null || !key?.id) continue
      const error = update.messageStubParameters?.[0]
      list.push({ key, status: update.status, ...(error ? { error: String(error) } : {}) })
    }
    if (list.length) emit(STATUS_UPDATE_EVENT, { updates: list })
  })
  sock.ev.on('message-receipt.update', (receipts) => {
    const list = (receipts ?? []).filter((r) => r?.key?.id && r.receipt?.userJid)
    if (list.length) emit('message-receipt.update', { receipts: list })
  })
  sock.ev.on('presence.update', ({ id, presences }) => emit('presence.update', { id, presences }))
}

// Baileys signals "not found" / "not authorised" of an iq as a Boom whose data is the code.
const hiddenOrMissing = (err) => err?.data === 404 || err?.data === 401 || err?.output?.statusCode === 404

export function messageCommands (sessionOf) {
  const sock = (msg) => sessionOf(msg.s).requireSocket()
  return {
    send: async (msg) => {
      const content = msg.args.content ?? { kind: 'text', text: msg.args.text } // `text`: the first protocol
      const session = sessionOf(msg.s)
      if (content.kind === 'media') {
        const media = await mediaSend(session.requireSocket(), content)
        return session.send(msg.args.to, media.content, { ...sendOptions(msg.args), ...media.options })
      }
      return session.send(msg.args.to, toBaileysContent(content), sendOptions(msg.args))
    },
    media_retry: async (msg) => mediaRetry(sock(msg), msg.args.message),
    poll_vote: async (msg) => pollVote(sock(msg), msg.args),
    read: async (msg) => {
      await sock(msg).readMessages(msg.args.keys)
      return {}
    },
    presence: async (msg) => {
      await sock(msg).sendPresenceUpdate(msg.args.type, msg.args.to ?? undefined)
      return {}
    },
    presence_subscribe: async (msg) => {
      await sock(msg).presenceSubscribe(msg.args.jid)
      return {}
    },
    check_numbers: async (msg) => {
      const s = sock(msg)
      const found = (await s.onWhatsApp(...msg.args.numbers)) ?? []
      const lids = s.signalRepository?.lidMapping
      return {
        found: await Promise.all(found.filter((r) => r.exists).map(async (r) => ({
          jid: r.jid,
          lid: lids ? ((await lids.getLIDForPN(r.jid).catch(() => null)) ?? null) : null
        })))
      }
    },
    profile_picture: async (msg) => {
      try {
        return { url: (await sock(msg).profilePictureUrl(msg.args.jid, msg.args.high_res ? 'image' : 'preview')) ?? null }
      } catch (err) {
        if (hiddenOrMissing(err)) return { url: null }
        throw err
      }
    },
    status_text: async (msg) => {
      const [first] = (await sock(msg).fetchStatus(msg.args.jid)) ?? []
      const status = first?.status
      const setAt = status?.setAt instanceof Date ? Math.floor(status.setAt.getTime() / 1000) : null
      return { status: status?.status ?? null, set_at: setAt || null }
    }
  }
}
