// The test control channel: a small JSON HTTP API on 127.0.0.1. Routes are listed in README.md.
import http from 'node:http'
import { HttpError, log } from './errors.mjs'
import { MAX_CONTROL_BODY as MAX_BODY, TIMEOUTS } from './defaults.mjs'

function readJson (req) {
  return new Promise((resolve, reject) => {
    let size = 0; const chunks = []
    // keep reading past the limit (without storing) so the client gets the 413 instead of a reset
    req.on('data', c => { size += c.length; if (size <= MAX_BODY) chunks.push(c) })
    req.on('end', () => {
      if (size > MAX_BODY) return reject(new HttpError(413, `body over ${MAX_BODY} bytes`))
      if (!chunks.length) return resolve({})
      try { const v = JSON.parse(Buffer.concat(chunks).toString('utf8')); resolve(v && typeof v === 'object' ? v : {}) } catch { reject(new HttpError(400, 'body is not JSON')) }
    })
    req.on('error', reject)
  })
}

const contact = (sim, phone) => sim.messaging.contact(phone).contact
const remembered = (sim, phone, id, fromMe) => {
  const m = contact(sim, phone).messages.get(id)
  if (!m || m.fromMe !== fromMe) throw new HttpError(404, `the contact ${fromMe ? 'sent' : 'received'} no message ${id}`)
  return m.message
}
const received = (sim, phone, id) => remembered(sim, phone, id, false)
const sent = (sim, phone, id) => remembered(sim, phone, id, true)
const GROUP = /^\/groups\/([0-9-]+)(?:@g\.us)?$/
const GROUP_SEND = /^\/groups\/([0-9-]+)(?:@g\.us)?\/send$/
const GROUP_PARTICIPANTS = /^\/groups\/([0-9-]+)(?:@g\.us)?\/participants$/
const groupJid = id => `${id}@g.us`

