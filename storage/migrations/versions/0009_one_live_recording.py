"""one live recording per meeting: a partial unique index on recordings in state 'recording'

Workers of one deployment may be asked to record the same meeting at once; the database
decides, so exactly one insert succeeds. Rows that already break the rule (two workers
recorded one meeting before this index existed) keep only the newest as 'recording'; the
older ones were cut off and become 'interrupted', as recovery would have made them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "state = 'recording'"


def upgrade() -> None:
    op.execute(
        "UPDATE recordings SET state = 'interrupted', "
        "failure_reason = 'another recording of the meeting was in progress' "
        "WHERE state = 'recording' AND id NOT IN "
        "(SELECT max(id) FROM recordings WHERE state = 'recording' GROUP BY meeting_id)"
    )
    op.create_index(
        "uq_recordings_one_live",
        "recordings",
        ["meeting_id"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_recordings_one_live", table_name="recordings")
