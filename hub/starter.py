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

# The health score: factors are plugins (`churnhub plugins` lists them); see docs/health.md.
health:
  missing: skip              # a factor without data: skip it and renormalise, or `default`
  bands: {green: 70, yellow: 40}
  factors: {}                # per factor: weight, enabled, and its own options, e.g.
  #  support: {weight: 2, window_days: 14, stale_days: 5}
  #  sentiment: {enabled: false}
  segments: []               # e.g. [{name: enterprise, when: {min_mrr: 100000}, factors: {usage: {weight: 4}}}]

# How endings are classified and what counts as silent churn; see docs/metrics.md.
churn:
  silent: {window_days: 182, usage_window_days: 90, usage_drop: 0.2}
  gross_margin: 0.8          # CLV = ARPA x gross margin / churn rate

# Playbooks: when a trigger holds for a customer, its actions go through the outbox (exactly once).
# `churnhub playbooks plan` shows who would enter and why; `churnhub playbooks run` does it.
# Triggers read signals (see hub/playbooks/signals.py): health.score, health.band_changed_to,
# days_since_last_login, tickets_opened(7d), ticket_open_longer_than(5d), nps, onboarding_overdue,
# payment_failed, churned_days_ago, silent_churn, usage_near_plan_limit, mrr, plan, ...
# Without the connectors an action needs, it is recorded as skipped with the reason.
playbooks:
  variables:                 # template values every action sees
    product: {name: Acme Analytics}
    links: {app: "https://app.acme.example", help: "https://help.acme.example",
            book_call: "https://cal.acme.example/csm", billing: "https://app.acme.example/billing"}
  owners: {}                 # role -> {name, email, crm_user_id}; default: the CRM account owner
  playbooks:
    - name: inactive-14-days
      description: No login for 14 days -> a re-engagement email, then a check-in a week later.
      owner: csm
      trigger: days_since_last_login >= 14 and not churned
      actions:
        - send_email: {template: reengagement, to: primary_contact}
        - send_email: {template: checkin, to: primary_contact}
          delay: 7d
      cooldown: 30d
      metric: reactivation_rate
      metric_window: 30d
      control_group: 10%
    - name: onboarding-milestone-missed
      description: An onboarding milestone passed its due date -> tasks and a checklist nudge.
      owner: implementation
      trigger: onboarding_overdue and not churned
      actions:
        - create_crm_task:
            subject: "Onboarding behind: {{ customer.name }}"
            description: "{{ trigger.onboarding_overdue }} milestone(s) overdue. Checklist: first login, invite the team, connect data, first invoice paid."
            due_in_days: 2
            priority: High
        - send_email: {template: onboarding_nudge, to: primary_contact}
      cooldown: 14d
      metric: time_to_activation
      metric_window: 30d
    - name: nps-detractor
      description: An NPS answer below 7 -> follow-up task with a next step, and a check-in email.
      owner: csm
      trigger: nps < 7
      actions:
        - create_crm_task:
            subject: "NPS {{ trigger.nps }} from {{ customer.name }}: follow up"
            description: "Next step: call within 2 days, ask what would make it a 9, log the answer."
            due_in_days: 2
        - send_email: {template: detractor_checkin, to: primary_contact}
      cooldown: 90d
      metric: nps_change
      metric_window: 90d
    - name: repeat-tickets
      description: Several tickets within 10 days -> the product manager looks for the pattern.
      owner: product_manager
      trigger: tickets_opened(10d) >= 3
      actions:
        - create_crm_task:
            subject: "{{ trigger['tickets_opened(10)'] }} tickets in 10 days from {{ customer.name }}"
            description: "Review the tickets for a common cause."
            due_in_days: 5
      cooldown: 30d
      metric: repeat_tickets
      metric_window: 30d
    - name: win-back-45-days
      description: Churned 45 days ago -> win-back campaign by the account executive.
      owner: account_executive
      trigger: churned_days_ago == 45
      actions:
        - send_email: {template: winback, to: primary_contact}
        - create_crm_task: {subject: "Win back {{ customer.name }}", due_in_days: 7}
      max_entries: 2
      metric: win_back_rate
      metric_window: 60d
      control_group: 10%
    - name: health-below-70
      description: Health below 70 -> follow-up task for the CSM.
      owner: csm
      trigger: health.score < 70 and not churned
      actions:
        - create_crm_task: {subject: "Health {{ health.score }}: follow up with {{ customer.name }}", due_in_days: 3}
      cooldown: 14d
      metric: health
    - name: ticket-open-5-days
      description: A ticket open more than 5 days -> alert the account owner.
      owner: account_executive
      trigger: ticket_open_longer_than(5d)
      actions:
        - create_crm_task:
            subject: "A ticket has been open more than 5 days at {{ customer.name }}"
            priority: High
            due_in_days: 1
      cooldown: 7d
    - name: no-login-10-days
      description: No login for 10 days -> status At risk and an org tag.
      owner: csm
      trigger: days_since_last_login >= 10 and not churned
      actions:
        - set_status: {status: At risk}
        - tag_helpdesk_org: {tags: [at-risk]}
      cooldown: 14d
    - name: three-tickets-7-days
      description: 3 tickets in 7 days -> at risk, owner task, team alert, proactive check-in.
      owner: csm
      trigger: tickets_opened(7d) >= 3
      actions:
        - set_status: {status: At risk}
        - create_crm_task: {subject: "3+ tickets in 7 days: call {{ customer.name }}", due_in_days: 1, priority: High}
        - webhook: {url_env: CHURNHUB_ALERTS_WEBHOOK_URL, format: slack,
                    text: ":warning: {{ customer.name }} opened {{ trigger['tickets_opened(7)'] }} tickets in 7 days"}
        - send_email: {template: checkin, to: primary_contact}
      cooldown: 7d

# Dunning: failed-payment recovery on the Stripe connectors (`churnhub dunning`, `churnhub dunning run`).
# Cases open when an invoice payment fails (sync and webhooks) and close the moment it is paid.
# Webhooks: `churnhub serve`, with the endpoint's signing secret as the Stripe connector's
# `webhook_secret: ${STRIPE_WEBHOOK_SECRET}`.
dunning:
  retries: [1, 3, 5, 7]      # days after the first failure (soft declines only); `stripe`: Smart Retries
  preferred_weekdays: []     # e.g. [tue, thu]: move a retry to the next of these days
  do_not_honor_after: 2      # do_not_honor counts as a hard decline after this many attempts
  emails:                    # transactional, to the billing email, with the pay / update-card link
    - {day: 0, template: payment_failed_1}
    - {day: 3, template: payment_failed_2}
    - {day: 7, template: payment_failed_3}
    - {day: 14, template: payment_failed_final}
  high_value: {mrr_at_least: 100000, health_bands: [red]}   # + a CRM task for the account owner
  card_expiry_notice: {enabled: false, days_before: 30}
  final_action: {after_days: 21, action: cancel_at_period_end}   # mark_uncollectible | pause_collection | none
  variables:
    product: {name: Acme Analytics}
    links: {billing: "https://app.acme.example/billing"}
"""
