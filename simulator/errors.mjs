// Shared by every simulator module: the stderr logger and the control API's error type.
export const log = (...a) => console.error('[sim]', new Date().toISOString(), ...a)

/** An error the control API returns as `{"error": {"code": status, "message"}}`. */
export class HttpError extends Error { constructor (status, message) { super(message); this.status = status } }
