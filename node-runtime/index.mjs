// baileys-bridge Node runtime: runs Baileys and nothing else. It cannot write to disk (Node's
// permission model, read access only to this folder and node_modules); its auth state lives in
// Python and is reached over line-delimited JSON on stdin/stdout. Logs go to stderr only.
//
// It exits when stdin closes (the bridge is gone) and when its parent process disappears (the
// bridge was killed), so it never outlives the bridge.
import './console.mjs'
import { bridgeGone } from './parent.mjs'
import { readFileSync } from 'node:fs'
import { createIpc } from './ipc.mjs'
import { makeCommandHandler } from './commands.mjs'
import { makeLogger } from './logger.mjs'
import { EXIT_GRACE_MS, MAX_LINE } from './defaults.mjs'

const log = makeLogger(process.env.BRIDGE_NODE_LOG_LEVEL || 'warn')
const firstSession = process.env.BRIDGE_SESSION || 'runtime'
const maxLine = Number(process.env.BRIDGE_IPC_MAX_LINE || MAX_LINE)
const ipc = createIpc({ input: process.stdin, output: process.stdout, log, maxLine })
const commands = makeCommandHandler(ipc, log)
ipc.setCommandHandler(commands.handle)

let exiting = false
const exit = (why, code = 0) => {
  if (exiting) return
  exiting = true
  log.info({ why }, 'runtime exiting')
  ipc.failPending(why)
  const timer = setTimeout(() => process.exit(code), EXIT_GRACE_MS)
  timer.unref()
  commands.stopAll().finally(() => process.exit(code))
}

ipc.onEnd(() => exit('stdin closed: the bridge is gone'))
process.on('SIGTERM', () => exit('SIGTERM'))
process.on('SIGINT', () => exit('SIGINT'))
process.on('unhandledRejection', (err) => log.error({ err: String(err?.stack ?? err) }, 'unhandled rejection'))

setInterval(() => { if (bridgeGone()) exit('the bridge process is gone', 1) }, 1000).unref()
process.stdin.resume()

const permission = typeof process.permission !== 'undefined'
const pkg = JSON.parse(readFileSync(new URL('../node_modules/@whiskeysockets/baileys/package.json', import.meta.url), 'utf8'))
ipc.event(firstSession, 'ready', {
  pid: process.pid,
  node: process.version,
  baileys: pkg.version,
  permission,
  fs_write_denied: permission && !process.permission.has('fs.write')
})
