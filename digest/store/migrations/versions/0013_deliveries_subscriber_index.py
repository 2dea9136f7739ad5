"""deliveries: drop ix_deliveries_subscriber_id, which the unique (subscriber_id, period) index leads with

Every change of a delivery's status writes a new entry into each of its indexes (a status change is
never a heap-only update): one index fewer is one write fewer per claim and per outcome, and per
planned edition. Lookups and cascades by subscriber use the unique index's leading column.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:00:00
"""
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_index('ix_deliveries_subscriber_id')


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.create_index('ix_deliveries_subscriber_id', ['subscriber_id'], unique=False)
