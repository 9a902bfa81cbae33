// Phone accounts and their linked (companion) devices: the simulator's "server database".
// An account is a phone number with an account identity key (signs ADV device identities) and a
// lid; devices are numbered from 1 (0 is the phone itself, never connected here).
import { Curve } from '@whiskeysockets/baileys'
import { randomInt } from 'node:crypto'

export class Device {
  constructor (account, id, { identityPub, registrationId, signedPreKey, noisePub, platform }) {
    this.account = account
    this.id = id
    this.identityPub = identityPub      // 32-byte Signal identity of the companion
    this.registrationId = registrationId
    this.signedPreKey = signedPreKey    // { keyId, pub, signature }
    this.noisePub = noisePub            // client static Noise key, proves the login is this device
    this.platform = platform
    this.preKeys = new Map()            // id -> 32-byte public key (uploaded one-time pre-keys)
    this.removed = false
    this.conn = null                    // current live Connection, if any
    this.offline = []                   // nodes queued while not connected
    this.pairedAt = Date.now()
  }

  get jid () { return `${this.account.phone}:${this.id}@s.whatsapp.net` }
  get lidJid () { return `${this.account.lid}:${this.id}@lid` }
  toJSON () {
    return {
      jid: this.jid,
      lid: this.lidJid,
      phone: this.account.phone,
      device: this.id,
      connected: !!this.conn,
      removed: this.removed,
      pre_keys: this.preKeys.size,
      signed_pre_key_id: this.signedPreKey?.keyId ?? null,
      platform: this.platform ?? null,
      offline_queue: this.offline.length
    }
  }
}

export class Account {
  constructor (phone, lid) {
    this.phone = phone
    this.lid = lid
    this.identity = Curve.generateKeyPair()
    this.devices = new Map()
    this.nextDeviceId = 1
    this.banned = false
    this.pushName = `Sim ${phone}` // what the account's phone sends as `notify`
    this.presence = { type: 'unavailable', last: Math.floor(Date.now() / 1000) }
    this.contact = null // ContactState when the account is a simulated contact (contacts.mjs)
  }

  liveDevices () { return [...this.devices.values()].filter(d => !d.removed) }
  toJSON () {
    return {
      phone: this.phone,
      lid: `${this.lid}@lid`,
      jid: `${this.phone}@s.whatsapp.net`,
      banned: this.banned,
      identity_pub: Buffer.from(this.identity.public).toString('hex'),
      devices: this.liveDevices().map(d => d.id),
      push_name: this.pushName,
      presence: this.presence.type,
      contact: !!this.contact
    }
  }
}

const digits = n => Array.from({ length: n }, (_, i) => (i === 0 ? randomInt(1, 10) : randomInt(0, 10))).join('')

export class Accounts {
  constructor () { this.byPhone = new Map(); this.byLid = new Map() }
  /** Existing account for `phone`, or a new one (random number when phone is omitted). */
  ensure (phone) {
    if (phone !== undefined && phone !== null) {
      phone = String(phone).replace(/^\+/, '')
      if (!/^[1-9][0-9]{5,14}$/.test(phone)) throw new RangeError(`not a phone number: ${phone}`)
    }
    if (!phone) { do { phone = '1555' + digits(7) } while (this.byPhone.has(phone)) }
    let acc = this.byPhone.get(phone)
    if (!acc) {
      let lid; do { lid = digits(15) } while (this.byLid.has(lid))
      acc = new Account(phone, lid)
      this.byPhone.set(phone, acc); this.byLid.set(lid, acc)
    }
    return acc
  }

  get (phone) { return this.byPhone.get(String(phone).replace(/^\+/, '')) }
  /** Account by a jid user part, phone number or lid. */
  byUser (user, server) { return server === 'lid' ? this.byLid.get(user) : this.byPhone.get(user) }
  /** Register a companion under `id` (reserved earlier with `acc.nextDeviceId++` at pair-success). */
  addDevice (acc, id, info) { const d = new Device(acc, id, info); acc.devices.set(id, d); return d }
  all () { return [...this.byPhone.values()] }
}
