// Pre-key storage, usync device lists, pre-key bundles and message routing between companion
// devices and simulated contacts.
import { getBinaryNodeChild, getBinaryNodeChildren, getBinaryNodeChildBuffer, encodeBigEndian } from '@whiskeysockets/baileys';

const S = 's.whatsapp.net';
const uint = buf => (buf ? Buffer.from(buf).readUIntBE(0, buf.length) : undefined);

export class Messaging {
  constructor(sim) { this.sim = sim; }

  onIq(conn, node, child) {
    const d = conn.device;
    const sim = this.sim;
    if (node.attrs.xmlns === 'encrypt') {
      if (child?.tag === 'count') return sim.result(conn, node, [{ tag: 'count', attrs: { value: String(d.preKeys.size) } }]);
      if (child?.tag === 'digest') return sim.result(conn, node, [{ tag: 'digest', attrs: {}, content: [] }]);
      if (child?.tag === 'rotate') { this.storeSignedPreKey(d, getBinaryNodeChild(child, 'skey')); return sim.result(conn, node); }
      if (node.attrs.type === 'set' && getBinaryNodeChild(node, 'list')) { this.storeUpload(d, node); return sim.result(conn, node); }
      return sim.result(conn, node);
    }
    return sim.result(conn, node);
  }

  storeSignedPreKey(d, skey) {
    if (!skey) return;
    d.signedPreKey = { keyId: uint(getBinaryNodeChildBuffer(skey, 'id')), pub: Buffer.from(getBinaryNodeChildBuffer(skey, 'value')), signature: Buffer.from(getBinaryNodeChildBuffer(skey, 'signature')) };
  }

  /** `<iq xmlns=encrypt type=set><registration/><type/><identity/><list><key>..</key></list><skey/></iq>` */
  storeUpload(d, node) {
    const identity = getBinaryNodeChildBuffer(node, 'identity');
    if (identity && !Buffer.from(identity).equals(d.identityPub)) console.error('[sim] pre-key upload with a different identity for', d.jid);
    const reg = getBinaryNodeChildBuffer(node, 'registration');
    if (reg) d.registrationId = uint(reg);
    for (const key of getBinaryNodeChildren(getBinaryNodeChild(node, 'list'), 'key')) {
      d.preKeys.set(uint(getBinaryNodeChildBuffer(key, 'id')), Buffer.from(getBinaryNodeChildBuffer(key, 'value')));
    }
    this.storeSignedPreKey(d, getBinaryNodeChild(node, 'skey'));
  }

  async onMessage(conn, node) {
    conn.sendNode({ tag: 'ack', attrs: { class: 'message', id: node.attrs.id, from: node.attrs.to, t: String(Math.floor(Date.now() / 1000)) } });
  }

  async onReceipt(conn, node) {
    conn.sendNode({ tag: 'ack', attrs: { class: 'receipt', id: node.attrs.id, from: node.attrs.to ?? S, ...(node.attrs.type ? { type: node.attrs.type } : {}) } });
  }
}
export { encodeBigEndian };
