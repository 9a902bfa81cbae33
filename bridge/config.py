"""All settings of the bridge in one place: env vars with prefix `BRIDGE_`, or a `.env` file.

Every field here is listed in README's config table and in `.env.example`; keep the three in step.
Defaults are chosen so that `python -m bridge` runs on a fresh machine with no configuration:
file store under ./data, API on loopback only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime configuration. Paths are resolved against the current directory."""

    model_config = SettingsConfigDict(env_prefix="BRIDGE_", env_file=".env", extra="ignore")

    # --- storage ---
    auth_root: Path = Field(Path("./data/auth"), description="Folder holding one auth folder per session")
    snapshot_interval: float = Field(21600.0, description="Seconds between scheduled snapshots (6 h)")
    snapshot_min_interval: float = Field(
        300.0, description="On creds change, snapshot only if the last snapshot is older than this (s)"
    )
    trash_max_age_days: float = Field(
        30.0, description="Age past which trashed keys may be dropped (`prune-trash`; cluster mode: retention, hourly)"
    )

    # --- HTTP API ---
    host: str = Field("127.0.0.1", description="API bind address")
    port: int = Field(8080, description="API port")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys accepted in X-API-Key"
    )
    metrics_public: bool = Field(False, description="Serve /metrics without an API key")
    max_body_bytes: int = Field(1 << 20, description="Largest accepted HTTP request body")
    events_buffer: int = Field(1000, description="Events kept for SSE Last-Event-ID resume")
    webhook_timeout: float = Field(10.0, description="Seconds per webhook delivery attempt")
    webhook_max_attempts: int = Field(
        30, ge=1, description="Webhook delivery attempts before a delivery goes to the dead-letter list"
    )
    webhook_backoff_initial: float = Field(1.0, description="First webhook retry delay; doubles per attempt (s)")
    sse_heartbeat: float = Field(15.0, description="Seconds between SSE keep-alive comments")
    shutdown_timeout: float = Field(10.0, description="Seconds the API waits for in-flight requests on shutdown")

    # --- WhatsApp ---
    wa_url: str = Field("wss://web.whatsapp.com/ws/chat", description="WebSocket URL Baileys connects to")
    wa_trust_root: str = Field("", description="Hex public key of a test server's root cert; empty in production")

    # --- Node runtime ---
    node: str = Field("node", description="Path to the node binary (Node >= 20)")
    node_runtime_dir: Path = Field(PROJECT_ROOT / "node-runtime", description="Folder with index.mjs")
    node_modules_dir: Path = Field(PROJECT_ROOT / "node_modules", description="Installed npm packages")
    sessions_per_runtime: int = Field(
        25, ge=1, description="Sessions hosted by one Node process; a runtime crash reconnects those (without a QR). "
        "1: one process per session, full isolation at ~110 MiB per tenant (docs/sessions.md \"Scale\")"
    )
    node_log_level: str = Field("warn", description="pino level inside the Node runtime")
    ipc_max_line: int = Field(4 << 20, description="Largest IPC line in bytes; longer lines are discarded")
    ipc_request_timeout: float = Field(30.0, description="Seconds to wait for a reply from Node")
    ipc_violations_per_minute: int = Field(50, description="Protocol violations per minute before restart")
    restart_backoff_initial: float = Field(1.0, description="First restart delay after a crash (s)")
    restart_backoff_max: float = Field(60.0, description="Cap of the restart delay (s)")
    crash_loop_exits: int = Field(5, description="Exits within crash_loop_window that mean FATAL")
    crash_loop_window: float = Field(60.0, description="Window for crash-loop detection (s)")
    stop_grace: float = Field(10.0, description="Seconds a runtime gets to stop after the stop command")
    term_grace: float = Field(5.0, description="Seconds between SIGTERM and SIGKILL")
    runtime_heartbeat_interval: float = Field(
        30.0, description="Seconds between pings of a running Node runtime; 0 disables the heartbeat"
    )
    runtime_heartbeat_timeout: float = Field(
        10.0, description="A runtime that does not answer a ping within this many seconds is restarted"
    )

    # --- sessions ---
    reconnect_initial: float = Field(1.0, description="First reconnect delay on a transient error (s)")
    reconnect_max: float = Field(60.0, description="Cap of the reconnect delay (s)")
    connect_timeout: float = Field(
        20.0, ge=1, description="Seconds Baileys waits for WhatsApp's handshake; a slower one is a 408 and a "
        "reconnect with backoff"
    )
    send_ack_timeout: float = Field(
        20.0, ge=1, description="Seconds a send waits for WhatsApp's server ack before it fails with `no_server_ack` "
        "(the message may still arrive)"
    )

    # --- monitor and alerts ---
    monitor_enabled: bool = Field(True, description="Run the safe monitor inside `python -m bridge`")
    monitor_scan_interval: float = Field(15.0, description="Seconds between full scans of the auth root")
    monitor_reconnecting_alert: float = Field(300.0, description="Alert when reconnecting longer (s)")
    monitor_qr_alert: float = Field(600.0, description="Alert when waiting for a QR scan longer (s)")
    monitor_min_free_mb: int = Field(512, description="Alert when free disk under the auth root is lower")
    alert_window: float = Field(600.0, description="One alert per kind per session per this many seconds")
    telegram_token: str = Field("", description="Telegram bot token; empty disables Telegram alerts")
    telegram_chat_id: str = Field("", description="Telegram chat id that receives alerts")
    telegram_api: str = Field("https://api.telegram.org", description="Telegram Bot API base URL")
    alert_max_attempts: int = Field(8, ge=1, description="Delivery attempts per alert and sink before giving up")
    alert_backoff_initial: float = Field(1.0, description="First alert retry delay; doubles per attempt (s)")
    alert_backoff_max: float = Field(120.0, description="Cap of the alert retry delay (s)")
    monitor_confirm_delay: float = Field(
        0.3, description="Seconds a damaged auth folder must stay damaged before the monitor restores it"
    )
    monitor_mass_delete_min: int = Field(
        10, description="Key files vanishing at once (and at least half of them) that count as mass deletion"
    )
    monitor_mass_delete_window: float = Field(
        60.0, description="Key files lost within this many seconds add up towards a mass deletion"
    )

    log_level: str = Field("INFO", description="Python log level")
    monitor_settle_seconds: float = Field(
        10.0, description="A linked folder whose creds.json has not changed this long has settled: the monitor "
        "snapshots it once after each link"
    )

    # --- event log and webhooks (docs/api.md) ---
    state_dir: Path = Field(
        Path("./data/state"), description="Folder for the event log and webhook outbox, never inside the auth root; "
        "when not set: `state` beside BRIDGE_AUTH_ROOT"
    )
    event_retention_days: float = Field(7.0, gt=0, description="Events older than this are pruned from the log")
    event_retention_count: int = Field(1_000_000, ge=1000, description="Newest events the log keeps at most")
    event_memory_max: int = Field(
        100_000, ge=100, description="Events held in memory while the event log cannot write; older ones are lost"
    )
    webhook_backoff_max: float = Field(300.0, description="Cap of the webhook retry delay (s)")
    webhook_max_age: float = Field(
        86400.0, description="A webhook delivery still failing this long after its event goes to the dead-letter list"
    )
    webhook_concurrency: int = Field(4, ge=1, description="Deliveries in flight at once per webhook")

    # --- media (docs/media.md) ---
    media_fetch_timeout: float = Field(30.0, gt=0, description="Seconds a media URL fetch may take in total")
    media_fetch_allow_private: bool = Field(
        False, description="Let media URLs reach loopback, private and link-local addresses (trusted networks and "
        "tests only)"
    )
    media_trust_ca: str = Field(
        "", description="PEM file of a test media host's CA, trusted for media uploads and downloads; empty in "
        "production (system CAs)"
    )
    media_json_max_bytes: int = Field(
        24 << 20, ge=1 << 20, description="Largest JSON body of a media send (base64 file inside); larger files go "
        "as multipart or URL"
    )
    media_cache_bytes: int = Field(512 << 20, ge=0, description="Size cap of the decrypted media cache (LRU)")
    # --- operations (docs/operations.md) ---
    log_format: Literal["text", "json"] = Field(
        "text", description="`text` for people, `json` for one JSON object per log line (time, level, logger, "
        "message, session, event)"
    )

    # --- message store (docs/api.md "Stored messages") ---
    message_retention_days: float = Field(
        30.0, gt=0, description="Stored messages (GET .../messages, quoting, getMessage) older than this are pruned"
    )
    message_retention_count: int = Field(
        100_000, ge=100, description="Newest stored messages kept per session at most"
    )

    # --- sandbox (docs/sandbox.md) ---
    sandbox: bool = Field(
        False, description="Run beside the bundled WhatsApp simulator: no phone, no internet, never a real account "
        "(also `python -m bridge --sandbox`)"
    )
    sandbox_dir: Path = Field(
        Path("./data/sandbox"), description="Sandbox data: `auth` and `state` inside it, never the production roots"
    )

    # --- scale (docs/sessions.md "Scale") ---
    start_concurrency: int = Field(
        8, ge=1, description="Sessions that start (and handshake with WhatsApp) at the same time when the bridge "
        "starts many at once (restart, storage recovery)"
    )
    start_ramp: float = Field(
        30.0, ge=0, description="Seconds over which starts beyond the first `BRIDGE_START_CONCURRENCY` are spread, "
        "each at a random moment (jitter), so a reboot with many tenants does not stampede WhatsApp"
    )

    # --- cluster (docs/cluster.md) ---
    cluster_dsn: str = Field(
        "", description="PostgreSQL DSN (`postgresql://user:pass@host:5432/db`); set, it turns cluster mode on: auth "
        "state, creds history, snapshots, identities, leases, events, the webhook outbox and webhooks live in that "
        "database and several bridges share the tenants (each node also keeps its own event log, copied there)"
    )
    cluster_lease_ttl: float = Field(
        15.0, ge=2.0, description="Seconds a node's lease on a tenant lasts without renewal (by the database's "
        "clock); a dead node's tenants move after at most this long"
    )
    cluster_node_id: str = Field(
        "", description="This node's name in the cluster (unique per node); empty: `<hostname>-<port>`"
    )
    cluster_node_url: str = Field(
        "", description="Base URL other nodes forward API requests to (this node's internal address); empty: "
        "`http://<host>:<port>` (with the hostname when bound to all interfaces)"
    )
    cluster_forward_timeout: float = Field(
        30.0, gt=0, description="Seconds a request forwarded to the owner node may take (event streams: per read)"
    )

    # --- media auto-download (docs/media.md "Auto-download") ---
    media_auto_download: str = Field(
        "", pattern=r"^((image|video|audio|voice|document|sticker)(,(image|video|audio|voice|document|sticker))*)?$",
        description="Kinds of incoming media downloaded into the media cache before their `message` event is "
        "published, comma-separated (image,video,audio,voice,document,sticker; empty: none), so a webhook "
        "can link to the file (`media.url`)"
    )
    media_auto_download_max_bytes: int = Field(
        16 << 20, ge=0, description="Largest incoming file (its announced size) that is auto-downloaded; larger "
        "ones are downloaded on the first request"
    )

    # --- link previews (docs/messages.md "Link previews") ---
    link_preview: bool = Field(
        True, description="Attach a preview (title, description, thumbnail) to a sent text's first URL; the bridge "
        "fetches the page itself, public addresses only (`BRIDGE_MEDIA_FETCH_ALLOW_PRIVATE` lifts that); false: "
        "never (a message's own `link_preview: false` turns it off for that message)"
    )
    link_preview_timeout: float = Field(
        5.0, gt=0, description="Seconds the page and its image may take together per fetch; a slower page "
        "sends the text without a preview"
    )

    # --- journal durability (docs/storage.md "Journal") ---
    journal_syncfs: bool = Field(
        True, description="When the key batches of 4 or more sessions are committed together, make them durable "
        "with one `syncfs` of the auth root's file system instead of one fdatasync per session's journal "
        "(Linux >= 5.8; 50 sessions writing single keys: 2.1x legacy's keys/s against 0.65x). The trade-off: syncfs "
        "also writes back every other dirty page of that file system (the legacy key files written since the "
        "last checkpoint, other processes' writes), so on a file system with heavy unrelated writes it can be "
        "slower than the fdatasyncs; false: always one fdatasync per journal"
    )
    inline_commits: bool = Field(
        True, description="Run short commits (one session's key batch in its journal, a small event log "
        "transaction) on the event loop's thread instead of a worker thread while commits average under 10 ms; a "
        "slower average, or one inline commit over 100 ms, sends them to worker threads until the average is back "
        "under 10 ms. Saves two thread hand-overs per commit on a send's critical path (docs/performance.md). The "
        "trade-off: a disk that hangs outright blocks the event loop (the API, health checks) during the first "
        "hanging commit; false for network or otherwise unpredictable disks"
    )
    # --- the service's event loop (docs/performance.md "Messages throughput") ---
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="The event loop `python -m bridge` runs on: uvloop (libuv; less CPU per message "
        "and per wake-up) or Python's own asyncio loop; uvloop falls back to asyncio with a warning when it is "
        "not installed"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @property
    def bridge_dir(self) -> Path:
        """Bridge-private data beside the legacy folders: objects, snapshots, trash, backups."""
        return self.auth_root / ".bridge"
