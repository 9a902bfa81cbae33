// Ignores the stop command, stdin EOF and SIGTERM: only SIGKILL ends it.
process.on('SIGTERM', () => process.stderr.write('stubborn: ignoring SIGTERM\n'))
process.stdout.write(JSON.stringify({ t: 'evt', s: process.env.BRIDGE_SESSION, name: 'ready', data: { pid: process.pid, node: process.version, baileys: '-', permission: true, fs_write_denied: true } }) + '\n')
setInterval(() => {}, 1000)
