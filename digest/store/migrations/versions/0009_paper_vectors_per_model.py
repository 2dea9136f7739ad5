"""paper_vectors: one row per (paper, model), so vectors of several models are kept side by side

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 17:00:00
"""
import sqlalchemy as sa
from alembic import op

import digest.store.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _rekey(columns: list[str], length: int, old_length: int) -> None:
    """paper_vectors' primary key to `columns` and `model` to `length` characters. SQLite cannot alter
    a key: the table is rebuilt under the new key and the rows copied across."""
    if op.get_bind().dialect.name == "sqlite":
        op.create_table('_paper_vectors_new',
        sa.Column('paper_id', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=length), nullable=False),
        sa.Column('text_hash', sa.String(length=40), nullable=False),
        sa.Column('vectors', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(*columns)
        )
        op.execute("INSERT INTO _paper_vectors_new (paper_id, model, text_hash, vectors, created_at) "
                   "SELECT paper_id, model, text_hash, vectors, created_at FROM paper_vectors")
        op.drop_table('paper_vectors')
        op.rename_table('_paper_vectors_new', 'paper_vectors')
        return
    op.alter_column('paper_vectors', 'model', existing_type=sa.String(length=old_length),
                    type_=sa.String(length=length), existing_nullable=False)
    op.drop_constraint('paper_vectors_pkey', 'paper_vectors', type_='primary')
    op.create_primary_key('paper_vectors_pkey', 'paper_vectors', columns)


def upgrade() -> None:
    _rekey(['paper_id', 'model'], 255, 64)


def downgrade() -> None:
    # keep one row per paper (the newest) before the key narrows back to paper_id
    op.execute(
        "DELETE FROM paper_vectors WHERE EXISTS (SELECT 1 FROM paper_vectors newer "
        "WHERE newer.paper_id = paper_vectors.paper_id AND (newer.created_at > paper_vectors.created_at "
        "OR (newer.created_at = paper_vectors.created_at AND newer.model > paper_vectors.model)))"
    )
    op.execute("DELETE FROM paper_vectors WHERE length(model) > 64")  # re-embedded on the next run
    _rekey(['paper_id'], 64, 255)
