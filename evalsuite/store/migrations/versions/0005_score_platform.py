"""scores.platform: where the engine computed a score (cpu, cuda, rocm...)

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-13
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# room for a platform name ("cpu", "cuda", "rocm", "xpu", ...) when this revision was
# written; a revision never changes with the code, so the width is spelled out
PLATFORM_MAX = 32


def upgrade() -> None:
    # null for scores stored before: they ran on the CPU (comparable.DEFAULT_PLATFORM)
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform", sa.String(PLATFORM_MAX), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.drop_column("platform")
