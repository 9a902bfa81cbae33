// Message content as a WhatsApp phone writes and reads it: the proto.Message a simulated contact
// sends for each kind the control API offers, the stanza attributes WhatsApp puts around it, a
// plain JSON description of any proto.Message a contact decrypts, and the poll-vote cipher.
// The shapes follow Baileys 7.0.0-rc14 (Utils/messages.js generateWAMessageContent and
// Socket/messages-send.js getMessageType / getMediaType), which mirror WhatsApp Web.
import { proto, aesEncryptGCM, aesDecryptGCM, hmacSign, sha256, normalizeMessageContent, getContentType } from '@whiskeysockets/baileys'
import { randomBytes } from 'node:crypto'
import { HttpError } from './errors.mjs'

const Protocol = proto.Message.ProtocolMessage.Type
const PROTOCOL_NAMES = Object.fromEntries(Object.entries(Protocol).map(([name, n]) => [n, name]))

/** WhatsApp's limits that a phone enforces before sending (the app refuses; so does the simulator). */
export const LIMITS = { pollOptionsMin: 2, pollOptionsMax: 12, textMax: 65_536 }

export const SEND_KINDS = ['text', 'reaction', 'edit', 'revoke', 'location', 'contact', 'poll', 'poll_vote']

const need = (body, key) => {
  const v = body[key]
  if (v === undefined || v === null || v === '') throw new HttpError(400, `missing "${key}"`)
  return v
}
const num = (body, key, lo, hi) => {
  const v = Number(need(body, key))
  if (!Number.isFinite(v) || v < lo || v > hi) throw new HttpError(400, `"${key}" must be a number in [${lo}, ${hi}]`)
  return v
}

/** The poll option hash WhatsApp puts in a vote: sha256 of the option's name. */
export const optionHash = name => sha256(Buffer.from(name))

function pollVoteKey ({ pollMsgId, pollCreatorJid, voterJid, pollEncKey }) {
  const sign = Buffer.concat([Buffer.from(pollMsgId), Buffer.from(pollCreatorJid), Buffer.from(voterJid), Buffer.from('Poll Vote'), Buffer.from([1])])
  const key0 = hmacSign(pollEncKey, new Uint8Array(32), 'sha256')
  return { key: hmacSign(sign, key0, 'sha256'), aad: Buffer.from(`${pollMsgId}\u0000${voterJid}`) }
}

/**
 * Encrypt a vote as WhatsApp does (the inverse of Baileys' decryptPollVote): AES-256-GCM under
 * HMAC-SHA256(HMAC-SHA256(zeros32, secret), id || creator || voter || "Poll Vote" || 0x01), with
 * `id \0 voter` as associated data; the plaintext is a PollVoteMessage of option hashes.
 */
export function encryptPollVote (selectedNames, ctx) {
  const { key, aad } = pollVoteKey(ctx)
  const encIv = randomBytes(12)
  const plain = proto.Message.PollVoteMessage.encode({ selectedOptions: selectedNames.map(optionHash) }).finish()
  return { encPayload: aesEncryptGCM(plain, key, encIv, aad), encIv }
}

/** Decrypt a vote; returns the selected option hashes (Buffers). Throws when the key is wrong. */
export function decryptPollVote ({ encPayload, encIv }, ctx) {
  const { key, aad } = pollVoteKey(ctx)
  return proto.Message.PollVoteMessage.decode(aesDecryptGCM(Buffer.from(encPayload), key, Buffer.from(encIv), aad)).selectedOptions.map(b => Buffer.from(b))
}

/**
 * Build the proto.Message a contact sends for a control-API body. `ctx` gives what the phone knows:
 * `find(id)` -> a message of this chat ({ id, fromMe, author, mode, message }) or null, `chatJid`
 * (the session as the contact addresses it), `meJid(mode)` (the contact itself, 'pn' or 'lid').
 * A vote is encrypted with the poll's author and the voter in the addressing the poll came in.
 */
