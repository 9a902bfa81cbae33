// Test-only preload (--import): the runtime's own modules start loading 2.5 s later, past the
// bridge's startsecs (1 s), as on a loaded machine: the bridge counts the runtime RUNNING and
// writes commands before the runtime reads its stdin.
await new Promise((resolve) => setTimeout(resolve, 2500))
