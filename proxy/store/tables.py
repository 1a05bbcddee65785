"""The store's tables (SQLAlchemy Core). The schema itself is created by the Alembic
migrations in `migrations/versions`; this module describes it for queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData()

# SQLite has no 64-bit autoincrement except through its INTEGER rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite would drop the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("policies", sa.JSON, nullable=False),
    # Same account + recipients + text: a retry of the same DM maps to the same hold.
    sa.Column("dedupe_key", sa.String(64), nullable=False),
    # Method, URL, headers and body, encrypted: credentials may be in any of them.
    sa.Column("request_sealed", sa.LargeBinary, nullable=False),
    # The answer the tool got (the platform's own success shape), for retries.
    sa.Column("response_status", sa.Integer, nullable=False),
    sa.Column("response_content_type", sa.String(128), nullable=False),
    sa.Column("response_headers", sa.JSON, nullable=False),
    sa.Column("response_body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("claimed_at", UTCDateTime),  # a release in progress
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("note", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("sent_text", sa.Text),
    sa.Column("upstream_status", sa.Integer),
    sa.Column("upstream_body", sa.Text),
    sa.Column("retry_passed_at", UTCDateTime),
    # The dedupe key of what the reviewer approved (their edit, if any): after a failed
    # release only a repeat of exactly that may pass, never the original text.
    sa.Column("release_key", sa.String(64)),
    # The campaign a template_reuse hold belongs to (the review inbox groups and rejects
    # by it); NULL for other holds.
    sa.Column("template_id", sa.String(32)),
    # The names of the policies that matched, space-delimited (" follow_timing "), so the
    # inbox can filter by policy without reading JSON.
    sa.Column("policy_names", sa.String(256)),
)
sa.Index("ix_holds_status_id", holds.c.status, holds.c.id)
sa.Index("ix_holds_release_key", holds.c.release_key)
sa.Index("ix_holds_status_expires", holds.c.status, holds.c.expires_at)
sa.Index("ix_holds_dedupe", holds.c.dedupe_key)
sa.Index("ix_holds_created", holds.c.created_at)
sa.Index("ix_holds_template_status", holds.c.template_id, holds.c.status)
sa.Index("ix_holds_decided", holds.c.decided_at)
sa.Index(
    "uq_holds_pending_dedupe",
    holds.c.dedupe_key,
    unique=True,
    sqlite_where=holds.c.status == "pending",
    postgresql_where=holds.c.status == "pending",
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("would_action", sa.String(16), nullable=False),
    sa.Column("matches", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(32), nullable=False),
    sa.Column("hold_id", sa.String(32)),
)

follows = sa.Table(
    "follows",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(128), primary_key=True),
    sa.Column("follower", sa.String(128), primary_key=True),
    sa.Column("followed_at", UTCDateTime),  # NULL: a follower whose start is unknown
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

sa.Index("ix_follows_followed_at", follows.c.followed_at)

# Accounts whose follower list has been seen once: later snapshots can date new followers.
follower_baselines = sa.Table(
    "follower_baselines",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(128), primary_key=True),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
)

inbound = sa.Table(
    "inbound_messages",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(128), primary_key=True),
    sa.Column("peer", sa.String(128), primary_key=True),
    sa.Column("first_at", UTCDateTime, nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("credential_hash", sa.String(64), primary_key=True),  # keyed hash, never the token
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)

# Who is in a conversation, for sends that name only the conversation.
conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("conversation_id", sa.String(256), primary_key=True),
    sa.Column("members", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Direct messages dmgate saw sent (a Mastodon direct status, learnt from the answer to its
# create): an edit of one is a new DM to its recipients. Pruned by retention (`seen_at`);
# an edit of a forgotten one makes dmgate ask the platform instead.
sent_messages = sa.Table(
    "sent_messages",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(128), primary_key=True),
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)
sa.Index("ix_sent_messages_seen_at", sent_messages.c.seen_at)

# How recipients are addressed, for the template `<name>` placeholder, and what a reviewer
# reads about them (handle, display name, bio, location). `updated_at`: last seen in
# traffic or named by a new hold; retention drops profiles no window or hold needs.
profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("names", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("username", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("location", sa.Text),
)
sa.Index("ix_profiles_updated", profiles.c.updated_at)

# Template index (research/template-reuse.md, "Storage shape that scaled").
templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
)
sa.Index("ix_templates_first_seen", templates.c.first_seen)

# key = hash(scope, band, band values): one indexed lookup per DM, whatever the history.
# MinHash keys name the first template that claimed them; meaning (embedding) keys, which
# have only 64 values per band and account, name the latest one, so an active campaign
# keeps its keys while older templates give them up. A meaning key is the account's prefix,
# band and value (policies/meaning.py), so one account's sit side by side.
lsh_bands = sa.Table(
    "lsh_bands",
    metadata,
    sa.Column("key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("template_id", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
template_signatures = sa.Table(
    "template_signatures",
    metadata,
    sa.Column("template_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("text_key", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    # Campaign features (policies.template_reuse): 5-gram and link-host hashes, and the
    # float16 sentence embedding (NULL: none, or a copy stored before migration 0005).
    sa.Column("features", sa.LargeBinary, nullable=True),
    sa.Column("meaning", sa.LargeBinary, nullable=True),
    # A rowid table on SQLite (migration 0009): its ~1 KB rows would each spill an overflow
    # page out of a WITHOUT ROWID table's index b-tree.
)
template_recipients = sa.Table(
    "template_recipients",
    metadata,
    sa.Column("template_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recipient", sa.String(128), primary_key=True),
    sa.Column("last_seen", sa.Float, nullable=False),
    sqlite_with_rowid=False,
)
sa.Index("ix_template_recipients_last_seen", template_recipients.c.last_seen)
sa.Index(
    "ix_template_recipients_seen",
    template_recipients.c.template_id,
    template_recipients.c.last_seen,
)

# Every judged DM attempt's recipients, once per (platform, account, recipient): when the
# account first tried, whether that try was cold (the recipient had never written to the
# account), and when a DM first reached the recipient (forwarded upstream; NULL while every
# try was held or blocked). Feeds first_contact_pitch and burst (Signals.contact_history).
# Kept as long as the account's history should count: a pruned row makes its recipient
# "first" again.
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("platform", sa.String(32), primary_key=True),
    sa.Column("account", sa.String(128), primary_key=True),
    sa.Column("recipient", sa.String(128), primary_key=True),
    sa.Column("first_at", sa.Float, nullable=False),  # epoch seconds, as the template index
    sa.Column("cold", sa.Boolean, nullable=False),
    sa.Column("reached_at", sa.Float),
    sqlite_with_rowid=False,
)
# The account's first contacts since T: one range scan, whatever the history.
sa.Index("ix_contacts_account_first", contacts.c.platform, contacts.c.account, contacts.c.first_at)

outbox = sa.Table(
    "notification_outbox",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # also the receiver's idempotency key
    sa.Column("hold_id", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | abandoned
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
)
sa.Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)
sa.Index("ix_outbox_created", outbox.c.created_at)

review_tokens = sa.Table(
    "review_tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Review sessions signed out before they expired. A session cookie is self-contained
# (proxy/inbox/sessions.py), so a sign-out is kept where every worker and replica looks:
# the digest of the session's id (never the id), until the session would have expired.
review_signouts = sa.Table(
    "review_signouts",
    metadata,
    sa.Column("session_sha256", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),  # epoch seconds
)
