"""churnhub plugin for product usage: accounts and per-account daily usage (active users, logins,
key feature events) from a product-analytics HTTP export, feeding the health score's usage factors."""
