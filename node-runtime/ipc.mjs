// Line-delimited JSON over stdin/stdout: the runtime's only channel to the world.
//
// Python -> Node: {"t":"cmd"} (answered here with {"t":"res"}) and {"t":"res"} (answers to our
// requests). Node -> Python: {"t":"req"} (auth reads and writes) and {"t":"evt"}.
// Oversize input lines are dropped without being buffered whole; malformed ones are logged.

import { IPC_REQUEST_TIMEOUT_MS, MAX_LINE } from './defaults.mjs'

export class IpcError extends Error {
  constructor (code, message) {
    super(message)
    this.code = code
  }
}

export function createIpc ({ input, output, log, maxLine = MAX_LINE, requestTimeoutMs = IPC_REQUEST_TIMEOUT_MS }) {
  const pending = new Map()
  let nextId = 1
  let onCommand = async () => { throw new IpcError('unknown_command', 'no command handler') }
  const endHandlers = []

  const send = (msg) => { output.write(JSON.stringify(msg) + '\n') }

  const request = (s, op, args = {}) => new Promise((resolve, reject) => {
    const id = nextId++
    const timer = setTimeout(() => {
      pending.delete(id)
      reject(new IpcError('ipc_timeout', `no answer to ${op} within ${requestTimeoutMs} ms`))
    }, requestTimeoutMs)
    timer.unref()
    pending.set(id, { resolve, reject, timer, op })
    send({ t: 'req', id, s, op, args })
  })

  const event = (s, name, data = {}) => send({ t: 'evt', s, name, data })
  // Several events of one session in one write, so Python reads (and stores) them together.
  const events = (s, list) => { output.write(list.map(([name, data]) => JSON.stringify({ t: 'evt', s, name, data }) + '\n').join('')) }

  const handleLine = (line) => {
    let msg
    try {
      msg = JSON.parse(line)
    } catch {
      log.warn({ bytes: line.length }, 'ipc: malformed line from bridge ignored')
      return
    }
    if (msg?.t === 'res') {
      const entry = pending.get(msg.id)
      if (!entry) return log.warn({ id: msg.id }, 'ipc: reply to unknown request')
      pending.delete(msg.id)
      clearTimeout(entry.timer)
      if (msg.ok) entry.resolve(msg.result ?? null)
      else entry.reject(new IpcError(msg.error?.code ?? 'bridge_error', `${entry.op}: ${msg.error?.message ?? 'failed'}`))
    } else if (msg?.t === 'cmd') {
      Promise.resolve()
        .then(() => onCommand(msg))
        .then(
          (result) => send({ t: 'res', id: msg.id, s: msg.s, ok: true, result: result ?? {} }),
          (err) => send({ t: 'res', id: msg.id, s: msg.s, ok: false, error: { code: err?.code && typeof err.code === 'string' ? err.code : 'runtime_error', message: String(err?.message ?? err).slice(0, 1000) } })
        )
    } else {
      log.warn({ t: msg?.t }, 'ipc: unexpected message kind ignored')
    }
  }

  let chunks = []
  let size = 0
  let discarding = false
  input.on('data', (chunk) => {
    let start = 0
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start)
      if (nl < 0) {
        if (!discarding) {
          chunks.push(chunk.subarray(start))
          size += chunk.length - start
          if (size > maxLine) { discarding = true; chunks = []; size = 0 }
        }
        return
      }
      if (discarding) {
        discarding = false
        log.warn('ipc: oversize line from bridge discarded')
      } else {
        chunks.push(chunk.subarray(start, nl))
        const line = Buffer.concat(chunks).toString('utf8')
        chunks = []
        size = 0
        if (line.trim()) handleLine(line)
      }
      start = nl + 1
    }
  })
  input.on('end', () => { for (const fn of endHandlers) fn() })

  return {
    send,
    request,
    event,
    events,
    setCommandHandler (fn) { onCommand = fn },
    onEnd (fn) { endHandlers.push(fn) },
    failPending (reason) {
      for (const [id, entry] of pending) {
        pending.delete(id)
        clearTimeout(entry.timer)
        entry.reject(new IpcError('ipc_closed', reason))
      }
    }
  }
}