/** Route table: [method, regexp, handler(sim, body, match) -> JSON value]. */
export function routes (onStop) {
  const need = (body, k) => { if (body[k] === undefined || body[k] === null || body[k] === '') throw new HttpError(400, `missing "${k}"`); return body[k] }
  return [
    ['GET', /^\/health$/, sim => ({ ok: true, connections: sim.conns.size, ...sim.stats })],
    ['GET', /^\/accounts$/, sim => sim.accounts.all().map(a => a.toJSON())],
    ['POST', /^\/accounts$/, (sim, b) => sim.accounts.ensure(b.phone).toJSON()],
    ['GET', /^\/devices$/, sim => sim.accounts.all().flatMap(a => [...a.devices.values()].map(d => d.toJSON()))],
    ['GET', /^\/connections$/, sim => [...(sim.connCounts ?? new Map()).values()]],
    ['GET', /^\/pending$/, sim => ({ qr_connections: [...new Set([...sim.refs.values()].map(r => r.conn.id))].length, pairing_codes: [...sim.codeRegs.keys()] })],
    ['POST', /^\/scan$/, async (sim, b) => (await sim.scan(need(b, 'qr'), b.phone)).toJSON()],
    ['POST', /^\/pair-code$/, async (sim, b) => (await sim.enterPairCode(need(b, 'phone'), need(b, 'code'))).toJSON()],
    ['POST', /^\/fault$/, (sim, b) => sim.fault({ ...b, kind: String(need(b, 'kind')) })],
    ['POST', /^\/unban$/, (sim, b) => sim.unban(need(b, 'phone'))],
    ['POST', /^\/contacts$/, (sim, b) => contact(sim, need(b, 'phone')).configure(b).toJSON()],
    ['GET', /^\/contacts$/, sim => sim.messaging.contacts().map(a => a.contact.toJSON())],
    ['GET', /^\/contacts\/\+?([0-9]+)$/, (sim, b, m) => contact(sim, m[1]).toJSON()],
    ['GET', /^\/contacts\/\+?([0-9]+)\/inbox$/, (sim, b, m) => contact(sim, m[1]).inbox],
    ['GET', /^\/contacts\/\+?([0-9]+)\/outbox$/, (sim, b, m) => contact(sim, m[1]).outbox],
    ['GET', /^\/contacts\/\+?([0-9]+)\/receipts$/, (sim, b, m) => contact(sim, m[1]).receipts],
    ['GET', /^\/contacts\/\+?([0-9]+)\/errors$/, (sim, b, m) => contact(sim, m[1]).errors],
    ['POST', /^\/contacts\/\+?([0-9]+)\/send$/, async (sim, b, m) => sim.messaging.sendFromContact(m[1], need(b, 'to'), String(b.kind ?? 'text'), b)],
    ['POST', /^\/contacts\/\+?([0-9]+)\/receipt$/, (sim, b, m) => sim.messaging.sendReceipt(m[1], { to: need(b, 'to'), ids: need(b, 'ids'), type: b.type })],
    ['POST', /^\/contacts\/\+?([0-9]+)\/presence$/, (sim, b, m) => sim.presence.fromContact(m[1], { type: String(need(b, 'type')), to: b.to })],
    ['GET', /^\/contacts\/\+?([0-9]+)\/presence$/, (sim, b, m) => sim.presence.state(m[1])],
    ['GET', /^\/media$/, sim => sim.media.info()],
    ['GET', /^\/contacts\/\+?([0-9]+)\/media\/([A-Za-z0-9_.:-]+)$/, (sim, b, m) => sim.media.decrypt(received(sim, m[1], m[2]))],
    ['POST', /^\/contacts\/\+?([0-9]+)\/media\/([A-Za-z0-9_.:-]+)\/tamper$/, (sim, b, m) => sim.media.tamper(sent(sim, m[1], m[2]))],
    ['POST', /^\/contacts\/\+?([0-9]+)\/media\/([A-Za-z0-9_.:-]+)\/expire$/, (sim, b, m) => sim.media.expire(sent(sim, m[1], m[2]), { everywhere: !!b.everywhere })],
    ['POST', /^\/contacts\/\+?([0-9]+)\/send_media$/, async (sim, b, m) => {
      const kind = String(need(b, 'kind'))
      const data = b.data_ref ? sim.media.takeStaged(String(b.data_ref)) : Buffer.from(String(need(b, 'data')), 'base64')
      const message = await sim.media.encryptAndUpload(kind, data, { mimetype: String(need(b, 'mimetype')), caption: b.caption, fileName: b.file_name })
      return sim.messaging.sendFromContact(m[1], need(b, 'to'), kind, b, message)
    }],
    ['GET', /^\/groups$/, sim => sim.groups.toJSON()],
    ['POST', /^\/groups$/, (sim, b) => sim.groups.createFromContact(need(b, 'phone'), { subject: need(b, 'subject'), participants: b.participants, addressing_mode: b.addressing_mode })],
    ['GET', GROUP, (sim, b, m) => sim.groups.member(groupJid(m[1])).toJSON()],
    ['POST', GROUP_SEND, async (sim, b, m) => sim.groups.sendFromContact(need(b, 'phone'), groupJid(m[1]), String(b.kind ?? 'text'), b)],
    ['POST', GROUP_PARTICIPANTS, (sim, b, m) => sim.groups.participantsFromContact(need(b, 'phone'), groupJid(m[1]), { action: need(b, 'action'), participants: need(b, 'participants') })],
    ['POST', /^\/stop$/, () => { setTimeout(onStop, TIMEOUTS.stopReplyMs); return { stopping: true } }],
  ]
}

export async function startControl (sim, { host = '127.0.0.1', port = 0, onStop }) {
  const table = routes(onStop)
  const server = http.createServer(async (req, res) => {
    const send = (status, value) => { const body = JSON.stringify(value); res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body) }
    try {
      const path = new URL(req.url, 'http://x').pathname
      const hits = table.filter(([, re]) => re.test(path))
      if (!hits.length) throw new HttpError(404, `no route ${path}`)
      const hit = hits.find(([m]) => m === req.method)
      if (!hit) throw new HttpError(405, `${req.method} not allowed on ${path}`)
      const body = req.method === 'POST' ? await readJson(req) : {}
      send(200, await hit[2](sim, body, path.match(hit[1])))
    } catch (e) {
      const status = e instanceof HttpError ? e.status : e instanceof RangeError ? 400 : 500
      if (status === 500) log('control error', e.stack)
      send(status, { error: { code: status, message: e.message } })
    }
  })
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(port, host, resolve) })
  return server
}