export function buildMessage (kind, body, ctx) {
  const known = id => {
    const m = ctx.find(String(id))
    if (!m) throw new HttpError(404, `the contact has no message ${id} in this chat`)
    return m
  }
  const keyOf = m => ({ remoteJid: ctx.chatJid, fromMe: m.fromMe, id: m.id })
  let message
  switch (kind) {
    case 'text': {
      const text = String(need(body, 'text'))
      if (text.length > LIMITS.textMax) throw new HttpError(400, `text longer than ${LIMITS.textMax} characters`)
      const contextInfo = {}
      if (body.quoted) {
        const q = known(body.quoted)
        Object.assign(contextInfo, { stanzaId: q.id, participant: q.author, quotedMessage: q.message })
      }
      if (Array.isArray(body.mentions) && body.mentions.length) contextInfo.mentionedJid = body.mentions.map(String)
      message = Object.keys(contextInfo).length ? { extendedTextMessage: { text, contextInfo } } : { conversation: text }
      break
    }
    case 'reaction':
      message = { reactionMessage: { key: keyOf(known(need(body, 'key_id'))), text: String(body.emoji ?? ''), senderTimestampMs: Date.now() } }
      break
    case 'edit': {
      const m = known(need(body, 'key_id'))
      if (!m.fromMe) throw new HttpError(409, 'a contact can only edit its own messages')
      message = { protocolMessage: { key: keyOf(m), type: Protocol.MESSAGE_EDIT, editedMessage: { conversation: String(need(body, 'text')) }, timestampMs: Date.now() } }
      break
    }
    case 'revoke': {
      const m = known(need(body, 'key_id'))
      if (!m.fromMe) throw new HttpError(409, 'a contact can only revoke its own messages')
      message = { protocolMessage: { key: keyOf(m), type: Protocol.REVOKE } }
      break
    }
    case 'location':
      message = {
        locationMessage: {
          degreesLatitude: num(body, 'lat', -90, 90),
          degreesLongitude: num(body, 'long', -180, 180),
          ...(body.name ? { name: String(body.name) } : {}),
          ...(body.address ? { address: String(body.address) } : {})
        }
      }
      break
    case 'contact': {
      const cards = need(body, 'contacts')
      if (!Array.isArray(cards) || !cards.length) throw new HttpError(400, '"contacts" must be a non-empty list of {display_name, vcard}')
      const list = cards.map(c => ({ displayName: String(c.display_name ?? ''), vcard: String(c.vcard ?? '') }))
      message = list.length === 1 ? { contactMessage: list[0] } : { contactsArrayMessage: { displayName: `${list.length} contacts`, contacts: list } }
      break
    }
    case 'poll': {
      const options = need(body, 'options')
      if (!Array.isArray(options) || options.length < LIMITS.pollOptionsMin || options.length > LIMITS.pollOptionsMax) {
        throw new HttpError(400, `a poll has ${LIMITS.pollOptionsMin} to ${LIMITS.pollOptionsMax} options`)
      }
      const selectable = Number(body.selectable_count ?? 1)
      if (!Number.isInteger(selectable) || selectable < 0 || selectable > options.length) throw new HttpError(400, `"selectable_count" must be 0..${options.length}`)
      const poll = { name: String(need(body, 'name')), options: options.map(o => ({ optionName: String(o) })), selectableOptionsCount: selectable }
      message = { messageContextInfo: { messageSecret: randomBytes(32) }, [selectable === 1 ? 'pollCreationMessageV3' : 'pollCreationMessage']: poll }
      break
    }
    case 'poll_vote': {
      const m = known(need(body, 'poll_id'))
      const poll = pollOf(m.message)
      const secret = m.message?.messageContextInfo?.messageSecret
      if (!poll || !secret) throw new HttpError(409, `message ${m.id} is not a poll the contact can vote on`)
      const names = need(body, 'options')
      const valid = new Set(poll.options.map(o => o.optionName))
      const unknown = (Array.isArray(names) ? names : []).filter(n => !valid.has(n))
      if (!Array.isArray(names) || unknown.length) throw new HttpError(400, `"options" must name options of the poll (unknown: ${unknown.join(', ')})`)
      const vote = encryptPollVote(names.map(String), { pollMsgId: m.id, pollCreatorJid: m.author, voterJid: ctx.meJid(m.mode), pollEncKey: Buffer.from(secret) })
      message = { pollUpdateMessage: { pollCreationMessageKey: keyOf(m), vote, senderTimestampMs: Date.now() } }
      break
    }
    default:
      throw new HttpError(400, `unknown kind "${kind}"; one of ${SEND_KINDS.join(', ')}`)
  }
  return message
}

const pollOf = m => m?.pollCreationMessage ?? m?.pollCreationMessageV2 ?? m?.pollCreationMessageV3 ?? null

/** The `<message>` attributes and `<enc>` attributes WhatsApp puts around this content. */
export function stanzaAttrs (message) {
  const m = normalizeMessageContent(message) ?? {}
  const enc = {}
  const mediaType = m.imageMessage
    ? 'image'
    : m.videoMessage
      ? (m.videoMessage.gifPlayback ? 'gif' : 'video')
      : m.audioMessage
        ? (m.audioMessage.ptt ? 'ptt' : 'audio')
        : m.contactMessage ? 'vcard' : m.documentMessage ? 'document' : m.contactsArrayMessage ? 'contact_array' : m.stickerMessage ? 'sticker' : ''
  if (mediaType) enc.mediatype = mediaType
  if (m.reactionMessage) enc['decrypt-fail'] = 'hide'
  const type = m.reactionMessage ? 'reaction' : (pollOf(m) || m.pollUpdateMessage) ? 'poll' : mediaType ? 'media' : 'text'
  const attrs = { type }
  const p = message.protocolMessage
  if (p?.type === Protocol.MESSAGE_EDIT) attrs.edit = '1'
  if (p?.type === Protocol.REVOKE) attrs.edit = '7'
  return { attrs, enc }
}

