// The Signal side of a simulated primary device (a contact's phone, or an account's own phone):
// its identity, signed pre-key, one-time pre-keys and sessions, in memory, via npm libsignal.
import libsignal from 'libsignal'
import { proto } from '@whiskeysockets/baileys'
// libsignal's group cipher (sender keys) as Baileys ships it; npm libsignal has none
import { GroupCipher, GroupSessionBuilder, SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord } from '@whiskeysockets/baileys/lib/Signal/Group/index.js'
import { randomBytes } from 'node:crypto'

const withType = pub => (pub.length === 33 ? Buffer.from(pub) : Buffer.concat([Buffer.from([5]), Buffer.from(pub)]))

/** Pad like Baileys' writeRandomPadMax16 / unpadRandomMax16. */
export const pad = msg => { const n = (randomBytes(1)[0] & 0x0f) + 1; return Buffer.concat([msg, Buffer.alloc(n, n)]) }
export const unpad = buf => { const n = buf[buf.length - 1]; if (!n || n > buf.length) throw new Error('bad padding'); return buf.subarray(0, buf.length - n) }

export class SignalEndpoint {
  /** `identity` is a Baileys-style { private, public(32) } key pair (the account key for phones). */
  constructor (identity) {
    this.identity = { privKey: Buffer.from(identity.private), pubKey: withType(identity.public) }
    this.registrationId = libsignal.keyhelper.generateRegistrationId()
    this.signedPreKey = libsignal.keyhelper.generateSignedPreKey(this.identity, 1)
    this.preKeys = new Map()
    this.nextPreKeyId = 1
    this.sessions = new Map()
    this.identities = new Map()
    this.senderKeys = new Map() // SenderKeyName string -> SenderKeyRecord (groups)
    const self = this
    this.storage = {
      getOurIdentity: () => self.identity,
      getOurRegistrationId: () => self.registrationId,
      isTrustedIdentity: (id, key) => { const known = self.identities.get(id); if (!known) { self.identities.set(id, Buffer.from(key)); return true } return known.equals(Buffer.from(key)) },
      loadSession: id => self.sessions.get(id),
      storeSession: (id, record) => { self.sessions.set(id, record) },
      loadPreKey: id => self.preKeys.get(Number(id))?.keyPair,
      removePreKey: id => { self.preKeys.delete(Number(id)) },
      loadSignedPreKey: id => (Number(id) === self.signedPreKey.keyId ? self.signedPreKey.keyPair : undefined),
      loadSenderKey: name => self.senderKeys.get(name.toString()) ?? new SenderKeyRecord(),
      storeSenderKey: (name, record) => { self.senderKeys.set(name.toString(), record) }
    }
  }

  /** A bundle for whoever wants to start a session with us; consumes one pre-key, like the server does. */
  takeBundle () {
    const pk = libsignal.keyhelper.generatePreKey(this.nextPreKeyId++)
    this.preKeys.set(pk.keyId, pk)
    return {
      registrationId: this.registrationId,
      identityPub: this.identity.pubKey.subarray(1),
      signedPreKey: { keyId: this.signedPreKey.keyId, pub: this.signedPreKey.keyPair.pubKey.subarray(1), signature: this.signedPreKey.signature },
      preKey: { keyId: pk.keyId, pub: pk.keyPair.pubKey.subarray(1) },
    }
  }

  address (user, device) { return new libsignal.ProtocolAddress(String(user), device) }
  hasSession (addr) { return !!this.sessions.get(addr.toString())?.haveOpenSession?.() }

  /** Start a session from a companion's uploaded bundle. */
  async initSession (addr, bundle) {
    await new libsignal.SessionBuilder(this.storage, addr).initOutgoing({
      registrationId: bundle.registrationId,
      identityKey: withType(bundle.identityPub),
      signedPreKey: { keyId: bundle.signedPreKey.keyId, publicKey: withType(bundle.signedPreKey.pub), signature: bundle.signedPreKey.signature },
      preKey: bundle.preKey ? { keyId: bundle.preKey.keyId, publicKey: withType(bundle.preKey.pub) } : undefined,
    })
  }

  /** Encrypt a proto.Message; returns { type: 'pkmsg'|'msg', ciphertext }. */
  async encrypt (addr, message) {
    const { type, body } = await new libsignal.SessionCipher(this.storage, addr).encrypt(pad(Buffer.from(proto.Message.encode(message).finish())))
    return { type: type === 3 ? 'pkmsg' : 'msg', ciphertext: Buffer.from(body, 'binary') }
  }

  /** Decrypt an `enc` payload into a proto.Message. */
  async decrypt (addr, type, ciphertext) {
    const cipher = new libsignal.SessionCipher(this.storage, addr)
    const plain = type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(ciphertext) : await cipher.decryptWhisperMessage(ciphertext)
    return proto.Message.decode(unpad(Buffer.from(plain)))
  }

  // ---- groups: sender keys (one chain per group and sender device) ----
  senderKeyName (group, user, device) { return new SenderKeyName(group, new libsignal.ProtocolAddress(String(user), device)) }

  /** Our sender key for `group` (created on first use) as SenderKeyDistributionMessage bytes. */
  async groupDistribution (group, user) {
    return (await new GroupSessionBuilder(this.storage).create(this.senderKeyName(group, user, 0))).serialize()
  }

  /** Encrypt a proto.Message for `group` with our sender key: the `skmsg` payload. */
  async groupEncrypt (group, user, message) {
    await this.groupDistribution(group, user)
    return Buffer.from(await new GroupCipher(this.storage, this.senderKeyName(group, user, 0)).encrypt(pad(Buffer.from(proto.Message.encode(message).finish()))))
  }

  /** Accept another member's sender key (the `axolotlSenderKeyDistributionMessage` bytes). */
  async groupProcess (group, user, device, distribution) {
    const message = new SenderKeyDistributionMessage(null, null, null, null, Buffer.from(distribution))
    await new GroupSessionBuilder(this.storage).process(this.senderKeyName(group, user, device), message)
  }

  /** Decrypt an `skmsg` from another member into a proto.Message. */
  async groupDecrypt (group, user, device, ciphertext) {
    const plain = await new GroupCipher(this.storage, this.senderKeyName(group, user, device)).decrypt(Buffer.from(ciphertext))
    return proto.Message.decode(unpad(Buffer.from(plain)))
  }
}

/** Verify an XEdDSA signature strictly (Baileys' Curve.verify accepts anything; libsignal's does not). */
export const verifySignature = (pub32, msg, sig) => { try { return libsignal.curve.verifySignature(withType(pub32), msg, sig) === true } catch { return false } }
