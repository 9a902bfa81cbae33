// Groups: the `w:g2` queries Baileys makes (create, metadata, participating, participants
// add/remove/promote/demote, subject, description, settings, invite code, join, leave), the
// `w:gp2` notifications every member device gets, and group messages: a session's skmsg fan-out
// (its sender key reaches members pairwise in `<participants>`) decrypted by member contacts with
// the group cipher, and contacts sending to a group the same way.
//
// Addressing: a group is phone-number addressed (`addressing_mode="pn"`: participants by phone JID
// with their `lid` beside it, messages `participant=<phone>` with `participant_lid`) or LID
// addressed (`"lid"`, what WhatsApp gives newer groups: participants by LID with `phone_number`
// beside it, messages and notifications `participant=<lid>` with `participant_pn`). Sender keys are
// the same either way; only the names on the wire differ.
import { getBinaryNodeChild, getBinaryNodeChildren, jidDecode } from '@whiskeysockets/baileys'
import { randomBytes, randomInt } from 'node:crypto'
import { HttpError, log } from './errors.mjs'
import { userJid } from './contacts.mjs'
import { buildMessage, describeMessage, stanzaAttrs } from './content.mjs'
import { MEDIA_KINDS } from './media.mjs'
import { S_WHATSAPP_NET as S, unixNow as now, messageId } from './wire.mjs'

export const G_US = 'g.us'
export const MAX_GROUP_SIZE = 1024
const ROLES = { promote: 'admin', demote: null }

class Group {
  constructor (id, subject, creator, mode = 'pn') {
    this.id = id // full jid
    this.mode = mode // 'pn' | 'lid'
    this.subject = subject
    this.subjectOwner = creator
    this.subjectTime = Number(now())
    this.creator = creator
    this.creation = Number(now())
    this.desc = null // { id, text, by, t }
    this.announce = false
    this.restrict = false
    this.inviteCode = randomBytes(16).toString('base64url').slice(0, 22)
    this.members = new Map() // Account -> role: null | 'admin' | 'superadmin'
    this.log = [] // messages and changes, for the control API
    this.queries = 0 // w:g2 metadata queries answered (shows whether a client caches metadata)
  }

  isAdmin (acc) { return !!this.members.get(acc) }

  /** How this group names an account on the wire. */
  jidOf (acc) { return userJid(acc, this.mode) }

  /** A participant's attributes: its jid in the group's mode and the other address beside it. */
  who (acc) {
    return this.mode === 'lid' ? { jid: userJid(acc, 'lid'), phone_number: userJid(acc, 'pn') } : { jid: userJid(acc, 'pn'), lid: userJid(acc, 'lid') }
  }

  /** `participant` (+ the other address) of a message or notification from `acc`'s device `device`. */
  author (acc, device = 0) {
    const dev = device ? `:${device}` : ''
    return this.mode === 'lid'
      ? { participant: `${acc.lid}${dev}@lid`, participant_pn: `${acc.phone}${dev}@${S}` }
      : { participant: `${acc.phone}${dev}@${S}`, participant_lid: userJid(acc, 'lid') }
  }

  participantNode (acc) {
    const role = this.members.get(acc)
    return { tag: 'participant', attrs: { ...this.who(acc), ...(role ? { type: role } : {}) } }
  }

  node () {
    const creator = this.creator
    return {
      tag: 'group',
      attrs: {
        id: this.id.split('@')[0],
        subject: this.subject,
        s_t: String(this.subjectTime),
        s_o: this.jidOf(this.subjectOwner),
        ...(this.mode === 'lid' ? { s_o_pn: userJid(this.subjectOwner, 'pn'), creator_pn: userJid(creator, 'pn') } : {}),
        creation: String(this.creation),
        creator: this.jidOf(creator),
        addressing_mode: this.mode,
        size: String(this.members.size)
      },
      content: [
        ...(this.desc
          ? [{ tag: 'description', attrs: { id: this.desc.id, participant: this.jidOf(this.desc.by), ...(this.mode === 'lid' ? { participant_pn: userJid(this.desc.by, 'pn') } : {}), t: String(this.desc.t) }, content: [{ tag: 'body', attrs: {}, content: Buffer.from(this.desc.text) }] }]
          : []),
        ...(this.announce ? [{ tag: 'announcement', attrs: {} }] : []),
        ...(this.restrict ? [{ tag: 'locked', attrs: {} }] : []),
        ...[...this.members.keys()].map(acc => this.participantNode(acc))
      ]
    }
  }

