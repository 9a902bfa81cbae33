// Says ready, then sends protocol garbage and idles: past the violation threshold the supervisor
// restarts it.
process.stdout.write(JSON.stringify({ t: 'evt', s: process.env.BRIDGE_SESSION, name: 'ready', data: { pid: process.pid, node: process.version, baileys: '-', permission: true, fs_write_denied: true } }) + '\n')
setTimeout(() => { for (let i = 0; i < 40; i++) process.stdout.write(`garbage line ${i} {{{\n`) }, 200)
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
