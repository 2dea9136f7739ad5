"""scheduler job state and run log (`digest scheduler`, `digest status`)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00
"""
import sqlalchemy as sa
from alembic import op

import digest.store.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduler_jobs',
    sa.Column('job_id', sa.String(length=100), nullable=False),
    sa.Column('next_run_at', digest.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_started_at', digest.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_finished_at', digest.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_ok', sa.Boolean(), nullable=True),
    sa.Column('last_summary', sa.Text(), nullable=True),
    sa.Column('instance', sa.String(length=100), nullable=True),
    sa.Column('updated_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=100), nullable=False),
    sa.Column('instance', sa.String(length=100), nullable=False),
    sa.Column('started_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', digest.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_runs_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_runs_started_at'), ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_runs_started_at'))
        batch_op.drop_index(batch_op.f('ix_job_runs_job_id'))

    op.drop_table('job_runs')
    op.drop_table('scheduler_jobs')
