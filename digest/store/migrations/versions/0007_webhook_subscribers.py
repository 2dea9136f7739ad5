"""subscribers: a channel (email, or a chat webhook) and, for a webhook, its sealed URL and redacted hint

A webhook subscriber keeps `email` as its identity ("slack:3f2a9c1b7d4e", the kind and a hash of the
URL), so every command and table keyed by address works unchanged. The URL itself is stored sealed
(Fernet, keyed from the signing secret); `webhook_hint` is the redacted form that lists show.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=10), nullable=False, server_default='email'))
        batch_op.add_column(sa.Column('webhook_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('webhook_hint', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('webhook_hint')
        batch_op.drop_column('webhook_url')
        batch_op.drop_column('channel')