const MEDIA = {
  imageMessage: 'image', videoMessage: 'video', audioMessage: 'audio', documentMessage: 'document', stickerMessage: 'sticker'
}

/**
 * A decrypted proto.Message as plain JSON: `kind` (text - with `link_preview` when it carries one -, reaction, edit, revoke, location, contact,
 * poll, poll_vote, image, video, audio, voice, document, sticker, history_sync, protocol,
 * unsupported), `raw_type` (the proto field), and the kind's fields. `pollVote(update)` returns the
 * option names of a vote when the reader knows the poll (else `selected` is null).
 */
export function describeMessage (message, { pollVote } = {}) {
  const m = normalizeMessageContent(message) ?? {}
  const rawType = getContentType(m) ?? null
  const out = { kind: 'unsupported', raw_type: rawType, text: null }
  const ctxInfo = m.extendedTextMessage?.contextInfo ?? m[rawType]?.contextInfo
  if (ctxInfo?.stanzaId) out.quoted = { id: ctxInfo.stanzaId, participant: ctxInfo.participant ?? null }
  if (ctxInfo?.mentionedJid?.length) out.mentions = [...ctxInfo.mentionedJid]
  if (m.conversation != null || m.extendedTextMessage) {
    out.kind = 'text'
    out.text = m.conversation ?? m.extendedTextMessage.text ?? ''
    const x = m.extendedTextMessage
    if (x?.matchedText || x?.title) {
      out.link_preview = { matched_text: x.matchedText ?? null, title: x.title ?? null, description: x.description ?? null, thumbnail_bytes: x.jpegThumbnail?.length ?? 0 }
    }
  } else if (m.reactionMessage) {
    out.kind = 'reaction'
    out.reaction = { key_id: m.reactionMessage.key?.id ?? null, from_me: !!m.reactionMessage.key?.fromMe, emoji: m.reactionMessage.text ?? '' }
  } else if (m.protocolMessage) {
    const p = m.protocolMessage
    if (p.type === Protocol.REVOKE) {
      out.kind = 'revoke'
      out.revoke = { key_id: p.key?.id ?? null }
    } else if (p.type === Protocol.MESSAGE_EDIT) {
      const edited = normalizeMessageContent(p.editedMessage) ?? {}
      out.kind = 'edit'
      out.edit = { key_id: p.key?.id ?? null, text: edited.conversation ?? edited.extendedTextMessage?.text ?? null }
    } else if (p.type === Protocol.HISTORY_SYNC_NOTIFICATION) {
      out.kind = 'history_sync'
    } else {
      out.kind = 'protocol'
      out.protocol_type = PROTOCOL_NAMES[p.type] ?? String(p.type)
    }
  } else if (m.locationMessage) {
    const l = m.locationMessage
    out.kind = 'location'
    out.location = { lat: l.degreesLatitude, long: l.degreesLongitude, name: l.name ?? null, address: l.address ?? null }
  } else if (m.contactMessage || m.contactsArrayMessage) {
    const list = m.contactMessage ? [m.contactMessage] : m.contactsArrayMessage.contacts ?? []
    out.kind = 'contact'
    out.contacts = list.map(c => ({ display_name: c.displayName ?? '', vcard: c.vcard ?? '' }))
  } else if (pollOf(m)) {
    const p = pollOf(m)
    out.kind = 'poll'
    out.poll = { name: p.name ?? '', options: (p.options ?? []).map(o => o.optionName ?? ''), selectable_count: p.selectableOptionsCount ?? 0 }
  } else if (m.pollUpdateMessage) {
    const u = m.pollUpdateMessage
    out.kind = 'poll_vote'
    out.poll_vote = { poll_id: u.pollCreationMessageKey?.id ?? null, selected: pollVote ? pollVote(u) : null }
  } else if (MEDIA[rawType]) {
    const media = m[rawType]
    out.kind = rawType === 'audioMessage' && media.ptt ? 'voice' : MEDIA[rawType]
    out.text = media.caption ?? null
    out.media = { mimetype: media.mimetype ?? null, file_length: Number(media.fileLength ?? 0), file_name: media.fileName ?? null }
  }
  return out
}

/** The poll inside a message (any version), or null. */
export { pollOf }
