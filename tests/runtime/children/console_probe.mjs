// Test-only preload (--import) for the REAL runtime: when a command for session "console-probe"
// arrives, call console.* the way dependencies do (libsignal prints session keys with
// console.info). Attached when the runtime attaches its own stdin listener, just before it, so it
// runs first: attached earlier, it would start reading stdin while the runtime is still loading
// (longer than the bridge's 1 s startsecs on a loaded machine), and a command read then would
// reach only this probe (lost: the ping timed out) before the runtime silenced console.log.
const probe = (chunk) => {
  if (!chunk.includes('"s":"console-probe"')) return
  console.log('CONSOLE-LOG secret-key-material')
  console.info('Closing session:', { privKey: Buffer.from('secret-key-material') })
  console.debug('CONSOLE-DEBUG secret-key-material')
  console.warn('CONSOLE-WARN visible on stderr')
  console.error('CONSOLE-ERROR visible on stderr')
}
process.stdin.on('newListener', function beforeTheRuntime (event) {
  if (event !== 'data') return
  process.stdin.off('newListener', beforeTheRuntime)
  process.stdin.on('data', probe)
})
