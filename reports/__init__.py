"""Published outputs: the steering-group PDF and the small-cell suppression it relies on."""
