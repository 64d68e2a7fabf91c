"""unified model

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=True),
    sa.Column('action_type', sa.String(length=100), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=True),
    sa.Column('operation', sa.String(length=100), nullable=True),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_code', sa.String(length=100), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=True),
    sa.Column('transactional', sa.Boolean(), nullable=False),
    sa.Column('at_most_once', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_actions_idempotency_key'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_actions_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('domain', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=60), nullable=True),
    sa.Column('mrr', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('churn_state', sa.String(length=30), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customers_domain'), ['domain'], unique=False)

    op.create_table('dunning_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('invoice_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decline_code', sa.String(length=60), nullable=True),
    sa.Column('amount_due', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('recovered_by', sa.String(length=30), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dunning_cases')),
    sa.UniqueConstraint('connector', 'invoice_id', name=op.f('uq_dunning_cases_connector_invoice_id'))
    )
    with op.batch_alter_table('dunning_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dunning_cases_customer_id'), ['customer_id'], unique=False)

    op.create_table('mrr_snapshots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('subscription_id', sa.String(length=255), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mrr', sa.BigInteger(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('plan', sa.String(length=255), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mrr_snapshots')),
    sa.UniqueConstraint('connector', 'subscription_id', 'observed_at', name=op.f('uq_mrr_snapshots_connector_subscription_id_observed_at'))
    )
    op.create_table('sent_messages',
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('template', sa.String(length=100), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_sent_messages'))
    )
    with op.batch_alter_table('sent_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sent_messages_action_id'), ['action_id'], unique=False)

    op.create_table('source_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('account_ref', sa.String(length=255), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('checksum', sa.String(length=32), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('source_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_records')),
    sa.UniqueConstraint('connector', 'kind', 'external_id', name=op.f('uq_source_records_connector_kind_external_id'))
    )
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.create_index('ix_source_records_account', ['connector', 'account_ref'], unique=False)
        batch_op.create_index('ix_source_records_kind_connector', ['kind', 'connector'], unique=False)

    op.create_table('suppressions',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=30), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('email', name=op.f('pk_suppressions'))
    )
    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Integer(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_runs_connector_stream', ['connector', 'stream', 'started_at'], unique=False)

    op.create_table('sync_state',
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('stream', sa.String(length=100), nullable=False),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('connector', 'stream', name=op.f('pk_sync_state'))
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('connector', 'event_id', name=op.f('uq_webhook_events_connector_event_id'))
    )
    op.create_table('churn_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=True),
    sa.Column('mrr_lost', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_churn_events_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_churn_events')),
    sa.UniqueConstraint('customer_id', 'type', 'occurred_at', name=op.f('uq_churn_events_customer_id_type_occurred_at'))
    )
    with op.batch_alter_table('churn_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_churn_events_customer_id'), ['customer_id'], unique=False)

    op.create_table('customer_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_links_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_links')),
    sa.UniqueConstraint('connector', 'kind', 'external_id', name=op.f('uq_customer_links_connector_kind_external_id'))
    )
    with op.batch_alter_table('customer_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_links_customer_id'), ['customer_id'], unique=False)

    op.create_table('health_scores',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('model', sa.String(length=60), nullable=False),
    sa.Column('factors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_health_scores_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_health_scores'))
    )
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.create_index('ix_health_scores_customer_time', ['customer_id', 'scored_at'], unique=False)

    op.create_table('playbook_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('playbook', sa.String(length=100), nullable=False),
    sa.Column('version', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('occurrence', sa.String(length=100), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('control', sa.Boolean(), nullable=False),
    sa.Column('metric', sa.String(length=60), nullable=True),
    sa.Column('metric_at_entry', sa.Float(), nullable=True),
    sa.Column('metric_after', sa.Float(), nullable=True),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_playbook_entries_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_playbook_entries')),
    sa.UniqueConstraint('playbook', 'customer_id', 'occurrence', name=op.f('uq_playbook_entries_playbook_customer_id_occurrence'))
    )
    with op.batch_alter_table('playbook_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_playbook_entries_customer_id'), ['customer_id'], unique=False)

    op.create_table('ticket_signals',
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('checksum', sa.String(length=32), nullable=False),
    sa.Column('sentiment', sa.Float(), nullable=True),
    sa.Column('topic', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['source_records.id'], name=op.f('fk_ticket_signals_record_id_source_records'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_ticket_signals'))
    )


def downgrade() -> None:
    op.drop_table('ticket_signals')
    with op.batch_alter_table('playbook_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_playbook_entries_customer_id'))

    op.drop_table('playbook_entries')
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.drop_index('ix_health_scores_customer_time')

    op.drop_table('health_scores')
    with op.batch_alter_table('customer_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_links_customer_id'))

    op.drop_table('customer_links')
    with op.batch_alter_table('churn_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_churn_events_customer_id'))

    op.drop_table('churn_events')
    op.drop_table('webhook_events')
    op.drop_table('sync_state')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_connector_stream')

    op.drop_table('sync_runs')
    op.drop_table('suppressions')
    with op.batch_alter_table('source_records', schema=None) as batch_op:
        batch_op.drop_index('ix_source_records_kind_connector')
        batch_op.drop_index('ix_source_records_account')

    op.drop_table('source_records')
    with op.batch_alter_table('sent_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sent_messages_action_id'))

    op.drop_table('sent_messages')
    op.drop_table('mrr_snapshots')
    with op.batch_alter_table('dunning_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dunning_cases_customer_id'))

    op.drop_table('dunning_cases')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customers_domain'))

    op.drop_table('customers')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_status_next')
        batch_op.drop_index(batch_op.f('ix_actions_customer_id'))

    op.drop_table('actions')
