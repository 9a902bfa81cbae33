"""Cluster mode on PostgreSQL (docs/cluster.md): tenants spread over several bridges, one database.

`db` opens connection pools and names the cluster's errors, `schema` creates the tables (versioned,
per component), `leases` decides which node runs a tenant (epochs = fencing tokens),
`auth_backend` keeps auth state in the database behind the `AuthBackend` seam, `snapshots` keeps
snapshots of tenants in tables, `operator` lets a CLI command hold a tenant's lease, `export`
moves a tenant to and from a legacy `useMultiFileAuthState` folder. Nodes, placement, forwarding
and events are clusternode's modules beside these.
"""
