"""Pure types and rules of upres: no I/O, no third-party state."""
