"""The lead store's tables, declared once with SQLAlchemy Core.

Core tables rather than ORM classes, because every write is a bulk write (a scoring run is
thousands to millions of rows) and every read becomes a pandas frame. Times are stored
tz-naive in UTC, as the feature pipeline uses them. JSON columns hold the score card's
reasons and next best actions (JSONB on PostgreSQL).

The migrations in ``store/migrations/versions`` create exactly these tables; a test
compares the migrated database with this module, so the two cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from features.catalogue import REJECTION_REASONS as REASON_CODES
from features.catalogue import SALES_STAGES

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
"""JSON text on SQLite, JSONB on PostgreSQL."""

LEAD_ID = 64
"""Longest lead id the store keeps (CRM ids are 15 to 36 characters)."""

STAGES = SALES_STAGES
"""Sales dispositions, in funnel order (``features.catalogue.SALES_STAGES``)."""
REJECTION_REASONS = REASON_CODES
"""Rejection reason codes (``features.catalogue.REJECTION_REASONS``)."""
RUN_SOURCES = ("batch", "online")
MQL_EVENTS = ("entered", "left")
CHECK_STATUSES = ("ok", "warn", "alert")

scoring_runs = sa.Table(
    "scoring_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("model_alias", sa.String(64)),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("policy_rule", sa.String(32)),
    sa.Column("policy_target", sa.Float),
    sa.Column("leads", sa.Integer, nullable=False, server_default="0"),
    sa.Column("mqls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("open_leads", sa.Integer),
    sa.Column("skipped", sa.Integer),
    sa.Column("data_location", sa.Text),
    sa.CheckConstraint(f"source IN {RUN_SOURCES}", name="source"),
    sa.Index(None, "as_of"),
)
"""One row per scoring run: a batch run scores every open lead of the population (a
*full* run: a lead missing from it is no longer scored), an online run collects the
scores the service records."""

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("scoring_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("lead_id", sa.String(LEAD_ID), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("probability_low", sa.Float),
    sa.Column("probability_high", sa.Float),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("grade", sa.String(4), nullable=False),
    sa.Column("mql", sa.Boolean, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("lead_source", sa.String(64)),
    sa.Column("created_at", sa.DateTime),
    sa.Column("reasons", JsonType),
    sa.Column("next_best_actions", JsonType),
    sa.Column("account_id", sa.String(LEAD_ID)),
    sa.Index(None, "lead_id", "as_of"),
    sa.Index(None, "run_id"),
)
"""Every score ever given: the lead, the moment, the model version and the whole card (and
the lead's account, when the CRM links it to one)."""

mql_events = sa.Table(
    "mql_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("scoring_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("lead_id", sa.String(LEAD_ID), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("grade", sa.String(4)),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.CheckConstraint(f"event IN {MQL_EVENTS}", name="event"),
    sa.Index(None, "lead_id", "occurred_at"),
    sa.Index(None, "occurred_at"),
)
"""A lead entering or leaving MQL: ``cause`` is ``score`` (crossed the threshold) or
``not_scored`` (a full run no longer scores it: converted, or out of the population)."""

lead_states = sa.Table(
    "lead_states",
    metadata,
    sa.Column("lead_id", sa.String(LEAD_ID), primary_key=True),
    sa.Column("created_at", sa.DateTime),
    sa.Column("region", sa.String(64)),
    sa.Column("lead_source", sa.String(64)),
    sa.Column("owner", sa.String(200)),
    sa.Column("last_run_id", sa.Integer, nullable=False),
    sa.Column("last_as_of", sa.DateTime, nullable=False),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("grade", sa.String(4)),
    sa.Column("mql", sa.Boolean, nullable=False),
    sa.Column("mql_since", sa.DateTime),
    sa.Column("first_mql_at", sa.DateTime),
    sa.Column("last_mql_at", sa.DateTime),
    sa.Column("mql_episodes", sa.Integer, nullable=False, server_default="0"),
    sa.Column("account_id", sa.String(LEAD_ID)),
)
"""Each lead's latest state: what the worklist, momentum and "new since" start from.
``first_mql_at`` and ``last_mql_at`` keep the first and the latest MQL entry, so the time
from MQL to a sales stage can be measured either way."""

dispositions = sa.Table(
    "dispositions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_key", sa.String(64), nullable=False, unique=True),
    sa.Column("lead_id", sa.String(LEAD_ID), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("reason_code", sa.String(32)),
    sa.Column("reason_text", sa.Text),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("recorded_by", sa.String(200), nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("flag", sa.String(64)),
    sa.CheckConstraint(f"stage IN {STAGES}", name="stage"),
    sa.CheckConstraint(
        f"reason_code IS NULL OR reason_code IN {REJECTION_REASONS}", name="reason_code"
    ),
    sa.Index(None, "lead_id", "occurred_at"),
)
"""What sales did with a lead. ``event_key`` (a hash of lead, stage, time and reason)
makes recording the same event twice a no-op; ``flag`` marks an event kept but suspect
(e.g. ``out_of_order``: a later stage recorded before an earlier one)."""

monitoring_results = sa.Table(
    "monitoring_results",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("check_run", sa.String(64), nullable=False),
    sa.Column("checked_at", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String(200)),
    sa.Column("model_version", sa.String(64)),
    sa.Column("period_start", sa.DateTime),
    sa.Column("period_end", sa.DateTime),
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("reference", sa.Float),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("details", JsonType),
    sa.CheckConstraint(f"status IN {CHECK_STATUSES}", name="status"),
    sa.Index(None, "check_run"),
    sa.Index(None, "checked_at"),
)
"""One row per check of one ``leadscore monitor`` run (performance, calibration, drift of a
feature or of the score, precision from feedback), with its ok / warn / alert status."""

ALERT_KINDS = ("mql", "jump", "monitor", "mqa")
ALERT_STATUSES = ("pending", "sent", "dead")

alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("alert_key", sa.String(200), nullable=False),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("lead_id", sa.String(LEAD_ID)),
    sa.Column("region", sa.String(64)),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("payload", JsonType, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("sent_at", sa.DateTime),
    sa.CheckConstraint(f"kind IN {ALERT_KINDS}", name="kind"),
    sa.CheckConstraint(f"status IN {ALERT_STATUSES}", name="status"),
    sa.UniqueConstraint("alert_key", "destination"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "destination", "sent_at"),
)
"""One alert to deliver to one destination (a Slack channel or webhook, the generic
webhook). ``alert_key`` names the event (an MQL episode is ``mql:<lead>:<entry time>``),
so with the destination it is unique: an episode is queued, and sent, once. A failed
delivery stays ``pending`` with ``next_attempt_at`` pushed back exponentially; after the
last attempt it is ``dead`` until ``leadscore alerts retry``."""

alert_derived = sa.Table(
    "alert_derived",
    metadata,
    sa.Column("source", sa.String(16), primary_key=True),
    sa.Column("ref", sa.String(64), primary_key=True),
    sa.Column("derived_at", sa.DateTime, nullable=False),
)
"""What was turned into alerts already: each scoring run (``source`` ``run``, ``ref`` its
id) and each monitor run (``monitor``, its ``check_run``). A run's rows appear in one
transaction, so a run not listed here is a run whose alerts are still to derive, however
late it committed (an id watermark would skip a long run that commits after a short one)."""


CRM_SYSTEMS = ("hubspot", "salesforce")

crm_sync = sa.Table(
    "crm_sync",
    metadata,
    sa.Column("system", sa.String(16), nullable=False),
    sa.Column("lead_id", sa.String(LEAD_ID), nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("sent_values", JsonType),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("pulled", JsonType),
    sa.Column("pulled_at", sa.DateTime),
    sa.PrimaryKeyConstraint("system", "lead_id"),
    sa.CheckConstraint(f"system IN {CRM_SYSTEMS}", name="system"),
)
"""What ``leadscore sync`` last wrote to a CRM for a lead (``fingerprint``: SHA-256 of the
values sent, so only changes are sent again) and the CRM statuses it last read back
(``pulled``: each status field's value and the time it was first seen, which keeps the
dispositions made from it identical from one pull to the next)."""

crm_checkpoints = sa.Table(
    "crm_checkpoints",
    metadata,
    sa.Column("system", sa.String(16), primary_key=True),
    sa.Column("push_status", sa.String(16)),
    sa.Column("push_started_at", sa.DateTime),
    sa.Column("push_cursor", sa.String(LEAD_ID)),
    sa.Column("push_sent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("pull_cursor", sa.DateTime),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("message", sa.Text),
    sa.CheckConstraint(f"system IN {CRM_SYSTEMS}", name="system"),
)
"""One row per CRM: where the last push got to (``push_status`` running / stopped / done,
the last lead id of the last batch the CRM accepted, how many records it sent) and the
pull's high-water mark (the newest modification time read, so the next pull asks only
for records changed since)."""

ACCOUNT_ID = LEAD_ID
"""Longest account id the store keeps (CRM ids, as for leads)."""

account_runs = sa.Table(
    "account_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("model_alias", sa.String(64)),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("policy_rule", sa.String(32)),
    sa.Column("policy_target", sa.Float),
    sa.Column("accounts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("mqas", sa.Integer, nullable=False, server_default="0"),
    sa.Column("open_accounts", sa.Integer),
    sa.Column("skipped", sa.Integer),
    sa.Column("data_location", sa.Text),
    sa.CheckConstraint(f"source IN {RUN_SOURCES}", name="source"),
    sa.Index(None, "as_of"),
)
"""One row per account scoring run, as ``scoring_runs`` is for leads: kept apart so that
every reader of lead runs (monitoring, the report, the worklist) never meets an account
run by mistake."""

account_scores = sa.Table(
    "account_scores",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("account_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("account_id", sa.String(ACCOUNT_ID), nullable=False),
    sa.Column("as_of", sa.DateTime, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("probability_low", sa.Float),
    sa.Column("probability_high", sa.Float),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("grade", sa.String(4), nullable=False),
    sa.Column("mqa", sa.Boolean, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("leads", sa.Integer),
    sa.Column("engaged", sa.Integer),
    sa.Column("reasons", JsonType),
    sa.Column("buying_group", JsonType),
    sa.Index(None, "account_id", "as_of"),
    sa.Index(None, "run_id"),
)
"""Every account score: the account's probability of at least one conversion within the
horizon, its grade, whether it is a marketing-qualified account (MQA), its people
(``leads``, ``engaged``), its reasons and its buying group (personas engaged and
missing, contacts to reach next) as JSON."""

mqa_events = sa.Table(
    "mqa_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "run_id",
        sa.Integer,
        sa.ForeignKey("account_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("account_id", sa.String(ACCOUNT_ID), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Column("cause", sa.String(32), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("grade", sa.String(4)),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.CheckConstraint(f"event IN {MQL_EVENTS}", name="event"),
    sa.Index(None, "account_id", "occurred_at"),
    sa.Index(None, "occurred_at"),
)
"""An account entering or leaving MQA, with the same causes as ``mql_events``."""

account_states = sa.Table(
    "account_states",
    metadata,
    sa.Column("account_id", sa.String(ACCOUNT_ID), primary_key=True),
    sa.Column("region", sa.String(64)),
    sa.Column("leads", sa.Integer),
    sa.Column("engaged", sa.Integer),
    sa.Column("last_run_id", sa.Integer, nullable=False),
    sa.Column("last_as_of", sa.DateTime, nullable=False),
    sa.Column("score", sa.Integer),
    sa.Column("probability", sa.Float),
    sa.Column("grade", sa.String(4)),
    sa.Column("mqa", sa.Boolean, nullable=False),
    sa.Column("mqa_since", sa.DateTime),
    sa.Column("first_mqa_at", sa.DateTime),
    sa.Column("last_mqa_at", sa.DateTime),
    sa.Column("mqa_episodes", sa.Integer, nullable=False, server_default="0"),
)
"""Each account's latest state, as ``lead_states`` is for leads."""
