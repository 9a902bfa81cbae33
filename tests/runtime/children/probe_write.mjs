// Test-only preload (--import) for the REAL runtime entry under the same permission flags: tries
// to write, delete and escape, and reports each outcome on stderr as one PROBE line. Production
// code has no such hook.
import fs from 'node:fs'
import cp from 'node:child_process'
import { Worker } from 'node:worker_threads'

const target = process.env.PROBE_AUTH_DIR
const attempt = (name, fn) => {
  try { fn(); return [name, 'ALLOWED'] } catch (err) { return [name, err.code ?? String(err)] }
}
const results = Object.fromEntries([
  attempt('write_creds', () => fs.writeFileSync(`${target}/creds.json`, '{}')),
  attempt('unlink_creds', () => fs.unlinkSync(`${target}/creds.json`)),
  attempt('rm_folder', () => fs.rmSync(target, { recursive: true, force: true })),
  attempt('rename_creds', () => fs.renameSync(`${target}/creds.json`, `${target}/x.json`)),
  attempt('truncate_creds', () => fs.truncateSync(`${target}/creds.json`, 0)),
  attempt('write_tmp', () => fs.writeFileSync('/tmp/bridge-probe-write', 'x')),
  attempt('write_runtime_dir', () => fs.writeFileSync(new URL('../../../node-runtime/evil.mjs', import.meta.url), 'x')),
  attempt('read_creds', () => fs.readFileSync(`${target}/creds.json`)),
  attempt('child_process', () => cp.spawnSync('rm', ['-rf', target])),
  attempt('worker', () => new Worker('setTimeout(()=>{},1)', { eval: true }))
])
process.stderr.write('PROBE ' + JSON.stringify(results) + '\n')
