"""The video pipeline: decode -> upscale -> encode for one local file, and its stages.

``engine.upscale_video`` is the entry point; ``upres.jobs.runner`` drives it for a
claimed task and the CLI drives it for a local file.
"""