  toJSON () {
    return {
      id: this.id,
      subject: this.subject,
      creator: userJid(this.creator, 'pn'),
      addressing_mode: this.mode,
      description: this.desc?.text ?? null,
      announce: this.announce,
      restrict: this.restrict,
      invite_code: this.inviteCode,
      metadata_queries: this.queries,
      participants: [...this.members].map(([acc, role]) => ({ jid: userJid(acc, 'pn'), lid: userJid(acc, 'lid'), role: role ?? 'member' }))
    }
  }
}

export class Groups {
  constructor (sim) {
    this.sim = sim
    this.byId = new Map()
  }

  get (jid) { return this.byId.get(jid) ?? null }

  /** The group a query or control call names, refusing non-members like the server (403). */
  member (jid, acc) {
    const g = this.get(jid)
    if (!g) throw new HttpError(404, `no group ${jid}`)
    if (acc && !g.members.has(acc)) throw new HttpError(403, `${acc.phone} is not in ${jid}`)
    return g
  }

  create (subject, creator, participants, mode = 'pn') {
    if (!subject) throw new HttpError(400, 'a group needs a subject')
    if (!['pn', 'lid'].includes(mode)) throw new HttpError(400, '"addressing_mode" is pn or lid')
    let id
    do { id = `120363${String(randomInt(1e11, 1e12))}@${G_US}` } while (this.byId.has(id))
    const g = new Group(id, String(subject), creator, mode)
    g.members.set(creator, 'superadmin')
    for (const acc of participants) if (acc !== creator) g.members.set(acc, null)
    if (g.members.size > MAX_GROUP_SIZE) throw new HttpError(400, `a group has at most ${MAX_GROUP_SIZE} members`)
    this.byId.set(id, g)
    this.notify(g, creator, { tag: 'create', attrs: {}, content: [g.node()] })
    return g
  }

  /** A `w:gp2` notification to every linked device of every member (and of `extra` accounts). */
  notify (g, actor, child, extra = []) {
    const accounts = new Set([...g.members.keys(), ...extra])
    for (const acc of accounts) {
      for (const dev of acc.liveDevices()) {
        this.sim.messaging.deliver(dev, { tag: 'notification', attrs: { from: g.id, type: 'w:gp2', id: messageId(), t: now(), participant: g.jidOf(actor), participant_pn: userJid(actor, 'pn') }, content: [child] })
      }
    }
    g.log.push({ change: child.tag, by: userJid(actor, 'pn'), t: Number(now()) })
  }

  // ---- w:g2 queries ----
  onIq (conn, node) {
    try {
      const answer = this.answer(conn.device.account, node)
      return this.sim.result(conn, node, answer)
    } catch (e) {
      if (!(e instanceof HttpError)) throw e
      const text = { 400: 'bad-request', 401: 'not-authorized', 403: 'forbidden', 404: 'item-not-found', 406: 'not-acceptable' }[e.status] ?? 'error'
      return this.sim.iqError(conn, node, e.status, text)
    }
  }

