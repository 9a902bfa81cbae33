// Entry point: `node simulator/main.mjs`. Prints one JSON line on stdout
// ({ws_url, control_url, root_pub}), logs on stderr, exits when stdin closes or on POST /stop.
import { Simulator } from './server.mjs'
import { startControl } from './control.mjs'
import { optionsFromEnv, TIMEOUTS } from './defaults.mjs'
import { log } from './errors.mjs'

const opts = optionsFromEnv(process.env)
const sim = new Simulator(opts)
let stopping = false
async function stop (code = 0) {
  if (stopping) return
  stopping = true
  log('stopping')
  setTimeout(() => process.exit(code), TIMEOUTS.stopGraceMs).unref()
  try {
    control.closeAllConnections?.()
    control.close()
    await sim.close()
  } catch (e) {
    log('error while stopping', e.message)
  }
  process.exit(code)
}
const wsPort = await sim.listen()
const control = await startControl(sim, { port: opts.controlPort, onStop: () => stop(0) })
process.stdout.write(JSON.stringify({
  ws_url: `ws://127.0.0.1:${wsPort}/ws/chat`,
  control_url: `http://127.0.0.1:${control.address().port}`,
  root_pub: Buffer.from(sim.root.public).toString('hex')
}) + '\n')
log(`listening ws :${wsPort} control :${control.address().port}`)
process.stdin.on('end', () => stop(0))
process.stdin.on('error', () => stop(0))
process.stdin.resume()
process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
// A test server must outlive one bad request: log and keep serving the other connections.
process.on('uncaughtException', e => { log('uncaught exception (kept running)', e.stack) })
process.on('unhandledRejection', e => { log('unhandled rejection (kept running)', e?.stack ?? e) })
