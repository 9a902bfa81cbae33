// Plain Baileys for scripts/bench_messages.py: useMultiFileAuthState in a folder, in process, the
// way a legacy integration sends. argv: <ws_url> <root_pub> <auth_dir>. Prints {"qr"} lines until
// linked, then {"open"}; then reads commands on stdin: {"to", "count", "concurrency"} sends `count`
// texts with at most `concurrency` in flight, each done when the server's ack for it arrived
// (what the bridge's send answer waits for), and prints {"done", "seconds"}.
import makeWASocket, { useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason, generateMessageIDV2 } from '@whiskeysockets/baileys'
import P from 'pino'
import readline from 'node:readline'

const [url, rootPub, dir] = process.argv.slice(2)
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPub, 'hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const { state, saveCreds } = await useMultiFileAuthState(dir)
let sock
const acks = new Map()

function start () {
  sock = makeWASocket({ auth: state, waWebSocketUrl: url, logger: P({ level: 'silent' }), markOnlineOnConnect: false, syncFullHistory: false })
  sock.ev.on('creds.update', saveCreds)
  sock.ev.on('connection.update', (u) => {
    if (u.qr) out({ qr: u.qr })
    if (u.connection === 'open') out({ open: true })
    if (u.connection === 'close' && u.lastDisconnect?.error?.output?.statusCode === DisconnectReason.restartRequired) start()
  })
  sock.ws.on('CB:ack,class:message', (node) => { acks.get(node.attrs.id)?.(); acks.delete(node.attrs.id) })
}
start()

async function sendOne (to, i) {
  const messageId = generateMessageIDV2(sock.user?.id)
  const acked = new Promise((resolve) => acks.set(messageId, resolve))
  await sock.sendMessage(to, { text: `bench ${i}` }, { messageId })
  await acked
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const { to, count, concurrency } = JSON.parse(line)
  const started = process.hrtime.bigint()
  let next = 0
  const worker = async () => { while (next < count) await sendOne(to, next++) }
  await Promise.all(Array.from({ length: concurrency }, worker))
  out({ done: count, seconds: Number(process.hrtime.bigint() - started) / 1e9 })
})
process.stdin.on('end', () => {
  try { sock.end(undefined) } catch { /* already closed */ }
  setTimeout(() => process.exit(0), 300)
})
