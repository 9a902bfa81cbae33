// "Who is this user": usync queries (devices, lid, contact = is this number on WhatsApp, status
// text) and profile picture queries. Only numbers with an account here (a contact, or a phone that
// linked a session) are on WhatsApp; any other number answers `contact type="out"` and no devices.
import { getBinaryNodeChild, getBinaryNodeChildren, jidDecode } from '@whiskeysockets/baileys'
import { S_WHATSAPP_NET as S, unixNow } from './wire.mjs'

export class Directory {
  constructor (sim) { this.sim = sim }

  /** `<iq xmlns="usync">`: the answer keeps the query's attributes and lists every user asked. */
  usync (conn, node) {
    const usyncNode = getBinaryNodeChild(node, 'usync')
    const protocols = new Set((getBinaryNodeChild(usyncNode, 'query')?.content ?? []).map(p => p.tag))
    const users = getBinaryNodeChildren(getBinaryNodeChild(usyncNode, 'list'), 'user').map(u => this.usyncUser(u, protocols))
    return this.sim.result(conn, node, [{ tag: 'usync', attrs: { ...usyncNode.attrs }, content: [{ tag: 'result', attrs: {} }, { tag: 'list', attrs: {}, content: users }] }])
  }

  usyncUser (u, protocols) {
    let jid = u.attrs.jid
    const phoneNode = getBinaryNodeChild(u, 'contact')
    if (!jid && phoneNode?.content) jid = `${Buffer.from(phoneNode.content).toString().replace(/^\+/, '')}@${S}`
    const r = this.sim.resolve(jid)
    const content = []
    if (r && protocols.has('devices')) {
      content.push({
        tag: 'devices',
        attrs: {},
        content: [{
          tag: 'device-list',
          attrs: {},
          content: [
            { tag: 'device', attrs: { id: '0' } },
            ...r.acc.liveDevices().map(d => ({ tag: 'device', attrs: { id: String(d.id), 'key-index': String(d.id) } }))
          ]
        }]
      })
    }
    if (r && protocols.has('lid') && jidDecode(jid).server !== 'lid') content.push({ tag: 'lid', attrs: { val: `${r.acc.lid}@lid` } })
    if (protocols.has('contact')) content.push({ tag: 'contact', attrs: { type: r ? 'in' : 'out' }, ...(phoneNode?.content ? { content: phoneNode.content } : {}) })
    if (protocols.has('status')) content.push(this.statusNode(r?.acc))
    return { tag: 'user', attrs: { jid }, content }
  }

  statusNode (acc) {
    const c = acc?.contact
    if (c?.statusHidden) return { tag: 'status', attrs: { code: '401', type: 'not-authorized' } }
    if (!c?.status) return { tag: 'status', attrs: { t: '0' } }
    return { tag: 'status', attrs: { t: unixNow() }, content: Buffer.from(c.status) }
  }

  /** `<iq xmlns="w:profile:picture" target=jid><picture type="preview|image" query="url"/>`. */
  profilePicture (conn, node) {
    const target = node.attrs.target ?? node.attrs.to
    const c = this.sim.resolve(target)?.acc.contact
    if (c?.pictureHidden) return this.sim.iqError(conn, node, 401, 'not-authorized')
    if (!c?.picture) return this.sim.iqError(conn, node, 404, 'item-not-found')
    const type = getBinaryNodeChild(node, 'picture')?.attrs.type ?? 'preview'
    return this.sim.result(conn, node, [{ tag: 'picture', attrs: { id: c.picture.id, url: c.picture.url, type, direct_path: new URL(c.picture.url).pathname } }])
  }
}
