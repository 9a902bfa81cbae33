// The media host: what WhatsApp's `media_conn` names and Baileys uploads to. It answers the
// `w:m` media_conn iq with its own host, accepts Baileys' encrypted upload (HTTPS POST
// /mms/<type>/<fileEncSha256, base64url>?auth=&token=, the shape of Baileys' getWAUploadToServer),
// keeps the blobs in memory and serves them back by direct path (GET). Its TLS certificate is
// self-signed for 127.0.0.1 and made with the `openssl` CLI when the host is first needed; a
// client trusts it through `GET /media` (the PEM) - Node with NODE_EXTRA_CA_CERTS, Python with an
// SSL context - never by turning verification off.
//
// Contacts use it like a phone: they decrypt what a session sent them (HKDF media keys,
// AES-256-CBC, HMAC-SHA256 first 10 bytes, sha256 of the plaintext against fileSha256) and
// encrypt and upload what they send.
//
// Expiry and re-upload (WhatsApp keeps media for a limited time): `expire` makes the host answer
// 410 for a blob while the sending phone keeps its copy. A session then asks for a re-upload as
// Baileys' `updateMediaMessage` does: a `<receipt type="server-error">` to its own JID with the
// ServerErrorReceipt AES-GCM-encrypted under HKDF(mediaKey, "WhatsApp Media Retry Notification")
// and an `<rmr>` naming the chat (and participant). The sender's phone checks it with the media key
// of the message it sent, uploads the file again under a new direct path and answers with a
// `<notification type="mediaretry">` carrying the MediaRetryNotification encrypted the same way
// (or an `<error code>`: 2 when it no longer has the message or file, 1 when the request does not
// decrypt).
import https from 'node:https'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { aesDecryptGCM, aesEncryptGCM, getBinaryNodeChild, getBinaryNodeChildBuffer, getMediaKeys, hkdf, proto } from '@whiskeysockets/baileys'
import { HttpError, log } from './errors.mjs'

const MAX_UPLOAD = 128 << 20
const FIELDS = { image: 'imageMessage', video: 'videoMessage', audio: 'audioMessage', voice: 'audioMessage', document: 'documentMessage', sticker: 'stickerMessage' }
const UPLOAD_TYPES = { image: 'image', video: 'video', audio: 'audio', voice: 'audio', document: 'document', sticker: 'sticker' }
const KEY_TYPES = { imageMessage: 'image', videoMessage: 'video', audioMessage: 'audio', documentMessage: 'document', stickerMessage: 'sticker' }
export const MEDIA_KINDS = Object.keys(FIELDS)

const b64url = (buf) => Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const sha256 = (buf) => createHash('sha256').update(buf).digest()

/** The media part of a proto.Message (unwrapping document-with-caption), with its field name. */
export function mediaOf (message) {
  const m = message?.documentWithCaptionMessage?.message ?? message?.ephemeralMessage?.message ?? message ?? {}
  for (const field of Object.keys(KEY_TYPES)) if (m[field]) return { field, media: m[field] }
  return null
}

export class MediaHost {
  constructor () {
    this.blobs = new Map() // direct path (no query) -> Buffer
    this.staged = new Map() // ref -> plaintext a contact is about to send (POST /sim/stage)
    this.gone = new Map() // direct path -> the blob the sending phone still has after the host expired it
    this.reuploads = 0
    this.starting = null
    this.server = null
    this.dir = null
  }

  /** Start the HTTPS server once; returns its "host:port". */
  async ensure () {
    this.starting ??= this.start()
    return this.starting
  }

