// Plain Baileys for scripts/bench_sessions.py: `count` sockets in this one Node process, each with
// useMultiFileAuthState in <auth_dir>/<i>, the way a legacy multi-tenant integration holds them.
// argv: <ws_url> <root_pub> <auth_dir> <count>. Prints {"i", "qr"} once per socket until linked,
// {"i", "open"} when it opens; exits when stdin ends.
import makeWASocket, { useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason } from '@whiskeysockets/baileys'
import P from 'pino'

const [url, rootPub, dir, count] = process.argv.slice(2)
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(rootPub, 'hex')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sockets = []

async function open (i) {
  const { state, saveCreds } = await useMultiFileAuthState(`${dir}/${i}`)
  let shown = false
  const start = () => {
    const sock = makeWASocket({ auth: state, waWebSocketUrl: url, logger: P({ level: 'silent' }), markOnlineOnConnect: false, syncFullHistory: false })
    sockets[i] = sock
    sock.ev.on('creds.update', saveCreds)
    sock.ev.on('connection.update', (u) => {
      if (u.qr && !shown) { shown = true; out({ i, qr: u.qr }) }
      if (u.connection === 'open') out({ i, open: true })
      if (u.connection === 'close' && u.lastDisconnect?.error?.output?.statusCode === DisconnectReason.restartRequired) start()
    })
  }
  start()
}
for (let i = 0; i < Number(count); i++) await open(i)
process.stdin.resume()
process.stdin.on('end', () => {
  for (const sock of sockets) { try { sock.end(undefined) } catch { /* already closed */ } }
  setTimeout(() => process.exit(0), 300)
})
