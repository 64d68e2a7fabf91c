"""Typed models of the configuration's sections, one module per section.

Each section is owned by the capability that reads it (identity, health, churn, playbooks,
dunning); `hub.config` composes them into the whole file's model.
"""
