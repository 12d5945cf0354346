"""What comes in: URL and address policy, downloads, remote reads and probing.

Used by both sides: the API probes a submission before it is accepted, and the
pipeline fetches and probes it again before decoding.
"""
