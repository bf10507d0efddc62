"""Published outputs: the steering-group PDF and the disclosure control and release log every published number passes."""
