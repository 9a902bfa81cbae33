// Command dispatch: Python's `cmd` messages to the hosted sessions.
import { IpcError } from './ipc.mjs'
import { Session } from './session.mjs'
import { messageCommands } from './messages.mjs'
import { groupCommands } from './groups.mjs'

export function makeCommandHandler (ipc, log) {
  const sessions = new Map()
  const get = (s) => {
    let session = sessions.get(s)
    if (!session) {
      session = new Session(s, ipc, log)
      sessions.set(s, session)
    }
    return session
  }
  const handlers = {
    start: (msg) => get(msg.s).start(msg.args ?? {}),
    stop: async (msg) => {
      const session = sessions.get(msg.s)
      if (session) await session.stop()
      sessions.delete(msg.s)
      return {}
    },
    logout: (msg) => get(msg.s).logout(),
    request_pairing_code: (msg) => get(msg.s).requestPairingCode(String(msg.args?.phone ?? '')),
    ...messageCommands(get),
    ...groupCommands(get),
    ping: async () => ({ pid: process.pid, sessions: [...sessions.keys()] })
  }
  const handle = async (msg) => {
    const fn = Object.hasOwn(handlers, msg.cmd) ? handlers[msg.cmd] : null
    if (!fn) throw new IpcError('unknown_command', `unknown command ${String(msg.cmd).slice(0, 64)}`)
    return fn(msg)
  }
  const stopAll = async () => { await Promise.allSettled([...sessions.values()].map((s) => s.stop())) }
  return { handle, stopAll, sessions }
}
