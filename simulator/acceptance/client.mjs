// Acceptance driver: plain Baileys 7.0.0-rc14 with useMultiFileAuthState in a folder, pointed at
// the simulator. argv: <ws_url> <root_pub_hex> <auth_dir>. JSON lines on stdout (events), commands
// on stdin, one JSON object a line (see COMMANDS below; every command answers with an event named
// after it, or {"ev":"error","cmd",...}). It reconnects by itself only on 515 (restartRequired),
// as every Baileys integration does.
import makeWASocket, {
  useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason, decryptPollVote, getAggregateVotesInPollMessage,
  getContentType, jidNormalizedUser, normalizeMessageContent
} from '@whiskeysockets/baileys'
import P from 'pino'
import readline from 'node:readline'

const [url, rootPub, dir] = process.argv.slice(2)
const opt = JSON.parse(process.env.SIM_CLIENT_OPTS || '{}')
if (rootPub && rootPub !== '-') WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPub, 'hex') // test trust anchor
const out = o => process.stdout.write(JSON.stringify(o) + '\n')
const logger = P({ level: process.env.SIM_CLIENT_LOG || 'warn' }, P.destination(2))
process.on('unhandledRejection', e => out({ ev: 'unhandled_rejection', message: String(e?.message ?? e) }))
process.on('uncaughtException', e => out({ ev: 'uncaught_exception', message: String(e?.message ?? e) }))

const { state, saveCreds } = await useMultiFileAuthState(dir)
// useMultiFileAuthState writes creds.json in place (not atomically): exiting mid-write leaves an
// empty file. Serialize saves and let them finish before exiting.
let saving = Promise.resolve()
const save = () => { saving = saving.then(saveCreds).catch(e => out({ ev: 'save_error', message: e.message })) }
const QUIT_DRAIN_MS = 300 // lets the socket's last frames and creds writes start before we wait for them
async function quit () {
  try { sock.end(undefined) } catch { /* already closed: nothing left to end */ }
  await new Promise(resolve => setTimeout(resolve, QUIT_DRAIN_MS))
  await saving
  process.exit(0)
}

// Every message seen or sent, by id: what replies, reactions, edits, reads and votes refer to.
const messages = new Map()
const known = id => {
  const m = messages.get(id)
  if (!m) throw new Error(`driver has no message ${id}`)
  return m
}

/** Votes on our own polls, decrypted as a Baileys user must (rc14 does not do it itself). */
function readVote (m) {
  const update = normalizeMessageContent(m.message)?.pollUpdateMessage
  const poll = update && messages.get(update.pollCreationMessageKey?.id)
  const secret = poll?.message?.messageContextInfo?.messageSecret
  if (!poll || !secret) return null
  const meId = jidNormalizedUser(m.key.remoteJid?.endsWith('@lid') ? sock.user.lid : sock.user.id)
  const vote = decryptPollVote(update.vote, { pollCreatorJid: meId, pollMsgId: poll.key.id, pollEncKey: secret, voterJid: jidNormalizedUser(m.key.remoteJid) })
  const tally = getAggregateVotesInPollMessage({ message: poll.message, pollUpdates: [{ pollUpdateMessageKey: m.key, vote }] }, meId)
  return tally.filter(o => o.voters.length).map(o => o.name)
}

let sock
function start () {
  sock = makeWASocket({
    auth: state,
    waWebSocketUrl: url,
    logger,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    ...(opt.defaultHistorySync ? {} : { shouldSyncHistoryMessage: () => false }),
    fireInitQueries: true,
    connectTimeoutMs: opt.connectTimeoutMs ?? 20000,
    keepAliveIntervalMs: opt.keepAliveIntervalMs ?? 30000,
    defaultQueryTimeoutMs: opt.defaultQueryTimeoutMs ?? 20000,
    qrTimeout: opt.qrTimeout,
    getMessage: async key => messages.get(key.id)?.message
  })
  sock.ev.on('creds.update', save)
  sock.ev.on('connection.update', u => {
    const code = u.lastDisconnect?.error?.output?.statusCode
    out({
      ev: 'connection',
      connection: u.connection,
      qr: u.qr,
      isNewLogin: u.isNewLogin,
      status: code,
      error: u.lastDisconnect?.error?.message,
      me: u.connection === 'open' ? sock.user : undefined
    })
    if (u.connection === 'close' && code === DisconnectReason.restartRequired) start()
  })
  sock.ev.on('messages.upsert', ({ messages: list, type }) => {
    for (const m of list) {
      if (m.key.id && m.message) messages.set(m.key.id, m)
      const content = normalizeMessageContent(m.message)
      const text = content?.conversation ?? content?.extendedTextMessage?.text
      let vote = null
      try { vote = content?.pollUpdateMessage ? readVote(m) : null } catch (e) { vote = { error: e.message } }
      out({
        ev: 'message',
        type,
        id: m.key.id,
        from: m.key.remoteJid,
        fromAlt: m.key.remoteJidAlt ?? null,
        participant: m.key.participant ?? null,
        participantAlt: m.key.participantAlt ?? null,
        addressingMode: m.key.addressingMode ?? null,
        fromMe: m.key.fromMe,
        pushName: m.pushName ?? null,
        text,
        status: m.status,
        contentType: getContentType(content) ?? null,
        message: m.message ?? null,
        vote
      })
    }
  })
  sock.ev.on('messaging-history.set', h => out({ ev: 'history', chats: h.chats?.length ?? 0, isLatest: h.isLatest }))
  sock.ev.on('creds.update', u => {
    if (u.accountSyncCounter !== undefined) out({ ev: 'account_sync', counter: u.accountSyncCounter })
    if (u.me?.name) out({ ev: 'me_name', name: u.me.name })
  })
  sock.ev.on('messages.update', us => {
    for (const u of us) out({ ev: 'message_update', id: u.key.id, remoteJid: u.key.remoteJid, status: u.update?.status, update: u.update })
  })
  sock.ev.on('presence.update', p => out({ ev: 'presence', id: p.id, presences: p.presences }))
  sock.ev.on('groups.upsert', gs => { for (const g of gs) out({ ev: 'group_upsert', id: g.id, subject: g.subject, participants: g.participants }) })
  sock.ev.on('groups.update', gs => { for (const g of gs) out({ ev: 'group_update', ...g }) })
  sock.ev.on('group-participants.update', u => out({ ev: 'participants_update', id: u.id, author: u.author, action: u.action, participants: u.participants }))
  sock.ev.on('message-receipt.update', us => { for (const u of us) out({ ev: 'message_receipt', id: u.key.id, remoteJid: u.key.remoteJid, receipt: u.receipt }) })
  sock.ws.on('CB:ack,class:message', node => out({ ev: 'server_ack', id: node.attrs.id, error: node.attrs.error }))
}
start()

