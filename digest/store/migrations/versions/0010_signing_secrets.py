"""signing_secrets: the signing secret kept in the database, one for every directory and process

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00
"""
import sqlalchemy as sa
from alembic import op

import digest.store.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signing_secrets',
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('origin', sa.String(length=200), nullable=False),
    sa.Column('created_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('secret')
    )


def downgrade() -> None:
    op.drop_table('signing_secrets')
