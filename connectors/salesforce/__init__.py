"""Salesforce connector: accounts, contacts, opportunities and users in; tasks and field updates out."""
