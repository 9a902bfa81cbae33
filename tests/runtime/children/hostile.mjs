// Hostile stand-in for the Node runtime (same permission flags): garbage, oversize lines, path
// tricks, unknown ops, other tenants' sessions, a 10k-request flood, and local write/delete
// attempts. It reports what it got back on stderr (HOSTILE {...}) and ends with HOSTILE_DONE.
import fs from 'node:fs'

const S = process.env.BRIDGE_SESSION
const out = (obj) => process.stdout.write((typeof obj === 'string' ? obj : JSON.stringify(obj)) + '\n')
const pending = new Map()
let nextId = 1
const request = (op, args, s = S) => new Promise((resolve) => {
  const id = nextId++
  pending.set(id, resolve)
  out({ t: 'req', id, s, op, args })
})
let buf = ''
process.stdin.on('data', (chunk) => {
  buf += chunk.toString('utf8')
  let nl
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl)
    buf = buf.slice(nl + 1)
    const msg = JSON.parse(line)
    if (msg.t === 'res' && pending.has(msg.id)) {
      pending.get(msg.id)(msg)
      pending.delete(msg.id)
    }
  }
})
process.stdin.on('end', () => process.exit(0))

const report = {}
// 1. Garbage of every shape.
out('{not json')
process.stdout.write(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x81, 0x0a]))
out('[1,2,3]')
out({ t: 'cmd', id: 1, s: S, cmd: 'start', args: {} })
out({ t: 'res', id: 424242, s: S, ok: true, result: null })
out({ t: 'evt', s: S, name: 'rm -rf', data: {} })
out({ t: 'req', id: 5000, s: '../../etc', op: 'auth.load', args: {} })
// 2. A 50 MiB line, in pieces, then a newline.
const piece = Buffer.alloc(1 << 20, 0x61)
for (let i = 0; i < 50; i++) process.stdout.write(piece)
out('')
// 3. Requests that must be refused.
const answers = await Promise.all([
  request('fs.unlink', { path: 'creds.json' }),
  request('auth.delete', { type: 'creds' }),
  request('auth.set', { data: { '../../outside': { x: '{"a":1}' } } }),
  request('auth.set', { data: { creds: { '': '{}' } } }),
  request('auth.set', { data: { 'pre-key': { 'a\\b': '{"a":1}' } } }),
  request('auth.set', { data: { 'pre-key': { 5: 'not json at all' } } }),
  request('auth.get', { type: '../../etc', ids: ['passwd'] }),
  request('creds.save', { creds: '{}' }),
  request('creds.save', { creds: '' }),
  request('auth.load', {}, 'other-tenant'),
  request('auth.set', { data: { 'pre-key': { 9: '{"a":1}' } } }, 'other-tenant')
])
report.refused = answers.map((a) => (a.ok ? 'OK' : a.error.code))
// 4. Flood: 10k requests written as fast as possible.
const t0 = Date.now()
const flood = []
for (let i = 0; i < 10000; i++) flood.push(request('auth.get', { type: 'pre-key', ids: [String(i % 50)] }))
const floodAnswers = await Promise.all(flood)
report.flood_ok = floodAnswers.filter((a) => a.ok).length
report.flood_ms = Date.now() - t0
// 5. Local write/delete attempts (the permission model must refuse them).
for (const [name, fn] of Object.entries({
  unlink: () => fs.unlinkSync(process.env.HOSTILE_AUTH_DIR + '/creds.json'),
  write: () => fs.writeFileSync(process.env.HOSTILE_AUTH_DIR + '/creds.json', '{}'),
  rm: () => fs.rmSync(process.env.HOSTILE_AUTH_DIR, { recursive: true, force: true })
})) {
  try { fn(); report['fs_' + name] = 'ALLOWED' } catch (err) { report['fs_' + name] = err.code }
}
// 6. One valid write, which must land.
const valid = await request('auth.set', { data: { 'pre-key': { 77: '{"public":{"type":"Buffer","data":"AQID"}}' } } })
report.valid = valid.ok
process.stderr.write('HOSTILE ' + JSON.stringify(report) + '\n')
process.stderr.write('HOSTILE_DONE\n')
