"""Rate limits: requests and tokens per client, user and gateway; stream pacing."""
