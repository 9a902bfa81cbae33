// Who the bridge is, captured before anything slow is loaded (index.mjs imports this first: ES
// modules evaluate in import order). The bridge passes its pid in BRIDGE_PARENT_PID; reading
// process.ppid late could already see init if the bridge died during our start-up.
export const bridgePid = Number(process.env.BRIDGE_PARENT_PID) || process.ppid

// True once the bridge is gone: we were re-parented, or the pid no longer exists.
export function bridgeGone () {
  if (process.ppid !== bridgePid) return true
  try {
    process.kill(bridgePid, 0)
    return false
  } catch (err) {
    return err.code === 'ESRCH'
  }
}