  answer (me, node) {
    const { to, type } = node.attrs
    const child = Array.isArray(node.content) ? node.content[0] : undefined
    const tag = child?.tag
    if (to === `@${G_US}`) {
      if (type === 'get' && tag === 'participating') {
        return [{ tag: 'groups', attrs: {}, content: [...this.byId.values()].filter(g => g.members.has(me)).map(g => g.node()) }]
      }
      if (tag === 'create') {
        const accounts = getBinaryNodeChildren(child, 'participant').map(p => this.sim.resolve(p.attrs.jid)?.acc).filter(Boolean)
        return [this.create(child.attrs.subject, me, accounts).node()]
      }
      if (tag === 'leave') {
        for (const gNode of getBinaryNodeChildren(child, 'group')) {
          const g = this.member(gNode.attrs.id, me)
          this.notify(g, me, { tag: 'remove', attrs: {}, content: [g.participantNode(me)] })
          g.members.delete(me)
        }
        return [{ tag: 'leave', attrs: {} }]
      }
      if (tag === 'invite' && child.attrs.code) {
        const g = [...this.byId.values()].find(x => x.inviteCode === child.attrs.code)
        if (!g) throw new HttpError(404, 'no group with this invite code')
        if (type === 'get') return [g.node()]
        if (!g.members.has(me)) {
          g.members.set(me, null)
          this.notify(g, me, { tag: 'add', attrs: { reason: 'invite' }, content: [g.participantNode(me)] })
        }
        return [{ tag: 'group', attrs: { jid: g.id } }]
      }
      throw new HttpError(400, `unsupported w:g2 query ${tag}`)
    }
    const g = this.member(to, me)
    if (type === 'get' && tag === 'query') {
      g.queries++
      return [g.node()]
    }
    if (type === 'get' && tag === 'invite') return [{ tag: 'invite', attrs: { code: g.inviteCode } }]
    const adminOnly = ['add', 'remove', 'promote', 'demote', 'announcement', 'not_announcement', 'locked', 'unlocked', 'invite']
    if (adminOnly.includes(tag) && !g.isAdmin(me)) throw new HttpError(401, `only admins of ${g.id} may ${tag}`)
    if ((tag === 'subject' || tag === 'description') && g.restrict && !g.isAdmin(me)) throw new HttpError(401, `${g.id} is locked: only admins edit its info`)
    switch (tag) {
      case 'add': case 'remove': case 'promote': case 'demote':
        return [this.changeParticipants(g, me, tag, getBinaryNodeChildren(child, 'participant').map(p => p.attrs.jid))]
      case 'subject':
        g.subject = Buffer.from(child.content ?? '').toString()
        g.subjectOwner = me
        g.subjectTime = Number(now())
        this.notify(g, me, { tag: 'subject', attrs: { subject: g.subject, s_o: g.jidOf(me), s_t: String(g.subjectTime) } })
        return undefined
      case 'description': {
        const text = getBinaryNodeChild(child, 'body')?.content
        g.desc = text ? { id: child.attrs.id, text: Buffer.from(text).toString(), by: me, t: Number(now()) } : null
        this.notify(g, me, { tag: 'description', attrs: { id: child.attrs.id ?? messageId() }, content: text ? [{ tag: 'body', attrs: {}, content: Buffer.from(text) }] : [{ tag: 'delete', attrs: {} }] })
        return undefined
      }
      case 'announcement': case 'not_announcement':
        g.announce = tag === 'announcement'
        this.notify(g, me, { tag, attrs: {} })
        return undefined
      case 'locked': case 'unlocked':
        g.restrict = tag === 'locked'
        this.notify(g, me, { tag, attrs: {} })
        return undefined
      case 'invite':
        g.inviteCode = randomBytes(16).toString('base64url').slice(0, 22)
        return [{ tag: 'invite', attrs: { code: g.inviteCode } }]
      default:
        throw new HttpError(400, `unsupported w:g2 query ${tag}`)
    }
  }

  /** add/remove/promote/demote with a result per participant (200, or an error code as WhatsApp). */
  changeParticipants (g, actor, action, jids) {
    const results = []
    const changed = []
    for (const jid of jids) {
      const acc = this.sim.resolve(jid)?.acc
      let error
      if (!acc) error = '404' // not on WhatsApp
      else if (action === 'add' && g.members.has(acc)) error = '409'
      else if (action !== 'add' && !g.members.has(acc)) error = '404'
      else if (action === 'add' && acc.contact?.groupAdd === 'nobody') error = '403'
      if (error) {
        results.push({ tag: 'participant', attrs: { jid, error } })
        continue
      }
      if (action === 'add') g.members.set(acc, null)
      else if (action !== 'remove') g.members.set(acc, ROLES[action])
      changed.push(acc)
      results.push({ tag: 'participant', attrs: g.who(acc) })
    }
    if (changed.length) this.notify(g, actor, { tag: action, attrs: {}, content: changed.map(acc => ({ tag: 'participant', attrs: g.who(acc) })) }, action === 'remove' ? changed : [])
    if (action === 'remove') for (const acc of changed) g.members.delete(acc)
    return { tag: action, attrs: {}, content: results }
  }

