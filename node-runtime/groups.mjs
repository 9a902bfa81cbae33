// Groups: the group commands (Baileys' group* calls), Baileys' group events forwarded to Python,
// and the bounded group-metadata cache behind Baileys' `cachedGroupMetadata`, so a send to a group
// does not ask the server for its participants every time. Translation only: Python has
// validated every JID and count and decides what a change means; the cache is the one piece of
// state here, bounded and rebuilt from the server after every start.
import { areJidsSameUser } from '@whiskeysockets/baileys'
import { IpcError } from './ipc.mjs'

// Groups kept per session; the least recently used one is dropped beyond this.
export const GROUP_CACHE_MAX = 2000
// A cached entry older than this is fetched again (a missed notification cannot stay forever).
export const GROUP_CACHE_TTL_MS = 30 * 60_000

/** Bounded LRU of GroupMetadata, patched by the group events. */
export class GroupCache {
  constructor ({ max = GROUP_CACHE_MAX, ttlMs = GROUP_CACHE_TTL_MS } = {}) {
    this.max = max
    this.ttlMs = ttlMs
    this.entries = new Map() // jid -> { meta, at }
  }

  get (jid) {
    const hit = this.entries.get(jid)
    if (!hit) return undefined
    if (Date.now() - hit.at > this.ttlMs) {
      this.entries.delete(jid)
      return undefined
    }
    this.entries.delete(jid) // re-insert: most recently used last
    this.entries.set(jid, hit)
    return hit.meta
  }

  set (meta) {
    if (!meta?.id || !Array.isArray(meta.participants)) return
    this.entries.delete(meta.id)
    this.entries.set(meta.id, { meta, at: Date.now() })
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value)
  }

  delete (jid) { this.entries.delete(jid) }

  /** A groups.update item (subject, description, settings) merged into the cached entry. */
  patch (update) {
    const hit = this.entries.get(update?.id)
    if (!hit) return
    const { author, authorPn, authorUsername, ...fields } = update
    hit.meta = { ...hit.meta, ...fields }
  }

  /** A group-participants.update applied to the cached participant list. */
  participants ({ id, participants, action }, me) {
    const hit = this.entries.get(id)
    if (!hit) return
    const same = (p, q) => [q.id, q.phoneNumber, q.lid].some((j) => j && [p.id, p.phoneNumber, p.lid].some((k) => k && areJidsSameUser(j, k)))
    const touched = (p) => participants.some((q) => same(p, typeof q === 'string' ? { id: q } : q))
    let list = hit.meta.participants
    if (action === 'add') list = [...list.filter((p) => !touched(p)), ...participants.map((q) => (typeof q === 'string' ? { id: q, admin: null } : { ...q, admin: null }))]
    else if (action === 'remove') list = list.filter((p) => !touched(p))
    else if (action === 'promote' || action === 'demote') list = list.map((p) => (touched(p) ? { ...p, admin: action === 'promote' ? 'admin' : null } : p))
    else {
      this.entries.delete(id) // a change the cache does not model (number change): fetch again
      return
    }
    if (action === 'remove' && me && participants.some((q) => [q.id, q.phoneNumber, q.lid].some((j) => j && me.some((m) => m && areJidsSameUser(j, m))))) {
      this.entries.delete(id) // we are out: nothing to send there any more
      return
    }
    hit.meta = { ...hit.meta, participants: list, size: list.length }
  }
}

// A Boom from a w:g2 iq carries the server's code in `data` (assertNodeErrorFree) or
// `output.statusCode` (extractGroupMetadata); Python turns these codes into its own errors.
const SERVER_CODES = { 400: 'group_bad_request', 401: 'group_not_authorized', 403: 'group_forbidden', 404: 'group_not_found', 406: 'group_not_acceptable', 409: 'group_conflict', 410: 'group_gone' }

async function groupCall (fn) {
  try {
    return await fn()
  } catch (err) {
    const status = typeof err?.data === 'number' ? err.data : err?.output?.statusCode
    const code = SERVER_CODES[status]
    if (code && err?.isBoom) throw new IpcError(code, `server answered ${status} ${String(err.message).slice(0, 200)}`)
    throw err
  }
}

