// Crash-loop stand-in: dies immediately with a message on stderr.
process.stderr.write('stand-in: exiting at once\n')
process.exit(3)