  async start () {
    this.dir = mkdtempSync(join(tmpdir(), 'sim-media-'))
    const key = join(this.dir, 'key.pem'); const cert = join(this.dir, 'cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '2', '-subj', '/CN=simulator media host', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', key, '-out', cert], { stdio: 'ignore' })
    this.caPem = readFileSync(cert, 'utf8')
    this.server = https.createServer({ key: readFileSync(key), cert: this.caPem }, (req, res) => this.onRequest(req, res))
    await new Promise((resolve, reject) => { this.server.once('error', reject); this.server.listen(0, '127.0.0.1', resolve) })
    this.host = `127.0.0.1:${this.server.address().port}`
    log(`media host https://${this.host}`)
    return this.host
  }

  close () {
    this.server?.close()
    if (this.dir) rmSync(this.dir, { recursive: true, force: true })
  }

  async info () { return { host: await this.ensure(), ca_pem: this.caPem, blobs: this.blobs.size, reuploads: this.reuploads } }

  /** The `<media_conn>` answer: our host, an auth token, a ttl. */
  async mediaConn () {
    const host = await this.ensure()
    return { tag: 'media_conn', attrs: { auth: 'sim-media-auth', ttl: '3600', auth_ttl: '3600', max_buckets: '12' }, content: [{ tag: 'host', attrs: { hostname: host, maxContentLengthBytes: String(MAX_UPLOAD) } }] }
  }

  onRequest (req, res) {
    const send = (status, value) => { const body = Buffer.from(JSON.stringify(value)); res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length }); res.end(body) }
    const url = new URL(req.url, 'https://x')
    if (req.method === 'GET') {
      const blob = this.blobs.get(url.pathname)
      if (!blob && this.gone.has(url.pathname)) return send(410, { error: 'media expired' })
      if (!blob) return send(404, { error: 'no such media' })
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length })
      return res.end(blob)
    }
    if (req.method === 'POST' && url.pathname === '/sim/stage') return this.onStage(req, send)
    const m = req.method === 'POST' && url.pathname.match(/^\/mms\/([a-z-]+)\/([A-Za-z0-9_-]+)$/)
    if (!m) return send(404, { error: `no route ${req.method} ${url.pathname}` })
    if (url.searchParams.get('auth') !== 'sim-media-auth') return send(401, { error: 'bad auth' })
    const chunks = []; let size = 0
    req.on('data', c => { size += c.length; if (size <= MAX_UPLOAD) chunks.push(c) })
    req.on('end', () => {
      if (size > MAX_UPLOAD) return send(413, { error: 'too large' })
      const blob = Buffer.concat(chunks)
      if (b64url(sha256(blob)) !== m[2]) return send(400, { error: 'fileEncSha256 in the path does not match the body' })
      send(200, this.store(m[1], blob))
    })
    req.on('error', (e) => log('media upload aborted', e.message))
  }

  /** A plaintext file for a contact to send later (control `send_media` with `data_ref`): the control
   *  API takes JSON up to 1 MiB, the media host takes raw bodies up to MAX_UPLOAD. */
  onStage (req, send) {
    const chunks = []; let size = 0
    req.on('data', c => { size += c.length; if (size <= MAX_UPLOAD) chunks.push(c) })
    req.on('end', () => {
      if (size > MAX_UPLOAD) return send(413, { error: `over ${MAX_UPLOAD} bytes` })
      const ref = randomBytes(12).toString('hex')
      this.staged.set(ref, Buffer.concat(chunks))
      send(200, { ref, size })
    })
  }

  /** The staged plaintext `ref` (once). */
  takeStaged (ref) {
    const data = this.staged.get(ref)
    if (!data) throw new HttpError(404, `nothing staged as ${ref}; POST the file to https://<media host>/sim/stage first`)
    this.staged.delete(ref)
    return data
  }

  store (type, blob) {
    const directPath = `/v/t62.${type}-24/${randomBytes(12).toString('hex')}.enc`
    this.blobs.set(directPath, blob)
    return { url: `https://${this.host}${directPath}?ccb=11-4`, direct_path: `${directPath}?ccb=11-4` }
  }

  blobOf (media) {
    const path = media.directPath ? String(media.directPath).split('?')[0] : media.url ? new URL(media.url).pathname : null
    const blob = path && this.blobs.get(path)
    if (!blob) throw new HttpError(404, `the media host has no blob ${path}`)
    return { path, blob }
  }

  /** Decrypt a received media message as a phone does; throws 409 on any check that fails. */
  async decrypt (message) {
    const found = mediaOf(message)
    if (!found) throw new HttpError(409, 'the message has no media')
    const { field, media } = found
    const { blob } = this.blobOf(media)
    const keys = await getMediaKeys(Buffer.from(media.mediaKey), KEY_TYPES[field])
    const body = blob.subarray(0, blob.length - 10); const mac = blob.subarray(blob.length - 10)
    const expected = createHmac('sha256', keys.macKey).update(keys.iv).update(body).digest().subarray(0, 10)
    if (!timingSafeEqual(mac, expected)) throw new HttpError(409, 'media HMAC does not match')
    if (media.fileEncSha256?.length && !sha256(blob).equals(Buffer.from(media.fileEncSha256))) throw new HttpError(409, 'fileEncSha256 does not match')
    const decipher = createDecipheriv('aes-256-cbc', keys.cipherKey, keys.iv)
    const plain = Buffer.concat([decipher.update(body), decipher.final()])
    const digest = sha256(plain)
    if (media.fileSha256?.length && !digest.equals(Buffer.from(media.fileSha256))) throw new HttpError(409, 'fileSha256 does not match')
    return {
      field,
      sha256: digest.toString('hex'),
      size: plain.length,
      file_length: Number(media.fileLength ?? 0),
      mimetype: media.mimetype ?? null,
      file_name: media.fileName ?? null,
      caption: media.caption ?? null,
      ptt: !!media.ptt,
      gif_playback: !!media.gifPlayback,
      seconds: media.seconds ?? null,
      width: media.width ?? null,
      height: media.height ?? null,
      thumbnail_bytes: media.jpegThumbnail?.length ?? 0
    }
  }

  /** Encrypt and upload `data` as a phone does; returns the media message fields and its field name. */
  async encryptAndUpload (kind, data, { mimetype, caption, fileName }) {
    const field = FIELDS[kind]
    if (!field) throw new HttpError(400, `unknown media kind ${kind}; one of ${MEDIA_KINDS.join(', ')}`)
    await this.ensure()
    const mediaKey = randomBytes(32)
    const keys = await getMediaKeys(mediaKey, KEY_TYPES[field])
    const cipher = createCipheriv('aes-256-cbc', keys.cipherKey, keys.iv)
    const enc = Buffer.concat([cipher.update(data), cipher.final()])
    const mac = createHmac('sha256', keys.macKey).update(keys.iv).update(enc).digest().subarray(0, 10)
    const blob = Buffer.concat([enc, mac])
    const { url, direct_path: directPath } = this.store(UPLOAD_TYPES[kind], blob)
    const media = {
      url,
      directPath,
      mediaKey,
      mimetype,
      fileSha256: sha256(data),
      fileEncSha256: sha256(blob),
      fileLength: data.length,
      mediaKeyTimestamp: Math.floor(Date.now() / 1000),
      ...(caption ? { caption } : {}),
      ...(kind === 'document' ? { fileName: fileName ?? 'file' } : {}),
      ...(kind === 'voice' ? { ptt: true } : {})
    }
    return { [field]: media }
  }

  /** The host forgets the blob of `message` (GET answers 410); the sending phone keeps its copy
   *  unless `everywhere` (then a re-upload request gets error 2, not found). */
  expire (message, { everywhere = false } = {}) {
    const found = mediaOf(message)
    if (!found) throw new HttpError(409, 'the message has no media')
    const { path, blob } = this.blobOf(found.media)
    this.blobs.delete(path)
    this.gone.set(path, everywhere ? null : blob)
    return { expired: path }
  }

  /** A session's re-upload request (see the header); `sentBy(jid, id)` finds the message a contact sent. */
  async onRetryReceipt (conn, node, sentBy) {
    const id = node.attrs.id
    conn.sendNode({ tag: 'ack', attrs: { class: 'receipt', id, from: node.attrs.to ?? 's.whatsapp.net', type: 'server-error' } })
    const rmr = getBinaryNodeChild(node, 'rmr')
    if (!rmr) return
    const answer = (content) => conn.sendNode({
      tag: 'notification',
      attrs: { from: 's.whatsapp.net', type: 'mediaretry', id, t: String(Math.floor(Date.now() / 1000)) },
      content: [...content, { tag: 'rmr', attrs: rmr.attrs }]
    })
    const message = sentBy(rmr.attrs.participant || rmr.attrs.jid, id)
    const found = mediaOf(message)
    const path = found && (found.media.directPath ? String(found.media.directPath).split('?')[0] : null)
    const blob = path && (this.blobs.get(path) ?? this.gone.get(path))
    if (!blob) return answer([{ tag: 'error', attrs: { code: String(proto.MediaRetryNotification.ResultType.NOT_FOUND) } }])
    const retryKey = hkdf(Buffer.from(found.media.mediaKey), 32, { info: 'WhatsApp Media Retry Notification' })
    try {
      const encrypt = getBinaryNodeChild(node, 'encrypt')
      const plain = aesDecryptGCM(getBinaryNodeChildBuffer(encrypt, 'enc_p'), retryKey, getBinaryNodeChildBuffer(encrypt, 'enc_iv'), Buffer.from(id))
      if (proto.ServerErrorReceipt.decode(plain).stanzaId !== id) throw new Error('stanza id differs')
    } catch (err) {
      log('media retry request does not decrypt', err.message)
      return answer([{ tag: 'error', attrs: { code: String(proto.MediaRetryNotification.ResultType.DECRYPTION_ERROR) } }])
    }
    const type = path.match(/^\/v\/t62\.([a-z-]+)-24\//)?.[1] ?? 'document'
    const { direct_path: directPath } = this.store(type, blob)
    this.reuploads += 1
    const iv = randomBytes(12)
    const payload = proto.MediaRetryNotification.encode({ stanzaId: id, directPath, result: proto.MediaRetryNotification.ResultType.SUCCESS }).finish()
    answer([{ tag: 'encrypt', attrs: {}, content: [{ tag: 'enc_p', attrs: {}, content: aesEncryptGCM(payload, retryKey, iv, Buffer.from(id)) }, { tag: 'enc_iv', attrs: {}, content: iv }] }])
  }

  /** Flip one byte of the blob a message points at (a tampered download must be refused). */
  tamper (message) {
    const found = mediaOf(message)
    if (!found) throw new HttpError(409, 'the message has no media')
    const { path, blob } = this.blobOf(found.media)
    const copy = Buffer.from(blob); copy[0] ^= 0xff
    this.blobs.set(path, copy)
    return { tampered: path }
  }
}
