// pino on file descriptor 2 only: stdout carries the IPC protocol and nothing else.
// Synchronous destination: no transport worker threads (the permission model forbids workers).
import pino from 'pino'

export function makeLogger (level = 'warn') {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }))
}
