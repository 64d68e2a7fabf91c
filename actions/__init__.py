"""Built-in playbook actions, registered through `register_actions` like any plugin's.

Each module is one family: `email` (send_email), `crm` (create_crm_task, update_crm_fields),
`helpdesk` (tag_helpdesk_org, create_helpdesk_ticket), `billing` (stripe_pause_collection,
stripe_apply_coupon), `webhook` (webhook) and `status` (set_status). An action validates its YAML
params with a pydantic model and plans one connector operation from them and the customer
context (see `hub.outbox.plan`). `plugin` registers them all.
"""
