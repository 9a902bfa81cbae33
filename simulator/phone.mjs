// What the primary phone does when a companion links: sign the companion's identity with the
// account key (ADV), wrap it with the companion's advSecret, and, for pairing codes, run the
// phone half of the link_code_companion_reg key exchange.
import { Curve, proto, hmacSign, hkdf, aesEncryptCTR, aesDecryptCTR, aesDecryptGCM, derivePairingCodeKey, WA_ADV_ACCOUNT_SIG_PREFIX, WA_ADV_DEVICE_SIG_PREFIX } from '@whiskeysockets/baileys'
import { randomBytes } from 'node:crypto'
import { verifySignature } from './signal.mjs'

/** Parse a Baileys QR string `ref,noiseKeyB64,identityKeyB64,advSecretB64[,platform]`. */
export function parseQr (qr) {
  const body = String(qr).includes('#') ? String(qr).split('#').slice(1).join('#') : String(qr)
  const [ref, noise, identity, adv] = body.split(',')
  if (!ref || !noise || !identity || !adv) throw new RangeError('not a WhatsApp linking QR: expected ref,noiseKey,identityKey,advSecret')
  return { ref, noisePub: Buffer.from(noise, 'base64'), identityPub: Buffer.from(identity, 'base64'), advSecret: Buffer.from(adv, 'base64') }
}

/** The ADVSignedDeviceIdentityHMAC bytes the phone sends in pair-success. */
export function signDeviceIdentity (account, deviceId, companionIdentityPub, advSecret) {
  const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId: deviceId, timestamp: Math.floor(Date.now() / 1000), keyIndex: deviceId }).finish()
  const accountSignature = Curve.sign(account.identity.private, Buffer.concat([WA_ADV_ACCOUNT_SIG_PREFIX, deviceDetails, companionIdentityPub]))
  const details = proto.ADVSignedDeviceIdentity.encode({ details: deviceDetails, accountSignatureKey: account.identity.public, accountSignature }).finish()
  return Buffer.from(proto.ADVSignedDeviceIdentityHMAC.encode({ details, hmac: hmacSign(details, advSecret) }).finish())
}

/** Check the companion's pair-device-sign reply: its device signature over our details. */
export function verifyDeviceSignature (account, companionIdentityPub, signedIdentityBytes) {
  const signed = proto.ADVSignedDeviceIdentity.decode(signedIdentityBytes)
  const msg = Buffer.concat([WA_ADV_DEVICE_SIG_PREFIX, signed.details, companionIdentityPub, account.identity.public])
  return !!signed.deviceSignature && verifySignature(companionIdentityPub, msg, Buffer.from(signed.deviceSignature))
}

/**
 * Phone side of pairing-code linking. `hello` holds what Baileys sent in companion_hello.
 * Returns the notification content plus the state needed to finish, or throws on a wrong code.
 */
export async function primaryHello (account, hello, code) {
  const wrapped = hello.wrappedCompanionEph
  const key = await derivePairingCodeKey(code, wrapped.subarray(0, 32))
  const companionEphPub = aesDecryptCTR(wrapped.subarray(48, 80), key, wrapped.subarray(32, 48))
  const primaryEph = Curve.generateKeyPair()
  const salt = randomBytes(32); const iv = randomBytes(16)
  const wrapKey = await derivePairingCodeKey(code, salt)
  const wrappedPrimaryEph = Buffer.concat([salt, iv, aesEncryptCTR(primaryEph.public, wrapKey, iv)])
  return { companionEphPub, primaryEph, wrappedPrimaryEph }
}

/** Decrypt companion_finish's key bundle; returns { companionIdentityPub, advSecret }. */
export function primaryFinish (account, state, wrappedKeyBundle) {
  const companionShared = Curve.sharedKey(state.primaryEph.private, state.companionEphPub)
  const salt = wrappedKeyBundle.subarray(0, 32); const iv = wrappedKeyBundle.subarray(32, 44)
  const key = hkdf(companionShared, 32, { salt, info: 'link_code_pairing_key_bundle_encryption_key' })
  const plain = aesDecryptGCM(wrappedKeyBundle.subarray(44), key, iv, Buffer.alloc(0))
  const companionIdentityPub = plain.subarray(0, 32); const primaryIdentityPub = plain.subarray(32, 64); const random = plain.subarray(64, 96)
  if (!Buffer.from(primaryIdentityPub).equals(Buffer.from(account.identity.public))) throw new Error('key bundle names another primary identity')
  const identityShared = Curve.sharedKey(account.identity.private, companionIdentityPub)
  const advSecret = Buffer.from(hkdf(Buffer.concat([companionShared, identityShared, random]), 32, { info: 'adv_secret' }))
  return { companionIdentityPub: Buffer.from(companionIdentityPub), advSecret }
}
