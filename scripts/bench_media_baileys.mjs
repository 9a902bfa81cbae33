// Plain Baileys for scripts/bench_media.py: useMultiFileAuthState in a folder, in process, the way
// a legacy integration sends and receives media. argv: <ws_url> <root_pub> <auth_dir> [nodelay].
// The media host's CA comes through NODE_EXTRA_CA_CERTS (set by the caller). `nodelay` gives the
// socket an upload agent with Nagle's algorithm off, as the bridge's runtime uses
// (node-runtime/media.mjs), to tell the bridge's own cost from that fix; without it Baileys uploads
// with Node's defaults. Prints {"qr"} lines until linked, then {"open"}; every media message received is remembered and announced as {"received": id}.
// Commands on stdin, one JSON line each, answered with {"seconds", ...}:
//   {"send": path, "kind": "image"|"document", "to", "mimetype"} sends the file once, done when
//     the server's ack arrived (what the bridge's send answer waits for);
//   {"download": id} downloads and decrypts a received message's file as a stream, hashing it.
import makeWASocket, { useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason, generateMessageIDV2, downloadMediaMessage } from '@whiskeysockets/baileys'
import P from 'pino'
import readline from 'node:readline'
import { createHash } from 'node:crypto'
import { Agent } from 'node:https'

const [url, rootPub, dir, tuning] = process.argv.slice(2)
class NoDelayAgent extends Agent {
  createConnection (...args) {
    const socket = super.createConnection(...args)
    socket.setNoDelay(true)
    return socket
  }
}
const fetchAgent = tuning === 'nodelay' ? new NoDelayAgent({ keepAlive: true }) : undefined
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPub, 'hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const { state, saveCreds } = await useMultiFileAuthState(dir)
let sock
const acks = new Map()
const received = new Map()

function start () {
  sock = makeWASocket({ auth: state, waWebSocketUrl: url, logger: P({ level: 'silent' }), markOnlineOnConnect: false, syncFullHistory: false, ...(fetchAgent ? { fetchAgent } : {}) })
  sock.ev.on('creds.update', saveCreds)
  sock.ev.on('connection.update', (u) => {
    if (u.qr) out({ qr: u.qr })
    if (u.connection === 'open') out({ open: true })
    if (u.connection === 'close' && u.lastDisconnect?.error?.output?.statusCode === DisconnectReason.restartRequired) start()
  })
  sock.ev.on('messages.upsert', ({ messages }) => {
    for (const m of messages) {
      if (m.key.fromMe || !m.message) continue
      received.set(m.key.id, m)
      out({ received: m.key.id })
    }
  })
  sock.ws.on('CB:ack,class:message', (node) => { acks.get(node.attrs.id)?.(); acks.delete(node.attrs.id) })
}
start()

async function send ({ send: path, kind, to, mimetype }) {
  const messageId = generateMessageIDV2(sock.user?.id)
  const acked = new Promise((resolve) => acks.set(messageId, resolve))
  const content = kind === 'document' ? { document: { url: path }, mimetype, fileName: 'bench.bin' } : { [kind]: { url: path }, mimetype }
  await sock.sendMessage(to, content, { messageId })
  await acked
  return { id: messageId }
}

async function download ({ download: id }) {
  const message = received.get(id)
  if (!message) throw new Error(`no received message ${id}`)
  const stream = await downloadMediaMessage(message, 'stream', {})
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of stream) { hash.update(chunk); size += chunk.length }
  return { sha256: hash.digest('hex'), size }
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const command = JSON.parse(line)
  const started = process.hrtime.bigint()
  try {
    const result = command.send ? await send(command) : await download(command)
    out({ ...result, seconds: Number(process.hrtime.bigint() - started) / 1e9 })
  } catch (err) {
    out({ error: String(err?.message ?? err) })
  }
})
process.stdin.on('end', () => {
  try { sock.end(undefined) } catch { /* already closed */ }
  setTimeout(() => process.exit(0), 300)
})