/** Resolve references to earlier messages by id in a Baileys content object. */
function content (c) {
  const resolved = { ...c }
  if (c.react?.key_id) resolved.react = { text: c.react.text, key: known(c.react.key_id).key }
  if (typeof c.edit === 'string') resolved.edit = known(c.edit).key
  if (typeof c.delete === 'string') resolved.delete = known(c.delete).key
  return resolved
}

const COMMANDS = {
  pair_code: async m => ({ code: await sock.requestPairingCode(m.phone) }),
  // {to, text} or {to, content: AnyMessageContent (react.key_id / edit / delete name ids), quoted?: id}
  send: async m => {
    const r = await sock.sendMessage(m.to, m.content ? content(m.content) : { text: m.text }, m.quoted ? { quoted: known(m.quoted) } : {})
    messages.set(r.key.id, r)
    return { id: r.key.id, to: r.key.remoteJid, message: r.message }
  },
  read: async m => { await sock.readMessages(m.ids.map(id => known(id).key)); return { ids: m.ids } },
  presence: async m => { await sock.sendPresenceUpdate(m.type, m.to); return { type: m.type } },
  subscribe: async m => { await sock.presenceSubscribe(m.to); return { to: m.to } },
  on_whatsapp: async m => ({ results: (await sock.onWhatsApp(...m.numbers)) ?? [] }),
  profile_picture: async m => ({ url: await sock.profilePictureUrl(m.jid, m.type ?? 'preview') }),
  status: async m => ({ results: ((await sock.fetchStatus(m.jid)) ?? []).map(r => ({ id: r.id, status: r.status?.status ?? null })) }),
  group_create: async m => ({ group: await sock.groupCreate(m.subject, m.participants) }),
  group_metadata: async m => ({ group: await sock.groupMetadata(m.jid) }),
  group_participants: async m => ({ results: (await sock.groupParticipantsUpdate(m.jid, m.participants, m.action)).map(r => ({ jid: r.jid, status: r.status })) }),
  group_subject: async m => { await sock.groupUpdateSubject(m.jid, m.subject); return {} },
  group_description: async m => { await sock.groupUpdateDescription(m.jid, m.description); return {} },
  group_setting: async m => { await sock.groupSettingUpdate(m.jid, m.setting); return {} },
  group_invite_code: async m => ({ code: await sock.groupInviteCode(m.jid) }),
  group_accept_invite: async m => ({ jid: await sock.groupAcceptInvite(m.code) }),
  group_leave: async m => { await sock.groupLeave(m.jid); return {} },
  group_fetch_all: async () => ({ groups: Object.values(await sock.groupFetchAllParticipating()) }),
  quit: async () => { await quit(); return {} }
}

readline.createInterface({ input: process.stdin }).on('line', async line => {
  let m
  try {
    m = JSON.parse(line)
  } catch (e) {
    return out({ ev: 'error', cmd: null, message: `command line is not JSON: ${e.message}` })
  }
  const fn = Object.hasOwn(COMMANDS, m.cmd) ? COMMANDS[m.cmd] : null
  if (!fn) return out({ ev: 'error', cmd: m.cmd, message: `unknown command ${m.cmd}` })
  try {
    const result = await fn(m)
    out({ ev: m.cmd === 'send' ? 'sent' : m.cmd === 'pair_code' ? 'pairing_code' : m.cmd, ...result })
  } catch (e) {
    out({ ev: 'error', cmd: m.cmd, message: e.message, status: e.output?.statusCode ?? null })
  }
})
process.stdin.on('end', () => { quit().catch(e => out({ ev: 'error', cmd: 'quit', message: e.message })) })
