"""scores.sandbox: the sandbox mode a score's generated programs ran in (HumanEval+)

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# results_schema.SANDBOX_MODES' longest name ("namespaces") when this revision was written,
# with room to spare; a revision never changes with the code, so the width is spelled out
SANDBOX_MAX = 32


def upgrade() -> None:
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sandbox", sa.String(SANDBOX_MAX), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.drop_column("sandbox")
