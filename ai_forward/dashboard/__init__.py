"""The admin's page at /admin/ui: overview, users and the chat log (enabled by ADMIN_TOKEN)."""
