"""Drop-in compatibility: the settings of openai-forward 0.7/0.8, azure-openai-proxy and
ai-proxy-cloudflare read into ours, forward-key levels, and the start-up report of every
setting the gateway does not use."""
