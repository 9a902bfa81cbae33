"""Groups: list, read, create and administer the groups a session is in, and their events.

One operation per module (`listing`, `metadata`, `create`, `subject`, `description`, `settings`,
`participants`, `invite`, `join`, `leave`), each validating first and calling the runtime only
with what is valid; `events` turns Baileys' group events into `group.update` and
`group.participants`; `desk.GroupDesk` is the one entry point the API uses. docs/groups.md.
"""
