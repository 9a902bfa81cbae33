// Plain Baileys for scripts/bench_sessions.py: `count` sockets in this one Node process, each with
// useMultiFileAuthState in <auth_dir>/<i>, the way a legacy multi-tenant integration holds them.
// argv: <ws_url> <root_pub> <auth_dir> <count>. Prints {"i", "qr"} for every QR of a socket until linked,
// {"i", "open"} when it opens; exits when stdin ends. Then reads commands on stdin:
// {"senders", "to", "count", "concurrency"}: sockets 0..senders-1 each send `count` texts to `to` with
// at most `concurrency` in flight, each done when the server's ack for it arrived (what the bridge's
// send waits for), all at once; prints {"done", "seconds"}.
import makeWASocket, { useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason, generateMessageIDV2 } from '@whiskeysockets/baileys'
import P from 'pino'
import readline from 'node:readline'

const [url, rootPub, dir, count] = process.argv.slice(2)
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPub, 'hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sockets = []
const acks = new Map()

async function open (i) {
  const { state, saveCreds } = await useMultiFileAuthState(`${dir}/${i}`)
  const start = () => {
    const sock = makeWASocket({ auth: state, waWebSocketUrl: url, logger: P({ level: 'silent' }), markOnlineOnConnect: false, syncFullHistory: false })
    sockets[i] = sock
    sock.ev.on('creds.update', saveCreds)
    sock.ev.on('connection.update', (u) => {
      if (u.qr) out({ i, qr: u.qr })
      if (u.connection === 'open') out({ i, open: true })
      if (u.connection === 'close' && u.lastDisconnect?.error?.output?.statusCode === DisconnectReason.restartRequired) start()
    })
    sock.ws.on('CB:ack,class:message', (node) => { acks.get(node.attrs.id)?.(); acks.delete(node.attrs.id) })
  }
  start()
}
for (let i = 0; i < Number(count); i++) await open(i)

async function sendOne (sock, to, n) {
  const messageId = generateMessageIDV2(sock.user?.id)
  const acked = new Promise((resolve) => acks.set(messageId, resolve))
  await sock.sendMessage(to, { text: `bench ${n}` }, { messageId })
  await acked
}

async function sendFrom (sock, to, total, concurrency) {
  let next = 0
  const worker = async () => { while (next < total) await sendOne(sock, to, next++) }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const { senders, to, count: total, concurrency } = JSON.parse(line)
  const started = process.hrtime.bigint()
  await Promise.all(sockets.slice(0, senders).map((sock) => sendFrom(sock, to, total, concurrency)))
  out({ done: senders * total, seconds: Number(process.hrtime.bigint() - started) / 1e9 })
})
process.stdin.on('end', () => {
  for (const sock of sockets) { try { sock.end(undefined) } catch { /* already closed */ } }
  setTimeout(() => process.exit(0), 300)
})
