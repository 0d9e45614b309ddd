"""The response cache: identical requests answered locally (see README, "Response cache")."""
