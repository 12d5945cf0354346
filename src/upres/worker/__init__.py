"""The pipeline for one task: fetch, probe, decode, upscale, encode, store."""