  // ---- group messages ----
  /**
   * A session's `<message to="...@g.us">`: pairwise `<participants><to><enc>` carry its sender key
   * (SKDM) to devices that lack it, the `skmsg` enc is the message. Each member device gets
   * `from=group participant=sender`, its own pairwise enc (if any) and the skmsg; member phones
   * (contacts) decrypt and answer with a delivery receipt.
   */
  async onMessage (conn, node) {
    const sender = conn.device
    const { id } = node.attrs
    const g = this.get(node.attrs.to)
    if (!g || !g.members.has(sender.account)) {
      conn.sendNode({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: now(), error: '403' } })
      return
    }
    conn.sendNode({ tag: 'ack', attrs: { class: 'message', id, from: node.attrs.to, t: now() } })
    const pairwise = new Map()
    for (const to of getBinaryNodeChildren(getBinaryNodeChild(node, 'participants'), 'to')) {
      const enc = getBinaryNodeChild(to, 'enc')
      const r = enc && this.sim.resolve(to.attrs.jid)
      if (r) pairwise.set(`${r.acc.phone}:${r.device}`, enc)
    }
    const skmsg = getBinaryNodeChildren(node, 'enc').find(e => e.attrs.type === 'skmsg')
    const deviceIdentity = getBinaryNodeChild(node, 'device-identity')
    for (const acc of g.members.keys()) {
      for (const dev of acc.liveDevices()) {
        if (dev === sender) continue
        const own = pairwise.get(`${acc.phone}:${dev.id}`)
        this.sim.messaging.deliver(dev, {
          tag: 'message',
          attrs: { from: g.id, ...g.author(sender.account, sender.id), id, t: now(), type: node.attrs.type ?? 'text', notify: sender.account.pushName, addressing_mode: g.mode, ...(node.attrs.edit ? { edit: node.attrs.edit } : {}) },
          content: [...(own ? [own] : []), ...(skmsg ? [skmsg] : []), ...(deviceIdentity && own ? [deviceIdentity] : [])]
        })
      }
      if (acc.contact && acc !== sender.account) {
        const ok = await this.contactReads(acc, g, sender, node, pairwise.get(`${acc.phone}:0`), skmsg)
        if (ok) {
          const receipt = { tag: 'receipt', attrs: { from: g.id, participant: g.jidOf(acc), id, t: now() } }
          setTimeout(() => conn.sendNode(receipt), this.sim.opts.receiptDelayMs).unref?.()
        }
      }
    }
  }

  /** A member contact's phone: take the sender key from the pairwise enc, decrypt the skmsg. */
  async contactReads (acc, g, sender, node, pairwiseEnc, skmsg) {
    const ep = this.sim.endpoint(acc)
    const c = acc.contact
    const { id } = node.attrs
    try {
      let carried = {}
      if (pairwiseEnc) {
        carried = await ep.decrypt(ep.address(sender.account.phone, sender.id), pairwiseEnc.attrs.type, Buffer.from(pairwiseEnc.content))
        const skdm = carried.senderKeyDistributionMessage
        if (skdm?.axolotlSenderKeyDistributionMessage) await ep.groupProcess(g.id, sender.account.phone, sender.id, skdm.axolotlSenderKeyDistributionMessage)
      }
      const message = skmsg ? await ep.groupDecrypt(g.id, sender.account.phone, sender.id, skmsg.content) : carried
      const author = g.jidOf(sender.account)
      const entry = {
        id,
        chat: g.id,
        from: userJid(sender.account, 'pn'),
        from_lid: userJid(sender.account, 'lid'),
        from_device: sender.jid,
        to: g.id,
        type: skmsg ? 'skmsg' : pairwiseEnc?.attrs.type,
        stanza_type: node.attrs.type ?? null,
        edit_attr: node.attrs.edit ?? null,
        t: Number(now()),
        ...describeMessage(message)
      }
      c.inbox.push(entry)
      c.remember({ id, fromMe: false, author, peer: g.id, mode: g.mode, message })
      return true
    } catch (e) {
      log(`contact ${acc.phone} could not decrypt group message ${id} from ${sender.jid}: ${e.message}`)
      c.errors.push({ id, from: sender.jid, chat: g.id, error: e.message })
      return false
    }
  }

  /** Control: member contact `phone` sends `kind` to group `jid` (sender key, pairwise SKDM, skmsg). */
  async sendFromContact (phone, jid, kind, body) {
    const contact = this.sim.messaging.contact(phone)
    const c = contact.contact
    const g = this.member(jid, contact)
    if (g.announce && !g.isAdmin(contact)) throw new HttpError(403, `${g.id} is announcement-only: only admins send`)
    const chat = [...c.messages.values()].filter(m => m.peer === g.id)
    const message = MEDIA_KINDS.includes(kind)
      ? await this.sim.media.encryptAndUpload(kind, this.mediaData(body), { mimetype: String(body.mimetype ?? 'application/octet-stream'), caption: body.caption, fileName: body.file_name })
      : buildMessage(kind, body, {
        find: id => chat.find(m => m.id === id) ?? null,
        chatJid: g.id,
        meJid: mode => userJid(contact, mode ?? g.mode)
      })
    const ep = this.sim.endpoint(contact)
    const id = messageId()
    const { attrs, enc } = stanzaAttrs(message)
    const skdm = { senderKeyDistributionMessage: { groupId: g.id, axolotlSenderKeyDistributionMessage: await ep.groupDistribution(g.id, contact.phone) } }
    const ciphertext = await ep.groupEncrypt(g.id, contact.phone, message)
    const sentKeyTo = (c.senderKeySent ??= new Map()).get(g.id) ?? new Set()
    c.senderKeySent.set(g.id, sentKeyTo)
    let devices = 0
    for (const acc of g.members.keys()) {
      if (acc === contact) continue
      for (const dev of acc.liveDevices()) {
        const content = []
        if (!sentKeyTo.has(dev.jid)) {
          const addr = ep.address(acc.phone, dev.id)
          if (!ep.hasSession(addr)) {
            if (!dev.signedPreKey) continue
            await ep.initSession(addr, this.sim.keys.companionBundle(dev))
          }
          const pair = await ep.encrypt(addr, skdm)
          content.push({ tag: 'enc', attrs: { v: '2', type: pair.type }, content: pair.ciphertext })
          sentKeyTo.add(dev.jid)
        }
        content.push({ tag: 'enc', attrs: { v: '2', type: 'skmsg', ...enc }, content: ciphertext })
        this.sim.messaging.deliver(dev, {
          tag: 'message',
          attrs: { from: g.id, ...g.author(contact), id, t: now(), ...attrs, notify: c.pushName, addressing_mode: g.mode },
          content
        })
        devices++
      }
    }
    c.remember({ id, fromMe: true, author: g.jidOf(contact), peer: g.id, mode: g.mode, message })
    c.outbox.push({ id, to: g.id, t: Number(now()), ...describeMessage(message) })
    return { id, to: g.id, devices, queued: 0, kind }
  }

  /** The file of a media send: `data` (base64) or `data_ref` (staged on the media host). */
  mediaData (body) {
    if (body.data_ref) return this.sim.media.takeStaged(String(body.data_ref))
    if (typeof body.data !== 'string' || !body.data) throw new HttpError(400, 'a media send needs "data" (base64) or "data_ref"')
    return Buffer.from(body.data, 'base64')
  }

  /** Control: a contact creates a group (sessions learn it from the `create` notification). */
  createFromContact (phone, { subject, participants, addressing_mode: mode = 'pn' }) {
    const creator = this.sim.messaging.contact(phone)
    const accounts = (participants ?? []).map(p => {
      const acc = this.sim.resolve(String(p).includes('@') ? String(p) : `${String(p).replace(/^\+/, '')}@${S}`)?.acc
      if (!acc) throw new HttpError(404, `no account ${p}`)
      return acc
    })
    return this.create(subject, creator, accounts, mode).toJSON()
  }

  /** Control: a member contact (an admin) adds/removes/promotes/demotes participants. */
  participantsFromContact (phone, jid, { action, participants }) {
    const actor = this.sim.messaging.contact(phone)
    const g = this.member(jid, actor)
    if (!['add', 'remove', 'promote', 'demote'].includes(action)) throw new HttpError(400, '"action" is one of add, remove, promote, demote')
    if (!g.isAdmin(actor)) throw new HttpError(403, `${phone} is not an admin of ${jid}`)
    const jids = (participants ?? []).map(p => (String(p).includes('@') ? String(p) : `${String(p).replace(/^\+/, '')}@${S}`))
    const result = this.changeParticipants(g, actor, action, jids)
    return { results: result.content.map(p => ({ jid: p.attrs.jid, status: p.attrs.error ?? '200' })) }
  }

  toJSON () { return [...this.byId.values()].map(g => g.toJSON()) }
}

export const isGroupJid = jid => jidDecode(jid ?? '')?.server === G_US
