"""Published outputs: the steering-group PDF, and the disclosure control and release log that every
published number passes."""
