"""paper_vectors: each paper's MiniLM embeddings, computed once, for the hybrid ranker

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:30:00
"""
import sqlalchemy as sa
from alembic import op

import digest.store.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('paper_vectors',
    sa.Column('paper_id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('text_hash', sa.String(length=40), nullable=False),
    sa.Column('vectors', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('paper_id')
    )


def downgrade() -> None:
    op.drop_table('paper_vectors')
