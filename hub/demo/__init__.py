"""The demo: a seeded world of one SaaS vendor's customers, its API-shaped exports, and `churnhub demo`.

world.py, activity.py, billing.py   the world and each company's story (pure, deterministic per seed)
salesforce_data.py, zendesk_data.py, stripe_data.py   the world as each sandbox's dataset
truth.py      what is true in the world, to compare the hub's conclusions with
sandboxes.py  the world served by the connector types' sandboxes, and the churnhub.yaml for them
run.py, summary.py   `churnhub demo`: the whole main job on it, and the summary read back
"""
