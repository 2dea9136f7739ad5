"""paper_terms: each paper's analysed index terms, stored at ingest so planning does not analyse again

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('paper_terms',
    sa.Column('paper_id', sa.Integer(), nullable=False),
    sa.Column('analyser', sa.String(length=64), nullable=False),
    sa.Column('text_hash', sa.String(length=40), nullable=False),
    sa.Column('terms', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('paper_id')
    )


def downgrade() -> None:
    op.drop_table('paper_terms')
