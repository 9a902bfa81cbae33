"""Cluster mode on PostgreSQL (docs/cluster.md): tenants spread over several bridges, one database.

`db` opens connection pools and names the cluster's errors, `schema` creates the tables (versioned,
per component), `leases` decides which node runs a tenant (epochs = fencing tokens), `auth_backend`
keeps auth state (and the creds history) in the database behind the `AuthBackend` seam,
`creds_history` reads and restores that history, `snapshots` keeps snapshots of tenants in tables,
`retention` prunes snapshots, objects and trash by file mode's rules (one node at a time),
`operator` lets a CLI command hold a tenant's lease, `export` moves a tenant to and from a legacy
`useMultiFileAuthState` folder. `nodes` records which bridges are alive and where they listen,
`share.plan_round` decides (purely) what this node claims, releases or stops, `coordinator` carries
that out and fences each session's writes (`FencedBackend`), `tenants` keeps the registry's records
and the identity book in tables, `session_snapshots` is what sessions and the snapshot API use,
`forward` sends a request for a tenant to its owner, `events` copies every node's events into the
shared log and feeds SSE from it (LISTEN/NOTIFY), `outbox` keeps the webhook outbox and configs
there (one node delivers each row), `service` opens and closes the lot.
"""
