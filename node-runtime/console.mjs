// stdout is the IPC channel, so no dependency may print to it. libsignal, for one, calls
// console.info('Closing session:', session) with the session's private keys in it. Imported first
// by index.mjs (ES modules evaluate in import order), before Baileys and libsignal load:
// log/info/debug/dir/table (dependencies' chatter, which can carry key material) are dropped;
// warn/error/trace go to stderr, where the supervisor logs them.
import { Console } from 'node:console'

const toStderr = new Console({ stdout: process.stderr, stderr: process.stderr })
const drop = () => { /* dependencies' console output must never reach stdout, the IPC channel */ }
for (const name of ['log', 'info', 'debug', 'dir', 'dirxml', 'table']) console[name] = drop
for (const name of ['warn', 'error', 'trace', 'assert']) console[name] = toStderr[name].bind(toStderr)
