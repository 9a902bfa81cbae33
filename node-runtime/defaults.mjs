// The runtime's limits and timeouts, defined once. Python passes its own settings where they
// exist (BRIDGE_IPC_MAX_LINE, the start command's timeouts); these are the fallbacks.

// Largest IPC line in bytes; Python's DEFAULT_MAX_LINE (bridge/ipc/protocol.py) is the same.
export const MAX_LINE = 4 << 20
// How long a request to Python may wait for its answer.
export const IPC_REQUEST_TIMEOUT_MS = 120_000
// After the stop command or stdin EOF, how long pending work may take before the process exits.
export const EXIT_GRACE_MS = 2_000
// Baileys' connect and query timeouts when the start command names none.
export const CONNECT_TIMEOUT_MS = 20_000
export const QUERY_TIMEOUT_MS = 60_000
// How long a send waits for the server's <ack class="message">.
export const SEND_ACK_TIMEOUT_MS = 20_000
// How long a media upload to WhatsApp's media host may take.
export const UPLOAD_TIMEOUT_MS = 120_000
// The key cache of one session (key-cache.mjs): at most this many keys and bytes of their text.
// Signal sessions of a busy account are 1-10 KB each; 25 sessions per runtime stay under 100 MiB.
export const KEY_CACHE_ENTRIES = 2048
export const KEY_CACHE_BYTES = 4 << 20
// Key writes sent in the same tick go to Python as one auth.set (one journal record, one
// fdatasync) up to these sizes; a larger write goes alone.
export const SET_MERGE_KEYS = 1000
export const SET_MERGE_BYTES = 1 << 20
// How long a media re-upload request waits for the sender's phone (under the bridge's 30 s IPC timeout).
export const MEDIA_RETRY_TIMEOUT_MS = 20_000
