"""Stripe: customers, subscriptions, invoices, charges and payment methods in; dunning actions out.

Also ships a faithful local sandbox of the Stripe API (`connectors.stripe.sandbox`).
"""
