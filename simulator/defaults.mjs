// Every default of the simulator, defined once. `main.mjs` maps the SIM_* environment variables
// onto OPTIONS (documented in README.md); TIMEOUTS are fixed protocol timings.

/** Tunables a test may override through the environment (name -> [env var, default]). */
export const OPTIONS = {
  refCount: ['SIM_REF_COUNT', 6], // QR refs per pair-device
  refTtlMs: ['SIM_REF_TTL_MS', 180_000], // refs' lifetime; then the registration socket closes
  maxFrame: ['SIM_MAX_FRAME', 4 << 20], // largest WebSocket message / unparsed buffer from a client
  handshakeTimeoutMs: ['SIM_HANDSHAKE_TIMEOUT_MS', 20_000], // unfinished Noise handshakes are dropped
  receiptDelayMs: ['SIM_RECEIPT_DELAY_MS', 250], // a contact's delivery receipt, one "network round trip" later
  controlPort: ['SIM_CONTROL_PORT', 0], // 0 = a free port
  historySync: ['SIM_HISTORY_SYNC', true], // the phone's INITIAL_BOOTSTRAP notification after pairing
  trace: ['SIM_TRACE', false] // log every stanza in and out on stderr
}

/** OPTIONS' defaults as a plain object (what `new Simulator()` uses when given nothing). */
export const defaultOptions = () => Object.fromEntries(Object.entries(OPTIONS).map(([k, [, v]]) => [k, v]))

/** Read OPTIONS from an environment: numbers parse as numbers, booleans as '1'/'0'. */
export function optionsFromEnv (env) {
  const opts = defaultOptions()
  for (const [key, [name, fallback]] of Object.entries(OPTIONS)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    if (typeof fallback === 'boolean') opts[key] = raw !== '0' && raw !== 'false'
    else {
      const n = Number(raw)
      if (!Number.isFinite(n) || n < 0) throw new RangeError(`${name}=${raw} is not a non-negative number`)
      opts[key] = n
    }
  }
  return opts
}

export const TIMEOUTS = {
  closeAfterErrorMs: 100, // a socket is closed this long after a stream:error / failure, so it is read first
  pairSignMs: 20_000, // the companion answers pair-success with pair-device-sign within this
  pairCodeFinishMs: 30_000, // the companion finishes pairing-code linking within this
  slowHandshakeMs: 30_000, // the default delay of the `slow_handshake` fault
  stopGraceMs: 2_000, // main.mjs exits this long after a stop even if closing hangs
  stopReplyMs: 50 // POST /stop answers before the process goes
}

/** Largest control-API request body. */
export const MAX_CONTROL_BODY = 1 << 20
