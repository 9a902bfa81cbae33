// Sends protocol garbage, then idles: past the violation threshold the supervisor restarts it.
for (let i = 0; i < 40; i++) process.stdout.write(`garbage line ${i} {{{\n`)
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
