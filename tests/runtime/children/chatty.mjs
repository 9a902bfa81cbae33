// Writes 20 MiB to stderr (more than any pipe buffer) before saying ready: if the supervisor did
// not drain stderr continuously, this child would block forever.
const line = 'x'.repeat(1023) + '\n'
for (let i = 0; i < 20 * 1024; i++) process.stderr.write(line)
process.stderr.write('chatty: done\n')
process.stdout.write(JSON.stringify({ t: 'evt', s: process.env.BRIDGE_SESSION, name: 'ready', data: { pid: process.pid, node: process.version, baileys: '-', permission: true, fs_write_denied: true } }) + '\n')
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
