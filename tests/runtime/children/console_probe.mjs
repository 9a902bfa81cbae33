// Test-only preload (--import) for the REAL runtime: when a command for session "console-probe"
// arrives, call console.* the way dependencies do (libsignal prints session keys with
// console.info). Registered before the runtime's own stdin listener, so it runs first.
process.stdin.on('data', (chunk) => {
  if (!chunk.includes('"s":"console-probe"')) return
  console.log('CONSOLE-LOG secret-key-material')
  console.info('Closing session:', { privKey: Buffer.from('secret-key-material') })
  console.debug('CONSOLE-DEBUG secret-key-material')
  console.warn('CONSOLE-WARN visible on stderr')
  console.error('CONSOLE-ERROR visible on stderr')
})
