"""Seeded papers and followed authors: papers.listed, feedback.origin

A subscriber may seed their profile with their own papers (arXiv ids, a BibTeX or Zotero export):
those papers are stored with `listed = false` (never a candidate until a source lists them) and
liked through a feedback row with `origin = 'seed'`. Followed authors are topic rows of kind
'author' (no schema change).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('papers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listed', sa.Boolean(), server_default=sa.true(), nullable=False))
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=10), server_default='click', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_column('origin')
    with op.batch_alter_table('papers', schema=None) as batch_op:
        batch_op.drop_column('listed')
