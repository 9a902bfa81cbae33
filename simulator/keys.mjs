// The server's key directory: what companions upload (`<iq xmlns="encrypt">`: registration id,
// identity, signed pre-key, one-time pre-keys), the count/digest/rotate queries, and the pre-key
// bundles handed out for `<key>` fetches, consuming one one-time pre-key per bundle like WhatsApp.
import { getBinaryNodeChild, getBinaryNodeChildren, getBinaryNodeChildBuffer, encodeBigEndian } from '@whiskeysockets/baileys'
import { log } from './errors.mjs'
import { uint } from './wire.mjs'

export class KeyDirectory {
  constructor (sim) { this.sim = sim }

  /** `<iq xmlns="encrypt">`: count, digest, rotate, key fetch, upload. */
  onIq (conn, node, child) {
    const sim = this.sim
    const d = conn.device
    if (child?.tag === 'count') return sim.result(conn, node, [{ tag: 'count', attrs: { value: String(d.preKeys.size) } }])
    if (child?.tag === 'digest') return sim.result(conn, node, [{ tag: 'digest', attrs: {}, content: [] }])
    if (child?.tag === 'rotate') {
      this.storeSignedPreKey(d, getBinaryNodeChild(child, 'skey'))
      return sim.result(conn, node)
    }
    if (child?.tag === 'key') return sim.result(conn, node, [{ tag: 'list', attrs: {}, content: getBinaryNodeChildren(child, 'user').map(u => this.bundleNode(u.attrs.jid)) }])
    if (node.attrs.type === 'set' && getBinaryNodeChild(node, 'list')) {
      this.storeUpload(d, node)
      sim.result(conn, node)
      const after = d.onPreKeys
      d.onPreKeys = null
      after?.()
      return undefined
    }
    return sim.result(conn, node)
  }

  storeSignedPreKey (d, skey) {
    if (!skey) return
    d.signedPreKey = { keyId: uint(getBinaryNodeChildBuffer(skey, 'id')), pub: Buffer.from(getBinaryNodeChildBuffer(skey, 'value')), signature: Buffer.from(getBinaryNodeChildBuffer(skey, 'signature')) }
  }

  /** `<iq xmlns=encrypt type=set><registration/><type/><identity/><list><key/>..</list><skey/></iq>` */
  storeUpload (d, node) {
    const identity = getBinaryNodeChildBuffer(node, 'identity')
    if (identity && !Buffer.from(identity).equals(d.identityPub)) log('pre-key upload with a different identity for', d.jid)
    const reg = getBinaryNodeChildBuffer(node, 'registration')
    if (reg) d.registrationId = uint(reg)
    for (const key of getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key')) {
      d.preKeys.set(uint(getBinaryNodeChildBuffer(key, 'id')), Buffer.from(getBinaryNodeChildBuffer(key, 'value')))
    }
    this.storeSignedPreKey(d, getBinaryNodeChild(node, 'skey'))
  }

  /** A companion's bundle from what it uploaded, consuming its lowest one-time pre-key. */
  companionBundle (dev) {
    const [keyId] = [...dev.preKeys.keys()].sort((a, b) => a - b)
    const preKey = keyId === undefined ? undefined : { keyId, pub: dev.preKeys.get(keyId) }
    if (keyId !== undefined) dev.preKeys.delete(keyId)
    return { registrationId: dev.registrationId, identityPub: dev.identityPub, signedPreKey: dev.signedPreKey, preKey }
  }

  bundleNode (jid) {
    const r = this.sim.resolve(jid)
    const dev = r && r.device !== 0 ? r.acc.devices.get(r.device) : null
    if (!r || (r.device !== 0 && (!dev || dev.removed))) return { tag: 'user', attrs: { jid }, content: [{ tag: 'error', attrs: { code: '404', text: 'item-not-found' } }] }
    const b = r.device === 0 ? this.sim.endpoint(r.acc).takeBundle() : this.companionBundle(dev)
    const key = k => ({ tag: 'key', attrs: {}, content: [{ tag: 'id', attrs: {}, content: Buffer.from(encodeBigEndian(k.keyId, 3)) }, { tag: 'value', attrs: {}, content: Buffer.from(k.pub) }] })
    return {
      tag: 'user',
      attrs: { jid },
      content: [
        { tag: 'registration', attrs: {}, content: Buffer.from(encodeBigEndian(b.registrationId, 4)) },
        { tag: 'type', attrs: {}, content: Buffer.from([5]) },
        { tag: 'identity', attrs: {}, content: Buffer.from(b.identityPub) },
        {
          tag: 'skey',
          attrs: {},
          content: [
            { tag: 'id', attrs: {}, content: Buffer.from(encodeBigEndian(b.signedPreKey.keyId, 3)) },
            { tag: 'value', attrs: {}, content: Buffer.from(b.signedPreKey.pub) },
            { tag: 'signature', attrs: {}, content: Buffer.from(b.signedPreKey.signature) }
          ]
        },
        ...(b.preKey ? [key(b.preKey)] : [])
      ]
    }
  }
}
