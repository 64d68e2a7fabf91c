"""Email over SMTP: Jinja2 templates rendered and submitted with STARTTLS or TLS, one-click unsubscribe."""
