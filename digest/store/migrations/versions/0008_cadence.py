"""cadence: subscribers.min_papers and best_of_week; deliveries.note (why a quiet day was skipped)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_papers', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('best_of_week', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('note')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('best_of_week')
        batch_op.drop_column('min_papers')
