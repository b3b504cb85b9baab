"""recording speakers: who was the dominant speaker when, on a recording's timeline

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_speakers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("at_seconds", sa.Float(), nullable=False),
        sa.Column("participant_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_speakers_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recording_speakers_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_speakers")),
    )
    with op.batch_alter_table("recording_speakers") as batch:
        batch.create_index("ix_recording_speakers_recording_id", ["recording_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recording_speakers") as batch:
        batch.drop_index("ix_recording_speakers_recording_id")
    op.drop_table("recording_speakers")
