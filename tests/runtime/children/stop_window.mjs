// Stand-in runtime for the stop window: when told to stop a session it first does what a real
// runtime does when a message arrives while its socket closes (forwards the message, then asks
// `message.durable` before it would let Baileys commit the keys), and answers the stop after that.
// It reports the durable answer on stderr (STOP_WINDOW {...}).
const S = process.env.BRIDGE_SESSION
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const pending = new Map()
let nextId = 1
const request = (s, op, args) => new Promise((resolve) => {
  const id = nextId++
  pending.set(id, resolve)
  out({ t: 'req', id, s, op, args })
})

async function onCommand (cmd) {
  if (cmd.cmd === 'stop') {
    const key = { remoteJid: '15550001111@s.whatsapp.net', fromMe: false, id: `STOPWINDOW${cmd.s}` }
    out({ t: 'evt', s: cmd.s, name: 'messages.upsert', data: { type: 'notify', messages: [{ key, messageTimestamp: Math.floor(Date.now() / 1000), message: { conversation: 'arrived while closing' } }] } })
    const answer = await request(cmd.s, 'message.durable', { id: key.id })
    process.stderr.write(`STOP_WINDOW ${JSON.stringify({ s: cmd.s, ok: answer.ok })}\n`)
  }
  out({ t: 'res', id: cmd.id, s: cmd.s, ok: true, result: {} })
}

let buf = ''
process.stdin.on('data', (chunk) => {
  buf += chunk.toString('utf8')
  let nl
  while ((nl = buf.indexOf('\n')) >= 0) {
    const msg = JSON.parse(buf.slice(0, nl))
    buf = buf.slice(nl + 1)
    if (msg.t === 'res' && pending.has(msg.id)) {
      pending.get(msg.id)(msg)
      pending.delete(msg.id)
    } else if (msg.t === 'cmd') {
      onCommand(msg)
    }
  }
})
process.stdin.on('end', () => process.exit(0))
out({ t: 'evt', s: S, name: 'ready', data: { pid: process.pid, node: process.version, baileys: '-', permission: true, fs_write_denied: true } })
