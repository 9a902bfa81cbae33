// Outgoing media: Python has already checked, sniffed, thumbnailed and encrypted the file into the
// spool (a folder this process may only read). Here the encrypted blob is uploaded with Baileys'
// own uploader (the host WhatsApp's media_conn names) and the message content handed to
// sendMessage. Baileys cannot encrypt here itself: it writes its encrypted copy to the temp folder
// and this process has no write access anywhere.
//
// How the prepared upload reaches Baileys' message builder unchanged: prepareWAMessageMedia looks
// up `mediaCache` by "<type>:<url>" before encrypting; a one-entry cache answering with the
// uploaded fields makes it skip encryption and upload and merge caption, mimetype, thumbnail...
//
// The upload is Baileys' own (getWAUploadToServer with the socket's refreshMediaConn, as
// sock.waUploadToServer), on connections with Nagle's algorithm off. With it on (Node's default,
// and Baileys passes no agent), the last TLS record of the body waits for the host's delayed ACK:
// about 40 ms added to most uploads, whatever their size (a 1 MB upload took 45-50 ms instead of 3-8).
import { Agent } from 'node:https'
import { extractMessageContent, getContentType, getWAUploadToServer, proto, unixTimestampSeconds } from '@whiskeysockets/baileys'
import { IpcError } from './ipc.mjs'
import { MEDIA_RETRY_TIMEOUT_MS, UPLOAD_TIMEOUT_MS } from './defaults.mjs'
import { makeLogger } from './logger.mjs'

const bytes = (b64) => Buffer.from(b64, 'base64')

class NoDelayAgent extends Agent {
  createConnection (...args) {
    const socket = super.createConnection(...args)
    socket.setNoDelay(true)
    return socket
  }
}

const uploadAgent = new NoDelayAgent({ keepAlive: true })
const uploadLog = makeLogger(process.env.BRIDGE_NODE_LOG_LEVEL || 'warn').child({ module: 'media-upload' })
const uploaders = new WeakMap()

function uploaderOf (sock) {
  let upload = uploaders.get(sock)
  if (!upload) {
    upload = getWAUploadToServer({ customUploadHosts: [], fetchAgent: uploadAgent, logger: uploadLog, options: {} }, sock.refreshMediaConn)
    uploaders.set(sock, upload)
  }
  return upload
}

export async function mediaSend (sock, c) {
  let uploaded
  try {
    uploaded = await uploaderOf(sock)(c.path, { mediaType: c.media_type, fileEncSha256B64: c.file_enc_sha256, timeoutMs: UPLOAD_TIMEOUT_MS })
  } catch (err) {
    throw new IpcError('media_upload_failed', `media upload failed: ${String(err?.message ?? err).slice(0, 300)}`)
  }
  const field = `${c.media_type}Message`
  const encoded = proto.Message.encode({
    [field]: {
      url: uploaded.mediaUrl,
      directPath: uploaded.directPath,
      mediaKey: bytes(c.media_key),
      fileSha256: bytes(c.file_sha256),
      fileEncSha256: bytes(c.file_enc_sha256),
      fileLength: c.file_length,
      mediaKeyTimestamp: unixTimestampSeconds()
    }
  }).finish()
  const url = `bridge-spool:${c.path}`
  const cacheKey = `${c.media_type}:${url}`
  const content = {
    [c.media_type]: { url },
    mimetype: c.mimetype,
    ...(c.caption ? { caption: c.caption } : {}),
    ...(c.file_name ? { fileName: c.file_name } : {}),
    ...(c.ptt ? { ptt: true } : {}),
    ...(c.gif_playback ? { gifPlayback: true } : {}),
    ...(c.seconds ? { seconds: c.seconds } : {}),
    ...(c.width ? { width: c.width, height: c.height } : {}),
    ...(c.jpeg_thumbnail ? { jpegThumbnail: bytes(c.jpeg_thumbnail) } : {})
  }
  const mediaCache = {
    get: async (key) => (key === cacheKey ? encoded : undefined),
    set: async () => undefined,
    del: async () => undefined,
    flushAll: async () => undefined
  }
  return { content, options: { mediaCache } }
}

// The re-upload request for an expired file (Baileys' updateMediaMessage: a server-error receipt
// the sender's phone answers with a mediaretry notification). Baileys waits for that answer without
// a limit, so the wait is bounded here; the new direct path goes back to Python, which downloads.
export async function mediaRetry (sock, json) {
  const message = proto.WebMessageInfo.fromObject(json)
  let timer
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the sender's phone within ${MEDIA_RETRY_TIMEOUT_MS} ms`)), MEDIA_RETRY_TIMEOUT_MS)
  })
  try {
    await Promise.race([sock.updateMediaMessage(message), late])
  } catch (err) {
    throw new IpcError('media_retry_failed', `media re-upload failed: ${String(err?.message ?? err).slice(0, 300)}`)
  } finally {
    clearTimeout(timer)
  }
  const content = extractMessageContent(message.message)
  const media = content?.[getContentType(content)]
  if (!media?.directPath) throw new IpcError('media_retry_failed', 'the re-upload answer named no direct path')
  return { direct_path: media.directPath }
}
