"""The commented starter configuration written by `churnhub init`."""

STARTER_CONFIG = """\
# churnhub.yaml: what to sync, how to score, what to do about it.
# Values may use ${VAR} or ${VAR:-default}; a .env file next to this file is read too.
# Reference: `churnhub config schema` prints a JSON Schema of this file.

# SQLAlchemy URL. Default: an embedded SQLite file next to this config.
# Production: postgresql://churnhub:${PGPASSWORD}@db.internal/churnhub
database: sqlite:///churnhub.db

# Named connector instances. `type` picks the connector; the rest are that type's settings.
# `churnhub plugins` lists the installed types; `churnhub connector check NAME` tests one.
connectors: {}
#  billing:
#    type: stripe
#    api_key: ${STRIPE_API_KEY}
#    schedule: {every: 15m}

# How records from different systems become one customer.
identity:
  explicit_links: true       # e.g. Stripe metadata.salesforce_account_id, Zendesk external_id
  domain_matching: true      # normalised website / domain names / email domain (never free-mail)
  name_matching: false
  extra_free_mail_domains: []
"""
