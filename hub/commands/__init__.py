"""CLI command groups; `hub.cli` mounts them. Each module is thin: it calls the library."""
