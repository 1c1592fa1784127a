"""checkpoints.registered_by: the label of the API token that registered each checkpoint

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# evalsuite.tokens.LABEL_MAX when this revision was written; a revision never changes
# with the code, so the width is spelled out here
LABEL_MAX = 64


def upgrade() -> None:
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registered_by", sa.String(LABEL_MAX), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_column("registered_by")
