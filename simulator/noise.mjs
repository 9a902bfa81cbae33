// Server side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake and transport framing.
// Pure byte logic: `feed(bytes)` parses frames; callers decide what to send. Built only from
// primitives Baileys exports, so both ends agree byte for byte.
import { Curve, hkdf, aesEncryptGCM, aesDecryptGCM, sha256, proto, NOISE_MODE, NOISE_WA_HEADER } from '@whiskeysockets/baileys'

const iv = n => { const b = Buffer.alloc(12); b.writeUInt32BE(n >>> 0, 8); return b }

/** Prefix a payload with the 3-byte big-endian length WhatsApp uses for every frame. */
export function frame (data) {
  if (data.length >= 1 << 24) throw new Error('frame too large')
  const f = Buffer.alloc(3 + data.length)
  f[0] = (data.length >> 16) & 0xff; f.writeUInt16BE(data.length & 0xffff, 1); Buffer.from(data).copy(f, 3)
  return f
}

export class ProtocolViolation extends Error {}

/**
 * One connection's Noise state. Stages: intro -> hello -> finish -> transport.
 * `maxBuffered` (required: the server's maxFrame plus framing) bounds how many unparsed bytes a
 * client may make us hold.
 */
export class NoiseServer {
  constructor ({ staticKeyPair, maxBuffered }) {
    this.static = staticKeyPair
    this.maxBuffered = maxBuffered
    this.stage = 'intro'
    this.inBytes = Buffer.alloc(0)
    this.hash = Buffer.from(NOISE_MODE) // exactly 32 bytes: used as-is, like the client does
    this.salt = this.hash; this.key = this.hash; this.counter = 0
    this.transport = null
    this.routingInfo = null
    this.authenticate(NOISE_WA_HEADER)
  }

  authenticate (d) { if (!this.transport) this.hash = sha256(Buffer.concat([this.hash, d])) }
  mixIntoKey (d) { const k = hkdf(Buffer.from(d), 64, { salt: this.salt, info: '' }); this.salt = k.subarray(0, 32); this.key = k.subarray(32); this.counter = 0 }
  encryptHs (pt) { const c = aesEncryptGCM(pt, this.key, iv(this.counter++), this.hash); this.authenticate(c); return c }
  decryptHs (ct) { const p = aesDecryptGCM(ct, this.key, iv(this.counter++), this.hash); this.authenticate(ct); return p }

  /** Append bytes; return complete frames (Buffers). Throws ProtocolViolation on bad intro/size. */
  feed (chunk) {
    this.inBytes = this.inBytes.length ? Buffer.concat([this.inBytes, chunk]) : Buffer.from(chunk)
    if (this.inBytes.length > this.maxBuffered) throw new ProtocolViolation(`client buffered ${this.inBytes.length} bytes without a complete frame`)
    const frames = []
    if (this.stage === 'intro') {
      if (this.inBytes.length < 4) return frames
      if (this.inBytes.subarray(0, 2).toString('latin1') === 'ED') {
        if (this.inBytes.length < 7) return frames
        const len = (this.inBytes[4] << 16) | this.inBytes.readUInt16BE(5)
        if (this.inBytes.length < 7 + len + 4) return frames
        this.routingInfo = Buffer.from(this.inBytes.subarray(7, 7 + len))
        this.inBytes = this.inBytes.subarray(7 + len)
      }
      if (!this.inBytes.subarray(0, 4).equals(NOISE_WA_HEADER)) throw new ProtocolViolation('bad intro header')
      this.inBytes = this.inBytes.subarray(4)
      this.stage = 'hello'
    }
    while (this.inBytes.length >= 3) {
      const size = (this.inBytes[0] << 16) | this.inBytes.readUInt16BE(1)
      if (this.inBytes.length < size + 3) break
      frames.push(Buffer.from(this.inBytes.subarray(3, size + 3)))
      this.inBytes = this.inBytes.subarray(size + 3)
    }
    return frames
  }

  /** ClientHello -> ServerHello bytes (unframed). */
  onClientHello (f, certChain) {
    const { clientHello } = proto.HandshakeMessage.decode(f)
    if (!clientHello?.ephemeral || clientHello.ephemeral.length !== 32) throw new ProtocolViolation('client hello without a 32-byte ephemeral')
    this.clientEph = Buffer.from(clientHello.ephemeral)
    this.authenticate(this.clientEph)
    this.eph = Curve.generateKeyPair()
    this.authenticate(this.eph.public)
    this.mixIntoKey(Curve.sharedKey(this.eph.private, this.clientEph))
    const staticEnc = this.encryptHs(this.static.public)
    this.mixIntoKey(Curve.sharedKey(this.static.private, this.clientEph))
    const payloadEnc = this.encryptHs(certChain)
    this.stage = 'finish'
    return Buffer.from(proto.HandshakeMessage.encode({ serverHello: { ephemeral: this.eph.public, static: staticEnc, payload: payloadEnc } }).finish())
  }

  /** ClientFinish -> { clientStatic, payload: proto.ClientPayload }; switches to transport. */
  onClientFinish (f) {
    const { clientFinish } = proto.HandshakeMessage.decode(f)
    if (!clientFinish?.static || !clientFinish?.payload) throw new ProtocolViolation('client finish incomplete')
    const clientStatic = this.decryptHs(clientFinish.static)
    this.mixIntoKey(Curve.sharedKey(this.eph.private, clientStatic))
    const payload = proto.ClientPayload.decode(this.decryptHs(clientFinish.payload))
    const k = hkdf(Buffer.alloc(0), 64, { salt: this.salt, info: '' })
    // the client encrypts with the first half and decrypts with the second
    this.transport = { enc: k.subarray(32), dec: k.subarray(0, 32), w: 0, r: 0 }
    this.stage = 'transport'
    return { clientStatic: Buffer.from(clientStatic), payload }
  }

  encrypt (pt) { const t = this.transport; return aesEncryptGCM(pt, t.enc, iv(t.w++), Buffer.alloc(0)) }
  decrypt (ct) { const t = this.transport; return aesDecryptGCM(ct, t.dec, iv(t.r++), Buffer.alloc(0)) }
}
