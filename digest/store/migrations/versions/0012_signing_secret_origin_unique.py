"""signing_secrets.origin unique: processes starting at once keep one generated secret

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:40:00
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "generated" rows a race made before this revision: the earliest keeps the name (it signs), the
    # others are renamed and kept (links signed with them still verify)
    op.execute("UPDATE signing_secrets SET origin = 'generated, also ' || substr(secret, 1, 12) "
               "WHERE origin = 'generated' AND created_at > "
               "(SELECT min(created_at) FROM signing_secrets WHERE origin = 'generated')")
    with op.batch_alter_table('signing_secrets') as batch:
        batch.create_unique_constraint('uq_signing_secrets_origin', ['origin'])


def downgrade() -> None:
    with op.batch_alter_table('signing_secrets') as batch:
        batch.drop_constraint('uq_signing_secrets_origin', type_='unique')
