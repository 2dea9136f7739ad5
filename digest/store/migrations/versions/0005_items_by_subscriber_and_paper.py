"""delivery_items: one index on (subscriber_id, paper_id) instead of subscriber_id alone

Planning asks, for a batch of subscribers, which of the candidate papers each has had already; with
the subscriber's items ordered by paper, it reads only their recent ones.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:00:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_items', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_items_subscriber_paper', ['subscriber_id', 'paper_id'], unique=False)
        batch_op.drop_index('ix_delivery_items_subscriber_id')


def downgrade() -> None:
    with op.batch_alter_table('delivery_items', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_items_subscriber_id', ['subscriber_id'], unique=False)
        batch_op.drop_index('ix_delivery_items_subscriber_paper')
