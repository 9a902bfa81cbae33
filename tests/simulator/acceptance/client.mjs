// Acceptance driver: plain Baileys 7.0.0-rc14 with useMultiFileAuthState in a folder, pointed at
// the simulator. argv: <ws_url> <root_pub_hex> <auth_dir>. JSON lines on stdout (events), commands
// on stdin: {"cmd":"pair_code","phone"}, {"cmd":"send","to","text"}, {"cmd":"quit"}.
// It reconnects by itself only on 515 (restartRequired), as every Baileys integration does.
import makeWASocket, { useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason } from '@whiskeysockets/baileys'
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
    qrTimeout: opt.qrTimeout
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
  sock.ev.on('messages.upsert', ({ messages, type }) => {
    for (const m of messages) {
      const text = m.message?.conversation ?? m.message?.extendedTextMessage?.text
      out({ ev: 'message', type, id: m.key.id, from: m.key.remoteJid, fromMe: m.key.fromMe, text, status: m.status })
    }
  })
  sock.ev.on('messaging-history.set', h => out({ ev: 'history', chats: h.chats?.length ?? 0, isLatest: h.isLatest }))
  sock.ev.on('creds.update', u => { if (u.accountSyncCounter !== undefined) out({ ev: 'account_sync', counter: u.accountSyncCounter }) })
  sock.ev.on('messages.update', us => { for (const u of us) out({ ev: 'message_update', id: u.key.id, status: u.update?.status }) })
  sock.ws.on('CB:ack,class:message', node => out({ ev: 'server_ack', id: node.attrs.id, error: node.attrs.error }))
}
start()

readline.createInterface({ input: process.stdin }).on('line', async line => {
  let m
  try {
    m = JSON.parse(line)
  } catch (e) {
    return out({ ev: 'error', cmd: null, message: `command line is not JSON: ${e.message}` })
  }
  try {
    if (m.cmd === 'pair_code') out({ ev: 'pairing_code', code: await sock.requestPairingCode(m.phone) })
    else if (m.cmd === 'send') {
      const r = await sock.sendMessage(m.to, { text: m.text })
      out({ ev: 'sent', id: r.key.id, to: r.key.remoteJid })
    } else if (m.cmd === 'quit') await quit()
  } catch (e) { out({ ev: 'error', cmd: m.cmd, message: e.message }) }
})
process.stdin.on('end', () => { quit().catch(e => out({ ev: 'error', cmd: 'quit', message: e.message })) })