// Baileys' GroupMetadata, as it is (JSON); Python reads the fields it models.
const metadataOut = (meta) => (meta ? { ...meta } : null)

// Baileys' group events of one socket, forwarded; each also keeps the cache current.
export function attachGroups (session, sock, isCurrent) {
  const cache = session.groupCache
  const emit = (name, data) => { if (isCurrent()) session.emit(name, data) }
  const me = () => [sock.user?.id, sock.user?.lid]
  sock.ev.on('groups.upsert', (groups) => {
    for (const meta of groups ?? []) cache.set(meta)
    const list = (groups ?? []).filter((g) => g?.id)
    if (list.length) emit('groups.upsert', { groups: list })
  })
  sock.ev.on('groups.update', (updates) => {
    const changes = []
    for (const update of updates ?? []) {
      if (!update?.id) continue
      // groupFetchAllParticipating reports every group it listed as an update with full metadata:
      // a listing, not a change; it refreshes the cache only.
      if (Array.isArray(update.participants)) cache.set(update)
      else {
        cache.patch(update)
        changes.push(update)
      }
    }
    if (changes.length) emit('groups.update', { updates: changes })
  })
  sock.ev.on('group-participants.update', (update) => {
    if (!update?.id) return
    const participants = (update.participants ?? []).map((p) => (typeof p === 'string' ? { id: p } : p))
    cache.participants({ ...update, participants }, me())
    emit('group-participants.update', { ...update, participants })
  })
}

export function groupCommands (sessionOf) {
  const sock = (msg) => sessionOf(msg.s).requireSocket()
  const cacheOf = (msg) => sessionOf(msg.s).groupCache
  const fresh = async (msg, jid) => {
    const meta = await groupCall(() => sock(msg).groupMetadata(jid))
    cacheOf(msg).set(meta)
    return meta
  }
  return {
    group_list: async (msg) => {
      const all = await groupCall(() => sock(msg).groupFetchAllParticipating())
      for (const meta of Object.values(all ?? {})) cacheOf(msg).set(meta)
      return { groups: Object.values(all ?? {}).map(metadataOut) }
    },
    // `cached: true` answers from the cache when it has the group (the admin check before an
    // admin action); otherwise the server is asked and the cache refreshed.
    group_metadata: async (msg) => {
      const hit = msg.args.cached ? cacheOf(msg).get(msg.args.jid) : undefined
      return { group: metadataOut(hit ?? await fresh(msg, msg.args.jid)), cached: Boolean(hit) }
    },
    group_create: async (msg) => {
      const meta = await groupCall(() => sock(msg).groupCreate(msg.args.subject, msg.args.participants))
      cacheOf(msg).set(meta)
      return { group: metadataOut(meta) }
    },
    group_subject: async (msg) => {
      await groupCall(() => sock(msg).groupUpdateSubject(msg.args.jid, msg.args.subject))
      return {}
    },
    group_description: async (msg) => {
      await groupCall(() => sock(msg).groupUpdateDescription(msg.args.jid, msg.args.description ?? undefined))
      return {}
    },
    group_setting: async (msg) => {
      await groupCall(() => sock(msg).groupSettingUpdate(msg.args.jid, msg.args.setting))
      return {}
    },
    group_participants: async (msg) => {
      const results = await groupCall(() => sock(msg).groupParticipantsUpdate(msg.args.jid, msg.args.participants, msg.args.action))
      return { results: (results ?? []).map((r) => ({ jid: r.jid, status: String(r.status) })) }
    },
    group_invite_code: async (msg) => ({ code: (await groupCall(() => sock(msg).groupInviteCode(msg.args.jid))) ?? null }),
    group_revoke_invite: async (msg) => ({ code: (await groupCall(() => sock(msg).groupRevokeInvite(msg.args.jid))) ?? null }),
    group_join: async (msg) => ({ jid: (await groupCall(() => sock(msg).groupAcceptInvite(msg.args.code))) ?? null }),
    group_leave: async (msg) => {
      await groupCall(() => sock(msg).groupLeave(msg.args.jid))
      cacheOf(msg).delete(msg.args.jid)
      return {}
    }
  }
}
