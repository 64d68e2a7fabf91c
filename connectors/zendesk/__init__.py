"""Zendesk Support: organizations, users, tickets and CSAT/NPS in; tags, fields, tickets and notes out."""
