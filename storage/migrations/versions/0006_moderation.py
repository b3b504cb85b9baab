"""moderation: meeting members (admission, roles, bars), meeting locks, a readable audit trail

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(
            sa.Column("allow_self_unmute", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("end_on_schedule", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "meeting_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("denied_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("barred", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "role IN ('moderator', 'participant')", name=op.f("ck_meeting_members_role")
        ),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_meeting_members_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_meeting_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_members")),
        sa.UniqueConstraint("meeting_id", "user_id", name="uq_meeting_members_meeting_user"),
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(
            sa.Column("outcome", sa.String(length=8), nullable=False, server_default="ok")
        )
        batch.add_column(sa.Column("room_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("subject_user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.create_check_constraint("outcome", "outcome IN ('ok', 'refused')")
        batch.create_index("ix_audit_events_user_id", ["user_id"], unique=False)
        batch.create_index("ix_audit_events_action", ["action"], unique=False)
        batch.create_index("ix_audit_events_room_id", ["room_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_room_id")
        batch.drop_index("ix_audit_events_action")
        batch.drop_index("ix_audit_events_user_id")
        batch.drop_constraint("outcome", type_="check")
        batch.drop_column("address")
        batch.drop_column("subject_user_id")
        batch.drop_column("room_id")
        batch.drop_column("outcome")
    op.drop_table("meeting_members")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("end_on_schedule")
        batch.drop_column("locked")
        batch.drop_column("allow_self_unmute")
