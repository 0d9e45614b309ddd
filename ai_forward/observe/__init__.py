"""What a reply said and used: reply reassembly, usage in streams and token counts."""
